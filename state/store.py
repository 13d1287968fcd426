"""One store protocol, two implementations (in-memory here, Redis in :mod:`state.redis_store`).

Both apply the same rule: an :class:`~state.records.Update` lands only if its version is not
below the stored version, so writers are idempotent under replay. ``tests/test_store.py`` runs
one suite against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from state.keys import KIND_ITEMVEC, PREFIX
from state.records import Envelope, Update

_ITEMVEC_PREFIX = f"{PREFIX}{KIND_ITEMVEC}:"


class Store(Protocol):
    def apply(self, updates: Iterable[Update]) -> int:
        """Write every update whose version is >= the stored one; return how many landed."""
        ...

    def get(self, key: str) -> Envelope | None: ...

    def get_many(self, keys: Sequence[str]) -> list[Envelope | None]: ...

    def keys(self, prefix: str = PREFIX) -> list[str]:
        """Every live key under ``prefix`` (tombstones excluded), sorted."""
        ...

    def mark_fresh(self, writer: str, event_ts: int) -> None:
        """Record that ``writer`` has applied everything up to event time ``event_ts``."""
        ...

    def freshness(self) -> dict[str, int]: ...

    def vector_changes(self, since: int, limit: int = 10_000) -> list[tuple[str, int]]:
        """``(item_id, version)`` of the item-vector writes at version >= ``since``, by version
        then id, at most ``limit`` (the changelog keeps each item's newest write only)."""
        ...


def newest_per_key(updates: Iterable[Update]) -> list[Update]:
    """Coalesce a batch: keep the highest version per key (ties keep the later one).

    >>> a, b = Update("k", 1, 10, "x"), Update("k", 2, 11, "y")
    >>> newest_per_key([b, a, Update("j", 1, 5, None)])
    [Update(key='k', version=2, as_of=11, data='y'), Update(key='j', version=1, as_of=5, data=None)]
    """
    latest: dict[str, Update] = {}
    for upd in updates:
        cur = latest.get(upd.key)
        if cur is None or upd.version >= cur.version:
            latest[upd.key] = upd
    return list(latest.values())


class MemoryStore:
    """Dictionary-backed store; the reference runner and unit tests use it."""

    def __init__(self) -> None:
        self._data: dict[str, Envelope] = {}
        self._fresh: dict[str, int] = {}
        self._vector_log: dict[str, int] = {}

    def apply(self, updates: Iterable[Update]) -> int:
        applied = 0
        for upd in updates:
            cur = self._data.get(upd.key)
            if cur is not None and cur.version > upd.version:
                continue
            self._data[upd.key] = Envelope(upd.version, upd.as_of, upd.data)
            if upd.key.startswith(_ITEMVEC_PREFIX):
                self._vector_log[upd.key[len(_ITEMVEC_PREFIX):]] = upd.version
            applied += 1
        return applied

    def get(self, key: str) -> Envelope | None:
        env = self._data.get(key)
        return None if env is None or env.data is None else env

    def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        return [self.get(k) for k in keys]

    def keys(self, prefix: str = PREFIX) -> list[str]:
        return sorted(k for k, env in self._data.items()
                      if k.startswith(prefix) and env.data is not None)

    def mark_fresh(self, writer: str, event_ts: int) -> None:
        self._fresh[writer] = max(event_ts, self._fresh.get(writer, event_ts))

    def freshness(self) -> dict[str, int]:
        return dict(self._fresh)

    def vector_changes(self, since: int, limit: int = 10_000) -> list[tuple[str, int]]:
        found = sorted((v, i) for i, v in self._vector_log.items() if v >= since)
        return [(i, v) for v, i in found[:limit]]
