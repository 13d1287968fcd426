"""Pure answer building: Redis payloads in, scored and explained recommendations out.

No I/O and no clock reads: the handlers fetch envelopes and pass ``now_ms``. The ranking API to
come (merge, re-rank, A/B) composes these same steps.

Ranked lists (trending, similar, bought together) hold ``[item_id, log_score]`` pairs where
``log_score = log Σ w·exp(λ·t_s)`` (forward decay, λ = ln 2 / half-life). The score shown is the
value decayed to now, ``exp(log_score - λ·now_s)``; the order of a list never changes with time.

>>> payload = {"items": [["a", 10.0], ["b", 9.0]], "half_life_s": 0}
>>> [(r.item_id, round(r.score, 3), r.reason)
...  for r in ranked_list(payload, source=TRENDING, reason="trending", now_ms=0, limit=5)]
[('a', 22026.466, 'trending'), ('b', 8103.084, 'trending')]
>>> freshness([5_000, 7_000], now_ms=10_000)
{'as_of_ms': 5000, 'newest_ms': 7000, 'age_ms': 5000}
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from operators.candidates import session_candidates

TRENDING: Final = "trending"
SIMILAR: Final = "similar"
BOUGHT_TOGETHER: Final = "bought_together"
SESSION: Final = "session"

# why an answer came from another source than the one asked for
FALLBACK_NO_SESSION: Final = "no_session"
FALLBACK_NO_CANDIDATES: Final = "no_candidates"
FALLBACK_NO_NEIGHBOURS: Final = "no_neighbours"
FALLBACK_REDIS_UNAVAILABLE: Final = "redis_unavailable"

META_FIELDS: Final = ("title", "category", "price")
_MAX_EXP: Final = 700.0  # exp() overflows a float a little above 709


@dataclass(frozen=True, slots=True)
class Rec:
    item_id: str
    score: float
    source: str
    reason: str


@dataclass(frozen=True, slots=True)
class Answer:
    """What one endpoint returns, before rendering; ``event_times`` are the envelopes' ``t``."""

    recs: tuple[Rec, ...]
    source: str
    event_times: tuple[int, ...] = ()
    fallback: str | None = None
    degraded: bool = False


def decayed_score(log_score: float, half_life_s: float, now_ms: int) -> float:
    """``exp(log_score - λ·now_s)``; a non-positive half-life means no decay.

    >>> round(decayed_score(math.log(8.0) + math.log(2) * 10, 10.0, now_ms=110_000), 9)
    4.0
    """
    lam = math.log(2) / half_life_s if half_life_s > 0 else 0.0
    return math.exp(min(log_score - lam * now_ms / 1000.0, _MAX_EXP))


def ranked_list(payload: Mapping[str, Any], *, source: str, reason: str, now_ms: int,
                limit: int, exclude: Collection[str] = ()) -> list[Rec]:
    """The first ``limit`` entries of a ranked list that are not excluded, best first."""
    half_life = float(payload.get("half_life_s") or 0.0)
    out: list[Rec] = []
    for item_id, log_score in payload.get("items", ()):
        if item_id in exclude:
            continue
        out.append(Rec(item_id, decayed_score(float(log_score), half_life, now_ms), source, reason))
        if len(out) == limit:
            break
    return out


def session_recs(session: Mapping[str, Any], neighbours: Mapping[str, Sequence[Sequence[Any]]],
                 titles: Mapping[str, str], *, limit: int, recent: int,
                 exclude: Collection[str] = ()) -> list[Rec]:
    """"Because you viewed": :func:`operators.candidates.session_candidates`, explained."""
    cands = session_candidates(session, neighbours, k=limit, recent=recent, exclude=exclude)
    return [Rec(c.item_id, c.score, SESSION, f"viewed {titles.get(c.because, c.because)}")
            for c in cands]


def session_seen(session: Mapping[str, Any]) -> frozenset[str]:
    """Items a session already touched or bought; fallbacks do not recommend them again."""
    seen = {ev[0] for ev in session.get("events", ())}
    return frozenset(seen | set(session.get("purchased", ())))


def title_of(item_id: str, meta: Mapping[str, Any] | None) -> str:
    title = meta.get("title") if meta else None
    return str(title) if title else item_id


def trending_reason(category: str | None) -> str:
    return "trending" if category is None else f"trending in {category}"


def is_deleted(meta: Mapping[str, Any] | None) -> bool:
    return bool(meta and meta.get("deleted"))


def keep_live(recs: Iterable[Rec], meta: Mapping[str, Mapping[str, Any] | None],
              k: int) -> list[Rec]:
    """Drop items the catalogue marks deleted; the first ``k`` of the rest."""
    return [r for r in recs if not is_deleted(meta.get(r.item_id))][:k]


def freshness(event_times: Iterable[int], now_ms: int) -> dict[str, int | None]:
    """``as_of_ms``: oldest event time among the data used (the conservative bound);
    ``newest_ms``: the newest; ``age_ms``: now - as_of. All ``None`` when no data was used."""
    times = list(event_times)
    if not times:
        return {"as_of_ms": None, "newest_ms": None, "age_ms": None}
    oldest = min(times)
    return {"as_of_ms": oldest, "newest_ms": max(times), "age_ms": now_ms - oldest}


def render_item(rec: Rec, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"item_id": rec.item_id, "score": rec.score, "source": rec.source,
                           "reason": rec.reason}
    if meta:
        for name in META_FIELDS:
            value = meta.get(name)
            if value is not None:
                doc[name] = value
    return doc


def render(answer: Answer, meta: Mapping[str, Mapping[str, Any] | None],
           now_ms: int) -> dict[str, Any]:
    """The JSON document of an answer (see ``docs`` in :mod:`serving`)."""
    doc: dict[str, Any] = {
        "items": [render_item(r, meta.get(r.item_id)) for r in answer.recs],
        "source": answer.source,
        "freshness": freshness(answer.event_times, now_ms),
        "degraded": answer.degraded,
    }
    if answer.fallback is not None:
        doc["fallback"] = answer.fallback
    return doc
