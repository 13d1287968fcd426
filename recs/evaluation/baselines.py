"""Simple baselines, learning one event at a time, as session-rec defines them.

- ``pop``: all-time popularity (event counts);
- ``recent_pop``: forward-decayed popularity (half-life ``half_life_s``), like the engine's
  trending but a single global list over all items;
- ``covisit``: item co-visitation, session-rec's IKNN: ``sim(i, j) = c(i, j) / ((n_i + λ)^α ·
  (n_j + λ)^(1-α))`` where ``c`` counts event pairs within a session, ``n`` events per item,
  ``λ = 20``, ``α = 0.5``; the 100 most similar items of the session's last item;
- ``ar``: association rules (Ludewig & Jannach 2018; session-rec ``ar.py``): every ordered pair
  of events of a session, both directions, weight 1; the rules of the last item, pruned to the
  20 strongest;
- ``sr``: sequential rules (session-rec ``sr.py``): item ``b`` following ``a`` at most ``steps =
  10`` events later gets ``1/gap``; the rules of the last item, pruned to the 20 strongest.

Events are counted as they arrive (sessions interleave in a stream, but each session's events
keep their order, so the rules equal session-rec's, which trains on session-sorted data).
session-rec prunes once after training; here the pruning is applied at query time to the counts
so far, which is the same for a frozen model. Ties keep the order in which items first gained
a score (session-rec's ``Counter.most_common``). Repeated items count, as in session-rec.

>>> from schemas.events import Interaction
>>> ev = lambda s, i, t: Interaction(f"{s}{t}", "view", s, s, t, item_id=i)
>>> sr = SequentialRules()
>>> for e in [ev("s1", "a", 1), ev("s1", "b", 2), ev("s1", "c", 3), ev("s2", "a", 4)]:
...     sr.learn(e)
>>> sr.recommend(Query("s2", "s2", 5, ("a",)), 5)
['b', 'c']
>>> sr.rules["a"]
{'b': 1.0, 'c': 0.5}
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Iterable

from operators.config import INTEREST_TYPES
from operators.decay import add as decay_add
from recs.evaluation.api import Query, SelfLearning
from schemas.events import Interaction


def _learnable(event: Interaction) -> str | None:
    return event.item_id if event.type in INTEREST_TYPES else None


def _take(ranked: Iterable[str], k: int, exclude: Collection[str]) -> list[str]:
    out: list[str] = []
    for item in ranked:
        if item not in exclude:
            out.append(item)
            if len(out) == k:
                break
    return out


class GrowingTop:
    """Items ranked by scores that only grow; keeps the exact top ``m`` incrementally.

    A score that only grows cannot leave the top ``m`` except by being overtaken, so an item
    outside it is admitted exactly when it beats the current floor (as in the engine's trending).
    Ties rank the item that first gained a score first.

    >>> t = GrowingTop(2)
    >>> for item, score in [("a", 1), ("b", 2), ("c", 3), ("a", 4)]:
    ...     t.bump(item, score)
    >>> t.ranked(3)
    ['a', 'c', 'b']
    """

    def __init__(self, m: int = 200) -> None:
        self.m = m
        self.scores: dict[str, float] = {}
        self.first: dict[str, int] = {}
        self.top: dict[str, tuple[float, int]] = {}  # item -> sort key (-score, first seen)
        self._floor: str | None = None

    def _key(self, item: str) -> tuple[float, int]:
        return (-self.scores[item], self.first[item])

    def _refloor(self) -> None:
        top = self.top
        self._floor = max(top, key=top.__getitem__) if top else None

    def bump(self, item: str, score: float) -> None:
        if item not in self.first:
            self.first[item] = len(self.first)
        self.scores[item] = score
        key = (-score, self.first[item])
        top = self.top
        if item in top:
            top[item] = key
            if item == self._floor:
                self._refloor()
            return
        floor = self._floor
        if len(top) < self.m:
            top[item] = key
            if floor is None or key > top[floor]:
                self._floor = item
            return
        if floor is not None and key < top[floor]:
            del top[floor]
            top[item] = key
            self._refloor()

    def ranked(self, n: int, exclude: Collection[str] = ()) -> list[str]:
        if n + len(exclude) <= len(self.top):
            return _take(sorted(self.top, key=self.top.__getitem__), n, exclude)
        return _take(sorted(self.scores, key=self._key), n, exclude)


class Popularity(SelfLearning):
    name = "pop"
    description = "popularity: all-time event counts"

    def __init__(self) -> None:
        self.counts = GrowingTop()

    def learn(self, event: Interaction) -> None:
        item = _learnable(event)
        if item is not None:
            self.counts.bump(item, self.counts.scores.get(item, 0.0) + 1.0)

    def recommend(self, query: Query, k: int) -> list[str]:
        return self.counts.ranked(k, query.exclude)


class RecentPopularity(SelfLearning):
    name = "recent_pop"

    def __init__(self, half_life_s: float = 86_400.0) -> None:
        self.half_life_s = half_life_s
        self.description = f"decayed popularity, half-life {half_life_s / 3600:g} h"
        self.scores = GrowingTop()

    def learn(self, event: Interaction) -> None:
        item = _learnable(event)
        if item is not None:
            old = self.scores.scores.get(item, float("-inf"))
            self.scores.bump(item, decay_add(old, 1.0, event.ts, self.half_life_s))

    def recommend(self, query: Query, k: int) -> list[str]:
        return self.scores.ranked(k, query.exclude)


class _LastItemRules(SelfLearning):
    """Rules ``src -> {dst: weight}``; recommends the ``pruning`` strongest of the last item."""

    pruning = 20

    def __init__(self) -> None:
        self.rules: dict[str, dict[str, float]] = {}
        self.sessions: dict[str, list[str]] = {}
        self._cache: dict[str, list[str]] = {}

    def _add(self, src: str, dst: str, weight: float) -> None:
        row = self.rules.get(src)
        if row is None:
            row = self.rules[src] = {}
        row[dst] = row.get(dst, 0.0) + weight
        self._cache.pop(src, None)

    def best(self, src: str) -> list[str]:
        cached = self._cache.get(src)
        if cached is None:
            row = self.rules.get(src, {})
            # nlargest is stable: ties keep insertion order, as Counter.most_common does
            cached = [d for d, _ in heapq.nlargest(self.pruning, row.items(),
                                                   key=lambda kv: kv[1])]
            self._cache[src] = cached
        return cached

    def recommend(self, query: Query, k: int) -> list[str]:
        if not query.history:
            return []
        return _take(self.best(query.history[-1]), k, query.exclude)


class AssociationRules(_LastItemRules):
    name = "ar"
    description = "association rules (session-rec ar, pruning 20)"

    def learn(self, event: Interaction) -> None:
        item = _learnable(event)
        if item is None:
            return
        seen = self.sessions.setdefault(event.session_id, [])
        for other in seen:
            self._add(item, other, 1.0)
            self._add(other, item, 1.0)
        seen.append(item)


class SequentialRules(_LastItemRules):
    name = "sr"

    def __init__(self, steps: int = 10) -> None:
        super().__init__()
        self.steps = steps
        self.description = f"sequential rules (session-rec sr, {steps} steps, 1/gap, pruning 20)"

    def learn(self, event: Interaction) -> None:
        item = _learnable(event)
        if item is None:
            return
        seen = self.sessions.setdefault(event.session_id, [])
        for gap, prev in enumerate(reversed(seen[-self.steps:]), 1):
            self._add(prev, item, 1.0 / gap)
        seen.append(item)
        if len(seen) > self.steps:
            del seen[0]


class CoVisitation(SelfLearning):
    name = "covisit"

    def __init__(self, n_sims: int = 100, lmbd: float = 20.0, alpha: float = 0.5) -> None:
        self.n_sims, self.lmbd, self.alpha = n_sims, lmbd, alpha
        self.description = f"item co-visitation (session-rec iknn, λ {lmbd:g}, α {alpha:g})"
        self.co: dict[str, dict[str, int]] = {}
        self.support: dict[str, int] = {}
        self.sessions: dict[str, dict[str, int]] = {}

    def learn(self, event: Interaction) -> None:
        item = _learnable(event)
        if item is None:
            return
        in_session = self.sessions.setdefault(event.session_id, {})
        row = self.co.setdefault(item, {})
        for other, n in in_session.items():
            if other != item:
                row[other] = row.get(other, 0) + n
                back = self.co[other]
                back[item] = back.get(item, 0) + n
        in_session[item] = in_session.get(item, 0) + 1
        self.support[item] = self.support.get(item, 0) + 1

    def similar(self, src: str) -> list[tuple[str, float]]:
        row = self.co.get(src)
        if not row:
            return []
        left = (self.support[src] + self.lmbd) ** self.alpha
        beta, lmbd, support = 1.0 - self.alpha, self.lmbd, self.support
        sims = ((dst, c / (left * (support[dst] + lmbd) ** beta)) for dst, c in row.items())
        return heapq.nlargest(self.n_sims, sims, key=lambda kv: kv[1])

    def recommend(self, query: Query, k: int) -> list[str]:
        if not query.history:
            return []
        return _take((d for d, _ in self.similar(query.history[-1])), k, query.exclude)

