"""Redis implementation of the store protocol, plus the async reader the server uses.

Writes go through one Lua script that applies a whole batch in one round trip: for each key it
compares the stored envelope's version (the envelope starts with ``{"v":<int>`` by construction)
with the update's and writes only when the update is not older. Deletes are written as
tombstones (``"d": null``) that keep their version, so a replayed older update cannot resurrect a
deleted key; tombstones expire after :data:`TOMBSTONE_TTL_S`.

An item-vector write (``recs:v1:itemvec:...``, tombstones too) also records its version in the
:data:`~state.keys.ITEMVEC_LOG_KEY` sorted set, in the same script, so a reader that follows
the log (:meth:`RedisStore.vector_changes`, the server's FAISS refresh) never misses a write.

On a Redis Cluster (a ``redis+cluster://`` URL, :mod:`state.redis_connect`) the batch is split
by slot and each slot's part runs the same script, the changelog is added after the values, and
a write interrupted by a failover is retried until the cluster serves it again
(:mod:`state.cluster_writes`); on one Redis the write is as above, one script per 500 keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final, cast

import redis.asyncio.cluster as aiocluster
import redis.cluster as synccluster

from state.cluster_writes import DEFAULT_BACKOFF, Backoff, SlotWriter, retrying
from state.keys import (
    FRESHNESS_KEY,
    ITEMVEC_LOG_KEY,
    KIND_ITEMVEC,
    KIND_SESSION,
    KIND_USERVEC,
    META_PREFIX,
    PREFIX,
    split_key,
)
from state.records import Envelope, Update, decode_envelope, encode_envelope
from state.redis_connect import AsyncClient, SyncClient, async_client, sync_client

log = logging.getLogger(__name__)
TOMBSTONE_TTL_S: Final = 86_400
_ITEMVEC_PREFIX: Final = f"{PREFIX}{KIND_ITEMVEC}:"
BATCH: Final = 500
CLUSTER_BATCH: Final = 2000  # keys per pipeline on a cluster (one round trip per node)

# The conditional batch write (state/apply.lua, shared with the JVM writer): see that file.
_APPLY_LUA: Final = (Path(__file__).with_name("apply.lua")).read_text(encoding="utf-8")


def ttl_for(key: str, session_ttl_s: int) -> int:
    """Seconds a key lives in Redis: sessions expire, relations and catalogue do not."""
    kind, _ = split_key(key)
    return session_ttl_s if kind in (KIND_SESSION, KIND_USERVEC) else 0


def changelog_member(key: str) -> str:
    """The item a write of ``key`` logs in the vector changelog, or ``""`` for other kinds."""
    return key[len(_ITEMVEC_PREFIX):] if key.startswith(_ITEMVEC_PREFIX) else ""


class RedisStore:
    """Synchronous store used by the update loader and the tests, on one Redis or a cluster;
    ``backoff`` bounds how long a cluster write is retried while the cluster fails over."""

    def __init__(self, client: SyncClient, *, session_ttl_s: int = 30 * 86_400,
                 backoff: Backoff = DEFAULT_BACKOFF) -> None:
        self._r = client
        self._session_ttl_s = session_ttl_s
        self._apply = client.register_script(_APPLY_LUA)
        self._cluster = isinstance(client, synccluster.RedisCluster)
        self._slots = (SlotWriter(client, self._apply)
                       if isinstance(client, synccluster.RedisCluster) else None)
        self._backoff = backoff
        self.retries = 0  # cluster writes repeated after a transient error (failover)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        return cls(sync_client(url), **kwargs)

    @property
    def client(self) -> SyncClient:
        return self._r

    @property
    def is_cluster(self) -> bool:
        return self._cluster

    @property
    def db(self) -> int:
        """The database number the client uses (always 0 on a cluster)."""
        if isinstance(self._r, synccluster.RedisCluster):
            return 0
        return int(self._r.connection_pool.connection_kwargs.get("db", 0))

    def _args(self, upd: Update) -> list[Any]:
        ttl = TOMBSTONE_TTL_S if upd.data is None else ttl_for(upd.key, self._session_ttl_s)
        return [upd.version, encode_envelope(upd), ttl, changelog_member(upd.key)]

    def apply(self, updates: Iterable[Update]) -> int:
        batch = list(updates)
        if self._cluster:
            return sum(self._apply_cluster(batch[start:start + CLUSTER_BATCH])
                       for start in range(0, len(batch), CLUSTER_BATCH))
        applied = 0
        for start in range(0, len(batch), BATCH):
            chunk = batch[start:start + BATCH]
            keys = [u.key for u in chunk]
            args: list[Any] = []
            for upd in chunk:
                args += self._args(upd)
            args.append(ITEMVEC_LOG_KEY)
            applied += int(self._apply(keys=keys, args=args))
        return applied

    def _apply_cluster(self, chunk: list[Update]) -> int:
        keys = [u.key for u in chunk]
        args = [self._args(u) for u in chunk]
        changelog = [(a[3], u.version) for a, u in zip(args, chunk, strict=True) if a[3]]
        slots = cast(SlotWriter, self._slots)
        return retrying("apply", lambda: slots.apply(keys, args, ITEMVEC_LOG_KEY, changelog),
                        backoff=self._backoff, on_retry=self._count_retry)

    def _count_retry(self, exc: BaseException) -> None:
        self.retries += 1
        if self._slots is not None:
            try:
                self._slots.refresh()
            except Exception as err:  # no node answers yet: the next attempt retries
                log.warning("redis: slot map refresh failed: %s", err)

    def vector_changes(self, since: int, limit: int = 10_000) -> list[tuple[str, int]]:
        """Items whose vector was written at model version ``>= since``, oldest first, as
        ``(item_id, version)``; at most ``limit``. Inclusive, so a reader that saw part of one
        version's writes re-reads the rest (see :class:`AsyncReader.vector_changes`)."""
        raw = self._r.zrangebyscore(ITEMVEC_LOG_KEY, since, "+inf", start=0, num=limit,
                                    withscores=True)
        return [(m.decode(), int(v)) for m, v in cast(list[tuple[bytes, float]], raw)]

    def get(self, key: str) -> Envelope | None:
        return _live(cast(bytes | None, self._r.get(key)))

    def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        if not keys:
            return []
        if isinstance(self._r, synccluster.RedisCluster):  # MGET per slot, grouped per node
            raw = self._r.mget_nonatomic(list(keys))
        else:
            raw = self._r.mget(keys)
        return [_live(r) for r in cast(list[bytes | None], raw)]

    def keys(self, prefix: str = PREFIX) -> list[str]:
        found = [k.decode() for k in self._r.scan_iter(match=prefix + "*", count=1000)]
        found = [k for k in found if not k.startswith(META_PREFIX)]
        live = self.get_many(found)
        return sorted(k for k, env in zip(found, live, strict=True) if env is not None)

    def mark_fresh(self, writer: str, event_ts: int) -> None:
        if self._cluster:
            retrying("mark_fresh", lambda: self._mark_fresh(writer, event_ts),
                     backoff=self._backoff, on_retry=self._count_retry)
        else:
            self._mark_fresh(writer, event_ts)

    def _mark_fresh(self, writer: str, event_ts: int) -> None:
        cur = cast(bytes | None, self._r.hget(FRESHNESS_KEY, writer))
        if cur is None or int(cur) < event_ts:
            self._r.hset(FRESHNESS_KEY, writer, str(event_ts))

    def freshness(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], self._r.hgetall(FRESHNESS_KEY))
        return {k.decode(): int(v) for k, v in raw.items()}


