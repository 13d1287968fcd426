"""Session candidates ("because you viewed"): neighbours of the last items a user looked at.

Pure: the caller passes the user's session payload (``recs:v1:session:{user}``) and the neighbour
lists (``recs:v1:similar:{item}``) of the items in it. The server calls this at read time, so a
click is reflected as soon as the session state and neighbour lists are in Redis.

Scoring: each recent item ``a`` at recency rank ``r`` (0 = newest) votes for each neighbour ``b``
with ``recency_decay ** r * normalised_score(a -> b)``, where the normalised score divides by the
strongest neighbour of ``a`` so lists with many events do not drown out the rest. Items the user
already bought, the recent items themselves (unless ``allow_repeats``) and ``exclude`` are removed.
Items the user was merely shown (the session's ``shown`` list, from impressions) are not
interactions: they neither vote nor count as recent, and this module never reads them.

>>> session = {"events": [["a", "view", 1], ["b", "view", 2]], "purchased": ["z"]}
>>> neighbours = {"b": [["c", 2.0], ["z", 1.9], ["a", 1.0]], "a": [["d", 5.0], ["c", 4.0]]}
>>> [(c.item_id, c.because) for c in session_candidates(session, neighbours, k=3)]
[('c', 'b'), ('d', 'a')]
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_RECENT = 5
DEFAULT_RECENCY_DECAY = 0.7


@dataclass(frozen=True, slots=True)
class Candidate:
    item_id: str
    score: float
    because: str  # the recent item whose neighbour this is (strongest contributor)


def recent_items(session: Mapping[str, Any], n: int = DEFAULT_RECENT) -> list[str]:
    """Distinct items of the session, newest first, at most ``n``."""
    seen: list[str] = []
    if n <= 0:
        return seen
    for item_id, _etype, _ts in reversed(session.get("events", [])):
        if item_id not in seen:
            seen.append(item_id)
            if len(seen) == n:
                break
    return seen


def session_candidates(
    session: Mapping[str, Any],
    neighbours: Mapping[str, Sequence[Sequence[Any]]],
    *,
    k: int = 20,
    recent: int = DEFAULT_RECENT,
    recency_decay: float = DEFAULT_RECENCY_DECAY,
    exclude: Collection[str] = (),
    allow_repeats: bool = False,
) -> list[Candidate]:
    history = recent_items(session, recent)
    banned = set(exclude) | set(session.get("purchased", ()))
    if not allow_repeats:
        banned |= set(history)
    scores: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for rank, src in enumerate(history):
        lst = neighbours.get(src) or ()
        if not lst:
            continue
        top = float(lst[0][1])
        weight = recency_decay**rank
        for item_id, log_score in lst:
            if item_id in banned:
                continue
            # scores are log-weights; exp of the difference is the ratio to the strongest one
            vote = weight * math.exp(float(log_score) - top)
            scores[item_id] = scores.get(item_id, 0.0) + vote
            if item_id not in best or vote > best[item_id][0]:
                best[item_id] = (vote, src)
    ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [Candidate(item_id, score, best[item_id][1]) for item_id, score in ranked]
