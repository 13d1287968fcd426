"""Redis reads for the handlers: one MGET per step, through an in-process cache with a
freshness bound, inside a time budget; and the record of what an answer read, so that a whole
answer can be cached by the versions of the data behind it (:mod:`serving.answer_cache`).

Shared values (neighbour lists, trending lists, item metadata) are the same for every user and
the stream republishes each at most once per ``emit_interval`` (1 s by default), so re-reading
them on every request buys nothing: they are cached for ``ttl_ms`` (default 1 s, the same bound),
negative answers included. User sessions change on every click and are never cached.

When Redis is unreachable or slower than the budget, :meth:`Fetcher.stale` still answers from
whatever the cache holds, however old, so the caller can serve a degraded answer.

Reads of concurrent requests are batched: every key asked for while one MGET is in flight waits
for it to return and then goes out in the next single MGET (duplicates once). A Python Redis
client costs tens of microseconds per command, whatever its size, so under load one command
serves many requests. Idle, a request waits for nothing but its own round trip.

Values travel as the envelope bytes Redis holds. Each read value has a *stamp*, ``(version,
as_of, length)`` read from the envelope's head without decoding it (the writer puts ``"v"`` and
``"t"`` first): a cached value re-read with the same stamp keeps its decoded object (nothing is
decoded again, and values derived from it stay memoised), and a cached answer is still valid
while every value it read has the stamp it had (:meth:`Fetcher.unchanged`).

Derived values (a list as shares, a context blend) are memoised per envelope object with
:meth:`Fetcher.derived`: an envelope is immutable, and a new version is a new object.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from state.records import Envelope, decode_envelope

MISSING: Final = object()
DERIVED_CAPACITY: Final = 20_000
T = TypeVar("T")
Stamp = tuple[int, int, int]  # version, as_of, length of the stored bytes
Waiter = tuple[Sequence[str], "asyncio.Future[list[bytes | None]]"]
# what an answer read: uncached keys, their stamps, cached keys, their stamps
Deps = tuple[tuple[str, ...], tuple["Stamp | None", ...], tuple[str, ...],
             tuple["Stamp | None", ...]]
_HEAD: Final = re.compile(rb'\{"v":(-?\d+),"t":(-?\d+),')


def stamp_of(raw: bytes | None) -> Stamp | None:
    """The stamp of stored envelope bytes (module docstring), ``None`` when absent.

    >>> stamp_of(b'{"v":3,"t":17,"d":{"x":1}}'), stamp_of(None)
    ((3, 17, 26), None)
    """
    if raw is None:
        return None
    match = _HEAD.match(raw)
    if match is None:  # not the writer's layout: the version and time from a full decode
        env = decode_envelope(raw)
        return env.version, env.as_of, len(raw)
    return int(match[1]), int(match[2]), len(raw)


def _live(raw: bytes | None) -> Envelope | None:
    if raw is None:
        return None
    env = decode_envelope(raw)
    return None if env.data is None else env


def _compact(env: Envelope) -> Envelope:
    """A ranked list's ``[[item_id, score], ...]`` as tuples: the garbage collector stops
    tracking tuples of strings and floats, so a cache of tens of thousands of lists does not
    turn every full collection into a pause of a hundred milliseconds."""
    data = env.data
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = {**data, "items": tuple(tuple(e) for e in data["items"])}
        return Envelope(env.version, env.as_of, data)
    return env


class Reader(Protocol):
    """What the server needs from Redis (:class:`serving.redis_client.PipelinedReader` and
    :class:`state.redis_store.AsyncReader` are two)."""

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def freshness(self) -> dict[str, int]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


class RedisUnavailable(ConnectionError):
    """No reader is open (the lifespan has not started it)."""


class PartialRead(ConnectionError):
    """A read of which only some keys came back (a Redis Cluster with a master down):
    ``found`` holds those. The batch's requests that need none of the others get their
    values; the rest get this error (the degraded path)."""

    def __init__(self, message: str, found: dict[str, bytes | None]) -> None:
        super().__init__(message)
        self.found = found


@dataclass(slots=True)
class Recording:
    """What one answer read: ``(key, stamp, cached)`` per read (``cached``: through the
    shared cache), and values already read for it (``prefetched``: a session read while
    checking a cached answer is not read twice)."""

    reads: list[tuple[str, Stamp | None, bool]] = field(default_factory=list)
    prefetched: dict[str, bytes | None] = field(default_factory=dict)

    def deps(self) -> Deps:
        """Every key once (its first read): the uncached ones and the cached ones, each as
        keys and their stamps."""
        seen: dict[str, tuple[str, Stamp | None, bool]] = {}
        for read in self.reads:
            seen.setdefault(read[0], read)
        fresh = [(k, st) for k, st, cached in seen.values() if not cached]
        shared = [(k, st) for k, st, cached in seen.values() if cached]
        return (tuple(k for k, _ in fresh), tuple(st for _, st in fresh),
                tuple(k for k, _ in shared), tuple(st for _, st in shared))


RECORDING: Final[contextvars.ContextVar[Recording | None]] = contextvars.ContextVar(
    "serving_fetch_recording", default=None)


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
        self._cache: OrderedDict[str, tuple[int, Envelope | None, Stamp | None]] = OrderedDict()
        self._derived: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
        self._pending: list[Waiter] = []
        self._in_flight = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.hits = 0
        self.misses = 0
        self.batches = 0

    def open_reader(self) -> Reader:
        if self.reader is None:
            raise RedisUnavailable("serving: no Redis reader open (lifespan not started)")
        return self.reader

    async def get(self, keys: Sequence[str], *, cache: bool = True) -> list[Envelope | None]:
        """The envelopes of ``keys`` (``None`` where absent), in order; cached ones when
        ``cache`` and younger than the bound. Raises on Redis errors or the budget running out
        (``TimeoutError``). Inside a :data:`RECORDING`, every read is recorded."""
        if not keys:
            return []
        rec = RECORDING.get()
        if not cache:
            return await self._uncached(keys, rec)
        now = time.monotonic_ns()
        out: list[Envelope | None] = []
        stamps: list[Stamp | None] = []
        todo: list[str] = []
        cached = self._cache
        for key in keys:
            hit = cached.get(key)
            if hit is not None and now - hit[0] <= self.ttl_ns:
                out.append(hit[1])
                stamps.append(hit[2])
            else:
                out.append(MISSING)  # type: ignore[arg-type]
                stamps.append(None)
                todo.append(key)
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            async with asyncio.timeout(self.budget_s):
                found = await self._batched(todo)
            # what the cache keeps (compacted, or the unchanged object) is what callers get
            fetched = {key: self._put(key, raw, now) for key, raw in zip(todo, found, strict=True)}
            for n, key in enumerate(keys):
                if out[n] is MISSING:
                    out[n], stamps[n] = fetched[key]
        if rec is not None:
            rec.reads.extend(zip(keys, stamps, [True] * len(keys), strict=True))
        return out

    async def _uncached(self, keys: Sequence[str], rec: Recording | None) -> list[Envelope | None]:
        pre = rec.prefetched if rec is not None else {}
        if pre and all(k in pre for k in keys):
            found = [pre[k] for k in keys]
        else:
            async with asyncio.timeout(self.budget_s):
                found = await self._batched(keys)
        got = [(_live(raw), stamp_of(raw)) for raw in found]
        if rec is not None:
            rec.reads.extend((k, st, False) for k, (_, st) in zip(keys, got, strict=True))
        return [env for env, _ in got]

    async def unchanged(self, deps: Deps, rec: Recording) -> bool:
        """True when every value in ``deps`` (a :meth:`Recording.deps`) still has its stamp:
        uncached values and cached ones older than the bound are read in one MGET (the
        uncached ones kept in ``rec.prefetched`` for a rebuild), the others come from the
        cache."""
        fresh_keys, fresh_stamps, keys, stamps = deps
        now = time.monotonic_ns()
        ttl = self.ttl_ns
        cache_get = self._cache.get
        expired: list[int] = []
        for n, key in enumerate(keys):
            hit = cache_get(key)
            if hit is None or now - hit[0] > ttl:
                expired.append(n)
            elif hit[2] != stamps[n]:
                self.hits += n + 1 - len(expired)
                return False  # changed: the rebuild reads what it needs
        self.hits += len(keys) - len(expired)
        self.misses += len(expired)
        todo = [*fresh_keys, *(keys[n] for n in expired)]
        if not todo:
            return True
        async with asyncio.timeout(self.budget_s):
            found = await self._batched(todo)
        same = True
        for key, stamp, raw in zip(fresh_keys, fresh_stamps, found, strict=False):
            rec.prefetched[key] = raw
            if stamp_of(raw) != stamp:
                same = False
        for n, raw in zip(expired, found[len(fresh_keys):], strict=True):
            if self._put(keys[n], raw, now)[1] != stamps[n]:
                same = False
        return same

    # ---- batching -----------------------------------------------------------------------------
    def _batched(self, keys: Sequence[str]) -> asyncio.Future[list[bytes | None]]:
        reader = self.open_reader()  # raises at once when no reader is open
        fut: asyncio.Future[list[bytes | None]] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, fut))
        if not self._in_flight:
            self._in_flight = True
            task = asyncio.ensure_future(self._drain(reader))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return fut

    async def _drain(self, reader: Reader) -> None:
        """Send what is pending as one MGET, repeatedly, until nothing is left."""
        try:
            await asyncio.sleep(0)  # let the requests that are ready add their keys first
            while self._pending:
                batch, self._pending = self._pending, []
                unique = list(dict.fromkeys(k for keys, _ in batch for k in keys))
                self.batches += 1
                try:
                    found = await reader.get_raw_many(unique)
                except Exception as exc:  # the waiters get the error (Redis down, timeout) ...
                    part = exc.found if isinstance(exc, PartialRead) else {}
                    for keys, fut in batch:
                        if fut.done():
                            continue
                        if part and all(k in part for k in keys):  # ... or what they need
                            fut.set_result([part[k] for k in keys])
                        else:
                            fut.set_exception(exc)
                    continue
                by_key = dict(zip(unique, found, strict=True))
                for keys, fut in batch:
                    if not fut.done():
                        fut.set_result([by_key[k] for k in keys])
        finally:
            self._in_flight = False

    def derived(self, envs: Sequence[Envelope | None], kind: str,
                make: Callable[[], T]) -> T:
        """``make()`` memoised for these envelope objects (kept alive by the memo, so their ids
        are not reused while it holds them)."""
        key = (kind, *(id(e) for e in envs))
        hit = self._derived.get(key)
        if hit is not None:
            self._derived.move_to_end(key)
            return hit[1]  # type: ignore[no-any-return]
        value = make()
        self._derived[key] = (tuple(envs), value)
        if len(self._derived) > DERIVED_CAPACITY:
            self._derived.popitem(last=False)
        return value

    def stale(self, keys: Sequence[str]) -> list[Envelope | None] | None:
        """Every key from the cache whatever its age, or ``None`` when one is not cached."""
        out: list[Envelope | None] = []
        for key in keys:
            hit = self._cache.get(key)
            if hit is None:
                return None
            out.append(hit[1])
        return out

    def _put(self, key: str, raw: bytes | None,
             now: int) -> tuple[Envelope | None, Stamp | None]:
        stamp = stamp_of(raw)
        old = self._cache.get(key)
        if old is not None and old[2] == stamp:
            env = old[1]  # unchanged: keep the object, so values derived from it stay memoised
        else:
            env = _live(raw)
            if env is not None:
                env = _compact(env)
        self._cache[key] = (now, env, stamp)
        self._cache.move_to_end(key)
        while len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return env, stamp

    @property
    def hit_ratio(self) -> float | None:
        total = self.hits + self.misses
        return self.hits / total if total else None