class AsyncReader:
    """Read side over redis-py asyncio (the server uses :mod:`serving.redis_client` for
    ``redis://`` URLs; this one for the rest, and the models' refresher)."""

    def __init__(self, client: AsyncClient) -> None:
        self._r = client

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> AsyncReader:
        return cls(async_client(url, **kwargs))

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        return [_live(raw) for raw in await self.get_raw_many(keys)]

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The stored envelope bytes (``None`` where absent), undecoded; on a cluster one MGET
        per slot, grouped per node."""
        if not keys:
            return []
        if isinstance(self._r, aiocluster.RedisCluster):
            return cast(list[bytes | None], await self._r.mget_nonatomic(list(keys)))
        return cast(list[bytes | None], await self._r.mget(keys))

    async def freshness(self) -> dict[str, int]:
        raw = cast(dict[bytes, bytes], await self._r.hgetall(FRESHNESS_KEY))
        return {k.decode(): int(v) for k, v in raw.items()}

    async def vector_changes(self, since: int, limit: int = 10_000) -> list[tuple[str, int]]:
        """As :meth:`RedisStore.vector_changes`: ``(item_id, version)`` with version >= since."""
        raw = await self._r.zrangebyscore(ITEMVEC_LOG_KEY, since, "+inf", start=0, num=limit,
                                          withscores=True)
        return [(m.decode(), int(v)) for m, v in cast(list[tuple[bytes, float]], raw)]

    async def ping(self) -> bool:
        return bool(await self._r.ping())

    async def close(self) -> None:
        await self._r.aclose()


def _live(raw: bytes | None) -> Envelope | None:
    if raw is None:
        return None
    env = decode_envelope(raw)
    return None if env.data is None else env
