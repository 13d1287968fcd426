"""Whole answers, cached by the versions of the data behind them.

A storefront widget polls: the homepage rail every few seconds, the "because you viewed" rail
every second. While nothing behind an answer changed, computing it again gives the same bytes,
so the server keeps each finished answer (:class:`Frozen`: its items already serialised) under
the request that asked for it (:func:`answer_key`: placement, user, options, A/B variant and the
ranking clock) with the *stamps* (version, event time, size) of every value it read
(:class:`~serving.fetch.Recording`) and the generation of the loaded models. A later request
reuses it when :meth:`serving.fetch.Fetcher.unchanged` finds every stamp unchanged: the user's
session and vector read again from Redis in one MGET (with any shared value whose cached copy
passed its one-second bound), the shared lists from the in-process cache. Anything else is
recomputed, and the answer is exactly the one a fresh computation gives (``tests/serving/
test_answer_equality.py`` checks that over thousands of requests).

What stays per request, after the cache: the ``rec_id``, the exploration slot (a hash of the
``rec_id`` decides it, so the cached answer keeps the candidates it may show, each rendered),
the freshness ages, the metrics and the impression log. Rotation and the seen-filters are
functions of the session value, whose stamp is part of every entry: an impression the stream
counts changes the session, and the next poll computes the answer again.

Only answers that are functions of those inputs are cached: placements whose options name
everything they depend on (:data:`CACHED_PLACEMENTS`) and drafts without scores decayed to
the current millisecond (``Draft.timeless``). The ranker's features and the new-arrival boost
read time through the ranking clock (:func:`serving.handlers.rank_clock`, the minute), which is
part of the key.

Identical requests that arrive while their answer is being computed (a widget's burst, a poll
racing the first request) wait for that computation instead of repeating it (``shared``): they
get the answer computed from data read a few milliseconds before they arrived, the staleness
the shared-list cache allows anyway.

The entries hold bytes, strings and numbers in tuples only, which the garbage collector stops
tracking: a full cache does not lengthen collections. Bounded LRU (:data:`DEFAULT_CAPACITY`).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from serving.fetch import Deps

CACHED_PLACEMENTS: Final = frozenset({"homepage", "session"})
DEFAULT_CAPACITY: Final = 10_000

Key = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class Exploring:
    """What the exploration slot may do to a cached answer: put one of ``options`` (item id,
    its rendered JSON) at ``place``, with probability ``epsilon``."""

    slot: int
    place: int
    epsilon: float
    options: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Frozen:
    """A finished answer before the per-request steps: items as JSON fragments, in order."""

    placement: str
    parts: tuple[bytes, ...]
    ids: tuple[str, ...]
    sources: tuple[str, ...]
    times: tuple[int, ...]        # event times of the data used (freshness)
    fallback: str | None
    degraded: bool
    ranker: str
    session_id: str | None
    explore: Exploring | None


@dataclass(frozen=True, slots=True)
class Entry:
    deps: Deps
    models: int  # ModelRefresher.generation when it was computed
    frozen: Frozen


def answer_key(placement: str, user: str | None, k: int, exclude: frozenset[str],
               category: str | None, context: Mapping[str, str], explain: bool, variant: str,
               clock: int) -> Key:
    """The request as the cache sees it (everything an answer depends on besides data).

    >>> answer_key("homepage", "u1", 8, frozenset({"b", "a"}), None, {"device": "mobile"},
    ...            False, "default", 60_000)
    ('homepage', 'u1', 8, ('a', 'b'), None, (('device', 'mobile'),), False, 'default', 60000)
    """
    return (placement, user, k, tuple(sorted(exclude)), category,
            tuple(sorted(context.items())), explain, variant, clock)


class AnswerCache:
    """Bounded LRU of :class:`Entry`; ``capacity`` 0 turns it off (every answer computed)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"serving.answer_cache: capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self.running: dict[Key, asyncio.Future[Frozen]] = {}  # answers being computed
        self.shared = 0  # requests that waited for the same answer being computed
        self.hits = 0
        self.misses = 0
        self.stale = 0  # found, but something behind it changed

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: Entry) -> None:
        if not self.capacity:
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
