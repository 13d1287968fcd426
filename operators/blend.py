"""The homepage blend: candidates from every source the stream keeps, merged with provenance.

Pure, like every operator: the caller passes the user's session payload and the ranked lists it
read (neighbour lists of the recent items, trending lists), and gets scored candidates, each with
the evidence that put it there. The server's homepage and ``recs eval``'s ``engine`` method call
this same function, so the accuracy measured is the accuracy served.

Sources and scores (``BlendParams`` holds the weights):

- ``session``: :func:`operators.candidates.session_candidates` over the similar-items lists of
  the ``recent`` newest distinct items (co-visitation), weight ``session_weight``;
- ``bought_together``: the same vote over their bought-together lists, weight ``bought_weight``;
- ``vector``: the online model's retrieval for the user (the items whose learned vectors score
  highest against the user's vector, :func:`vector_shares` of their scores), weight
  ``vector_weight``, once the model has learned from the user ``vector_min_events`` times
  (below that a user's vector is barely trained and its retrieval is about popularity, which
  pushes out better session candidates: ``docs/quality/tuning.md``); the evidence names
  ``because`` the model version that scored it;
- ``recently_viewed``: the recent items themselves, the r-th newest scoring ``remind[r]``
  (a "continue where you left off" row; empty ``remind`` turns it off). With ``allow_repeats``
  the recent items may also come back as neighbours and fills; without it they never do;
- fills, strictly after every blended candidate, in the order given: trending in the user's
  categories, trending for the request's context, global trending (``fills``).

A candidate found by several sources sums their contributions and keeps every piece of evidence,
strongest first, so an explanation can name all of them.

>>> session = {"events": [["a", "view", 1], ["b", "view", 2]], "purchased": []}
>>> similar = {"b": shares([["c", 2.0], ["a", 1.0]]), "a": shares([["d", 5.0]])}
>>> fills = [Fill("trending", "global", [["t", 1.0], ["c", 0.5]])]
>>> out = blend(session, similar, {}, fills, BlendParams(remind=(0.1,)), k=4)
>>> [(s.item_id, [e.source for e in s.evidence]) for s in out]
[('c', ['session']), ('d', ['session']), ('b', ['recently_viewed']), ('t', ['trending'])]
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from operators.candidates import recent_items

SESSION: Final = "session"
BOUGHT_TOGETHER: Final = "bought_together"
RECENTLY_VIEWED: Final = "recently_viewed"
TRENDING: Final = "trending"
TRENDING_CATEGORY: Final = "trending_category"
TRENDING_CONTEXT: Final = "trending_context"
VECTOR: Final = "vector"

FILL_SHARE: Final = 0.5  # a fill scores at most this share of the weakest blended candidate


@dataclass(frozen=True, slots=True)
class BlendParams:
    recent: int = 5               # recent distinct items whose neighbours vote
    recency_decay: float = 0.5    # weight of the r-th newest recent item: decay ** r
    session_weight: float = 1.0
    bought_weight: float = 0.5
    vector_weight: float = 1.0    # the learned retrieval (0: off)
    vector_temperature: float = 0.2  # vector_shares: score gap that divides a share by e
    vector_min_events: int = 30   # events learned from the user before its vector votes
    remind: tuple[float, ...] = ()  # score of the r-th newest recent item as a candidate
    allow_repeats: bool = False   # may neighbours and fills bring back the recent items
    pool: int = 200               # candidates per source before merging

    def __post_init__(self) -> None:
        if self.vector_min_events < 0:
            raise ValueError(f"operators.blend: vector_min_events must be >= 0, "
                             f"got {self.vector_min_events!r}")
        for name in ("recent", "pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"operators.blend: {name} must be >= 1, "
                                 f"got {getattr(self, name)!r}")
        if not (math.isfinite(self.vector_temperature) and self.vector_temperature > 0):
            raise ValueError(f"operators.blend: vector_temperature must be a finite number > 0, "
                             f"got {self.vector_temperature!r}")
        for name in ("recency_decay", "session_weight", "bought_weight", "vector_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"operators.blend: {name} must be a finite number >= 0, "
                                 f"got {value!r}")
        if any(not (math.isfinite(w) and w >= 0) for w in self.remind):
            raise ValueError(f"operators.blend: remind weights must be finite and >= 0, "
                             f"got {self.remind!r}")


@dataclass(frozen=True, slots=True)
class Evidence:
    source: str
    score: float  # this source's contribution to the candidate's score
    because: str  # the item (or the trending scope) that produced it


@dataclass(frozen=True, slots=True)
class Fill:
    """A trending list used to fill the answer: ``items`` are ``[item_id, log_score]`` pairs
    (or ``[item_id, log_score, source, scope]`` when the entries come from several lists)."""

    source: str
    scope: str
    items: Sequence[Sequence[Any]]


@dataclass(slots=True)
class Scored:
    item_id: str
    score: float
    evidence: list[Evidence] = field(default_factory=list)


Shares = Sequence[tuple[str, float]]


def shares(lst: Sequence[Sequence[Any]]) -> tuple[tuple[str, float], ...]:
    """A ranked list of ``[item_id, log_score]`` as ``(item_id, score / best score)``: the form
    :func:`blend` votes with. Callers that serve many requests cache it per list version.

    >>> shares([["a", 2.0], ["b", 2.0 - math.log(4)]])
    (('a', 1.0), ('b', 0.25))
    """
    if not lst:
        return ()
    top = float(lst[0][1])
    return tuple((str(e[0]), math.exp(float(e[1]) - top)) for e in lst)


def vector_shares(scored: Sequence[tuple[str, float]],
                  temperature: float) -> tuple[tuple[str, float], ...]:
    """Retrieval scores (inner products, best first) as shares of the best one:
    ``exp((score - best) / temperature)``, so a gap of ``temperature`` divides a share by e.

    >>> [(i, round(s, 3)) for i, s in vector_shares([("a", 0.9), ("b", 0.8)], 0.1)]
    [('a', 1.0), ('b', 0.368)]
    """
    if not scored:
        return ()
    top = float(scored[0][1])
    return tuple((str(i), math.exp((float(s) - top) / temperature)) for i, s in scored)


def _vote(history: Sequence[str], lists: Mapping[str, Shares], banned: Collection[str],
          decay: float, weight: float, pool: int) -> tuple[dict[str, float], dict[str, str]]:
    """Neighbour votes of the recent items (see :mod:`operators.candidates`): the best
    ``pool`` items with their summed votes, and for each the recent item that gave most."""
    votes: dict[str, float] = {}
    best: dict[str, float] = {}
    because: dict[str, str] = {}
    votes_get, best_get = votes.get, best.get  # hot loop: bound once
    for rank, src in enumerate(history):
        lst = lists.get(src)
        if not lst:
            continue
        w = weight * decay**rank
        for item_id, share in lst:
            if item_id in banned:
                continue
            vote = w * share
            votes[item_id] = votes_get(item_id, 0.0) + vote
            if vote > best_get(item_id, -1.0):
                best[item_id] = vote
                because[item_id] = src
    if len(votes) > pool:
        votes = dict(heapq.nsmallest(pool, votes.items(), key=lambda kv: (-kv[1], kv[0])))
    return votes, because


def blend(session: Mapping[str, Any] | None, similar: Mapping[str, Shares],
          bought: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams, *, k: int,
          exclude: Collection[str] = (), vector: Shares = (),
          vector_because: str = "", vector_events: int = 0) -> list[Scored]:
    """The best ``k`` candidates, score descending (ties by id), every one with its evidence.
    ``similar`` and ``bought`` map recent items to their lists as :func:`shares`; ``vector``
    is the user's learned retrieval as :func:`vector_shares` (``vector_because``: what to name
    as its cause, e.g. the model version; ``vector_events``: how many events the model learned
    from the user, gated by ``params.vector_min_events``)."""
    history = recent_items(session, params.recent) if session else []
    purchased = set(session.get("purchased", ())) if session else set()
    banned = set(exclude) | purchased
    if not params.allow_repeats:
        banned |= set(history)
    sources: list[tuple[str, dict[str, float], dict[str, str]]] = []
    if params.session_weight > 0:
        sources.append((SESSION, *_vote(history, similar, banned, params.recency_decay,
                                        params.session_weight, params.pool)))
    if params.bought_weight > 0:
        sources.append((BOUGHT_TOGETHER, *_vote(history, bought, banned, params.recency_decay,
                                                params.bought_weight, params.pool)))
    if params.vector_weight > 0 and vector and vector_events >= params.vector_min_events:
        votes = {i: params.vector_weight * share for i, share in vector[:params.pool]
                 if i not in banned}
        sources.append((VECTOR, votes, dict.fromkeys(votes, vector_because)))
    remind = {item_id: w for item_id, w in zip(history, params.remind, strict=False)
              if w > 0 and item_id not in exclude}
    sources.append((RECENTLY_VIEWED, remind, {i: i for i in remind}))
    total: dict[str, float] = {}
    for _, votes, _ in sources:
        for item_id, vote in votes.items():
            total[item_id] = total.get(item_id, 0.0) + vote
    top = heapq.nsmallest(k, total.items(), key=lambda kv: (-kv[1], kv[0]))
    ranked: list[Scored] = []
    for item_id, score in top:
        evidence = [Evidence(name, votes[item_id], because[item_id])
                    for name, votes, because in sources if item_id in votes]
        evidence.sort(key=lambda e: -e.score)
        ranked.append(Scored(item_id, score, evidence))
    if len(ranked) < k:
        _fill(ranked, fills, k, banned)
    return ranked


def _fill(ranked: list[Scored], fills: Sequence[Fill], k: int, banned: Collection[str]) -> None:
    """Append trending items after the blended ones, scored strictly below them."""
    taken = {c.item_id for c in ranked}
    floor = ranked[-1].score * FILL_SHARE if ranked else 1.0
    for fill in fills:
        if not fill.items:
            continue
        top = float(fill.items[0][1])
        for entry in fill.items:
            item_id, log_score = entry[0], entry[1]
            if item_id in banned or item_id in taken:
                continue
            share = math.exp(float(log_score) - top)
            score = floor * share
            # an entry may name its own source and scope: [item_id, log_score, source, scope]
            source, scope = (entry[2], entry[3]) if len(entry) > 3 else (fill.source, fill.scope)
            ranked.append(Scored(item_id, score, [Evidence(source, score, scope)]))
            taken.add(item_id)
            if len(ranked) == k:
                return
        floor = ranked[-1].score * FILL_SHARE if ranked else floor
