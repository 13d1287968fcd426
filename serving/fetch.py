"""Redis reads for the handlers: one MGET per step, through an in-process cache with a
freshness bound, inside a time budget.

Shared values (neighbour lists, trending lists, item metadata) are the same for every user and
the stream republishes each at most once per ``emit_interval`` (1 s by default), so re-reading
them on every request buys nothing: they are cached for ``ttl_ms`` (default 1 s, the same bound),
negative answers included. User sessions change on every click and are never cached.

When Redis is unreachable or slower than the budget, :meth:`Fetcher.stale` still answers from
whatever the cache holds, however old, so the caller can serve a degraded answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Final, Protocol

from state.records import Envelope

MISSING: Final = object()


class Reader(Protocol):
    """What the server needs from Redis (:class:`state.redis_store.AsyncReader` is one)."""

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]: ...

    async def freshness(self) -> dict[str, int]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class RedisUnavailable(ConnectionError):
    """No reader is open (the lifespan has not started it)."""


class Fetcher:
    def __init__(self, reader: Reader | None, *, ttl_ms: int = 1000, capacity: int = 50_000,
                 budget_s: float = 0.1) -> None:
        if ttl_ms < 0 or capacity < 1 or budget_s <= 0:
            raise ValueError(f"serving.fetch: need ttl_ms >= 0, capacity >= 1, budget_s > 0; "
                             f"got {ttl_ms}, {capacity}, {budget_s}")
        self.reader = reader
        self.ttl_ns = ttl_ms * 1_000_000
        self.capacity = capacity
        self.budget_s = budget_s
        self._cache: OrderedDict[str, tuple[int, Envelope | None]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def open_reader(self) -> Reader:
        if self.reader is None:
            raise RedisUnavailable("serving: no Redis reader open (lifespan not started)")
        return self.reader

    async def get(self, keys: Sequence[str], *, cache: bool = True) -> list[Envelope | None]:
        """The envelopes of ``keys`` (``None`` where absent), in order; cached ones when
        ``cache`` and younger than the bound. Raises on Redis errors or the budget running out
        (``TimeoutError``)."""
        if not keys:
            return []
        if not cache:
            async with asyncio.timeout(self.budget_s):
                return await self.open_reader().get_many(keys)
        now = time.monotonic_ns()
        out: list[Envelope | object | None] = []
        todo: list[str] = []
        for key in keys:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] <= self.ttl_ns:
                out.append(hit[1])
            else:
                out.append(MISSING)
                todo.append(key)
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            async with asyncio.timeout(self.budget_s):
                found = await self.open_reader().get_many(todo)
            fetched = dict(zip(todo, found, strict=True))
            for key, env in fetched.items():
                self._put(key, env, now)
            out = [fetched[k] if v is MISSING else v for k, v in zip(keys, out, strict=True)]
        return out  # type: ignore[return-value]

    def stale(self, keys: Sequence[str]) -> list[Envelope | None] | None:
        """Every key from the cache whatever its age, or ``None`` when one is not cached."""
        out: list[Envelope | None] = []
        for key in keys:
            hit = self._cache.get(key)
            if hit is None:
                return None
            out.append(hit[1])
        return out

    def _put(self, key: str, env: Envelope | None, now: int) -> None:
        self._cache[key] = (now, env)
        self._cache.move_to_end(key)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None
