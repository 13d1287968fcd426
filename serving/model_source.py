"""Where the learned models' refresher reads from (:mod:`serving.models`): a protocol and its
Redis implementation, on a connection of the refresher's own.

:class:`RedisModelSource` offers the async reader's contract for values and the item-vector
changelog (:meth:`~state.redis_store.AsyncReader.vector_changes`), plus what that contract
lacks: a cheap look at an envelope's head (``GETRANGE`` of its first bytes: version and event
time, without reading a large ranker snapshot) and the changelog's entries at one version,
counted and paged by offset (``vector_changes`` pages by version only, so it cannot step
through one version written more times than a page holds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Protocol, cast

import redis.asyncio as aioredis

from state.keys import ITEMVEC_LOG_KEY
from state.records import Envelope, decode_envelope
from state.redis_store import AsyncReader

HEAD_BYTES: Final = 64  # enough for '{"v":<int>,"t":<int>,'
_HEAD: Final = re.compile(rb'^\{"v":(-?\d+),"t":(-?\d+),')


class ModelSource(Protocol):
    """What the refresher reads (:class:`RedisModelSource` is one)."""

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]: ...

    async def vector_changes(self, since: int, limit: int) -> list[tuple[str, int]]: ...

    async def count_at(self, version: int) -> int: ...

    async def members_at(self, version: int, offset: int, limit: int) -> list[str]: ...

    async def head(self, key: str) -> tuple[int, int] | None: ...

    async def get_raw(self, key: str) -> bytes | None: ...

    async def close(self) -> None: ...


class RedisModelSource:
    """The refresher's own connection (module docstring)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._r = client
        self._reader = AsyncReader(client)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisModelSource:
        return cls(aioredis.Redis.from_url(url, **kwargs))

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        return await self._reader.get_many(keys)

    async def vector_changes(self, since: int, limit: int) -> list[tuple[str, int]]:
        return await self._reader.vector_changes(since, limit)

    async def count_at(self, version: int) -> int:
        return int(await self._r.zcount(ITEMVEC_LOG_KEY, version, version))

    async def members_at(self, version: int, offset: int, limit: int) -> list[str]:
        raw = await self._r.zrangebyscore(ITEMVEC_LOG_KEY, version, version, start=offset,
                                          num=limit)
        return [bytes(cast(bytes, m)).decode() for m in raw]

    async def head(self, key: str) -> tuple[int, int] | None:
        """``(version, as_of)`` of the value at ``key`` (tombstones too), ``None`` if absent."""
        raw = bytes(cast(bytes, await self._r.getrange(key, 0, HEAD_BYTES - 1)))
        if not raw:
            return None
        match = _HEAD.match(raw)
        if match is not None:
            return int(match[1]), int(match[2])
        whole = await self.get_raw(key)  # not the layout the writer uses: decode it all
        if whole is None:
            return None
        env = decode_envelope(whole)
        return env.version, env.as_of

    async def get_raw(self, key: str) -> bytes | None:
        raw = await self._r.get(key)
        return None if raw is None else bytes(cast(bytes, raw))

    async def close(self) -> None:
        await self._r.aclose()
