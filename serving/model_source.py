"""Where the learned models' refresher reads from (:mod:`serving.models`): a protocol and its
Redis implementation, on a connection of the refresher's own.

:class:`RedisModelSource` offers the async reader's contract for values and the item-vector
changelog (:meth:`~state.redis_store.AsyncReader.vector_changes`), plus what that contract
lacks: a cheap look at an envelope's head (``GETRANGE`` of its first bytes: version and event
time, without reading a large ranker snapshot) and the changelog's entries at one version,
counted and paged by offset (``vector_changes`` pages by version only, so it cannot step
through one version written more times than a page holds).

On a Redis Cluster (a ``redis+cluster://`` URL) the client is redis-py's cluster client
(:func:`state.redis_connect.async_client`): every command here reads one key, except
:meth:`RedisModelSource.get_many`, whose keys span slots and go out as one ``MGET`` per slot
(``mget_nonatomic``). The refresher is off the request path, so redis-py's cost per command
does not matter here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Final, Protocol, cast

import redis.asyncio.cluster as aiocluster

from state.keys import ITEMVEC_LOG_KEY
from state.records import Envelope, decode_envelope
from state.redis_connect import AsyncClient, async_client
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

    def __init__(self, client: AsyncClient) -> None:
        self._r = client
        self._cluster = isinstance(client, aiocluster.RedisCluster)
        self._reader = AsyncReader(client)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisModelSource:
        """One Redis or a Redis Cluster (``redis+cluster://``), as the URL says."""
        return cls(async_client(url, **kwargs))

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        if not self._cluster:
            return await self._reader.get_many(keys)
        if not keys:
            return []
        found = await cast(aiocluster.RedisCluster, self._r).mget_nonatomic(keys)
        envs = [decode_envelope(raw) if raw is not None else None for raw in found]
        return [None if env is None or env.data is None else env for env in envs]

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
