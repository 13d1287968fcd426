"""Small pure helpers of every answer: decayed scores, freshness, what a session has seen.

Ranked lists (trending, similar, bought together) hold ``[item_id, log_score]`` pairs where
``log_score = log Σ w·exp(λ·t_s)`` (forward decay, λ = ln 2 / half-life). The score shown is the
value decayed to now, ``exp(log_score - λ·now_s)``; the order of a list never changes with time.

>>> freshness([5_000, 7_000], now_ms=10_000)
{'as_of_ms': 5000, 'newest_ms': 7000, 'age_ms': 5000}
>>> sorted(session_seen({"events": [["a", "view", 1]], "purchased": ["b"], "shown": [["c", 1, 1]]}))
['a', 'b']
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

_MAX_EXP: Final = 700.0  # exp() overflows a float a little above 709


def decayed_score(log_score: float, half_life_s: float, now_ms: int) -> float:
    """``exp(log_score - λ·now_s)``; a non-positive half-life means no decay.

    >>> round(decayed_score(math.log(8.0) + math.log(2) * 10, 10.0, now_ms=110_000), 9)
    4.0
    """
    lam = math.log(2) / half_life_s if half_life_s > 0 else 0.0
    return math.exp(min(log_score - lam * now_ms / 1000.0, _MAX_EXP))


def session_seen(session: Mapping[str, Any] | None) -> frozenset[str]:
    """Items a session touched or bought; fallbacks do not recommend them again. Items it was
    merely shown (impressions) do not count."""
    if not session:
        return frozenset()
    seen = {ev[0] for ev in session.get("events", ())}
    return frozenset(seen | set(session.get("purchased", ())))


def freshness(event_times: Iterable[int], now_ms: int) -> dict[str, int | None]:
    """``as_of_ms``: oldest event time among the data used (the conservative bound);
    ``newest_ms``: the newest; ``age_ms``: now - as_of. All ``None`` when no data was used."""
    times = list(event_times)
    if not times:
        return {"as_of_ms": None, "newest_ms": None, "age_ms": None}
    oldest = min(times)
    return {"as_of_ms": oldest, "newest_ms": max(times), "age_ms": now_ms - oldest}
