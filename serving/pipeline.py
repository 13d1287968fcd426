"""Candidate assembly and explanation for every placement: pure functions, no I/O, no clock.

The handlers (:mod:`serving.routes`, :mod:`serving.recommend`) fetch the lists from Redis and
call these; :func:`operators.blend.blend` merges the homepage sources and
:func:`serving.rules.rerank` applies the business rules afterwards.

>>> lst = {"items": [["a", 2.0], ["b", 1.0]], "half_life_s": 0}
>>> [(c.item_id, c.evidence[0].source) for c in from_list(lst, "similar", "x", 0, 5, ())]
[('a', 'similar'), ('b', 'similar')]
>>> reason(Evidence("session", 1.0, "x"), {"x": "Red Mug"})
'viewed Red Mug'
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from operators.blend import (
    BOUGHT_TOGETHER,
    RECENTLY_VIEWED,
    SESSION,
    TRENDING,
    TRENDING_CATEGORY,
    TRENDING_CONTEXT,
    VECTOR,
    Evidence,
    Fill,
    Scored,
    vector_shares,
)
from serving.answers import decayed_score
from serving.ranking import RankerPass
from serving.rules import Ranked

SIMILAR: Final = "similar"
EXPLORE: Final = "explore"
NEW_ARRIVAL: Final = "new_arrival"
VECTOR_SIMILAR: Final = "vector_similar"  # similar items: neighbours in the learned model
VECTOR_SIMILAR_WEIGHT: Final = 0.5  # a learned neighbour's best vote / the best co-visitation
VECTOR_SIMILAR_TEMPERATURE: Final = 0.1  # as BlendParams.vector_temperature
VECTOR_REASON: Final = "picked for you by the learned model"
VECTOR_SIMILAR_REASON: Final = "similar by learned taste"
CART_SIMILAR_WEIGHT: Final = 0.3  # similar items of the cart, after the bought-together ones
GLOBAL_CONTEXT_WEIGHT: Final = 0.5  # global trending's share in a cold-start context blend
META_FIELDS: Final = ("title", "category", "brand", "price")
DAYPART_WORDS: Final = {"night": "tonight", "morning": "this morning",
                        "afternoon": "this afternoon", "evening": "this evening"}


def from_list(payload: Mapping[str, Any], source: str, because: str, now_ms: int, limit: int,
              exclude: Collection[str]) -> list[Scored]:
    """A ranked list (``[item_id, log_score]`` pairs) as candidates scored by their value
    decayed to ``now_ms`` (see :func:`serving.answers.decayed_score`)."""
    half_life = float(payload.get("half_life_s") or 0.0)
    out: list[Scored] = []
    for item_id, log_score in payload.get("items", ()):
        if item_id in exclude:
            continue
        score = decayed_score(float(log_score), half_life, now_ms)
        out.append(Scored(item_id, score, [Evidence(source, score, because)]))
        if len(out) == limit:
            break
    return out


def context_fill(lists: Sequence[tuple[str, Sequence[Sequence[Any]]]],
                 global_items: Sequence[Sequence[Any]]) -> Fill:
    """One trending list for a cold-start context: each item scores the sum of its shares
    (score / the list's best) in the context lists (``ctx:device:mobile``, ...) plus
    :data:`GLOBAL_CONTEXT_WEIGHT` times its share in global trending; the evidence scope is the
    context that contributed most."""
    total: dict[str, float] = {}
    best: dict[str, tuple[float, str]] = {}
    for scope, items in [*lists, ("global", global_items)]:
        if not items:
            continue
        top = float(items[0][1])
        weight = GLOBAL_CONTEXT_WEIGHT if scope == "global" else 1.0
        for item_id, log_score in items:
            share = weight * math.exp(float(log_score) - top)
            total[item_id] = total.get(item_id, 0.0) + share
            if item_id not in best or share > best[item_id][0]:
                best[item_id] = (share, scope)
    ranked = sorted(total.items(), key=lambda kv: (-kv[1], kv[0]))
    entries: list[list[Any]] = []
    for item_id, score in ranked:
        scope = best[item_id][1]
        source = TRENDING if scope == "global" else TRENDING_CONTEXT
        entries.append([item_id, math.log(score), source, scope])
    return Fill(TRENDING_CONTEXT, "context", entries)


def cart_candidates(cart: Sequence[str], bought: Mapping[str, Sequence[Sequence[Any]]],
                    similar: Mapping[str, Sequence[Sequence[Any]]], *, pool: int,
                    exclude: Collection[str]) -> list[Scored]:
    """Frequently bought together with a whole cart: every cart item votes equally for its
    bought-together neighbours (normalised by its best one); similar items of the cart vote
    with :data:`CART_SIMILAR_WEIGHT`. Cart items and ``exclude`` never come back."""
    banned = set(exclude) | set(cart)
    found: dict[str, Scored] = {}
    for source, lists, weight in ((BOUGHT_TOGETHER, bought, 1.0),
                                  (SIMILAR, similar, CART_SIMILAR_WEIGHT)):
        for src in cart:
            lst = lists.get(src) or ()
            if not lst:
                continue
            top = float(lst[0][1])
            for item_id, log_score in lst:
                if item_id in banned:
                    continue
                vote = weight * math.exp(float(log_score) - top)
                cand = found.setdefault(item_id, Scored(item_id, 0.0))
                cand.score += vote
                cand.evidence.append(Evidence(source, vote, src))
    ranked = sorted(found.values(), key=lambda c: (-c.score, c.item_id))[:pool]
    for c in ranked:
        c.evidence = _merge_evidence(c.evidence)
    return ranked


def with_vector_neighbours(cands: Sequence[Scored], neighbours: Sequence[tuple[str, float]], *,
                           because: str, limit: int, weight: float = VECTOR_SIMILAR_WEIGHT,
                           temperature: float = VECTOR_SIMILAR_TEMPERATURE) -> list[Scored]:
    """Similar items: the co-visitation candidates with the learned neighbours (inner products,
    best first) merged in. A neighbour votes ``weight`` times its
    :func:`~operators.blend.vector_shares` share times the best co-visitation score (1 when
    there is none), so the co-visitation scores and order stay as they were and the model's
    best neighbour counts ``weight`` of the best co-visited item; an item found by both sums
    the two and keeps both pieces of evidence. ``because`` names the model version.

    >>> covis = [Scored("a", 4.0, [Evidence("similar", 4.0, "x")])]
    >>> out = with_vector_neighbours(covis, [("b", 0.9), ("a", 0.8)], because="model v3",
    ...                              limit=5)
    >>> [(c.item_id, round(c.score, 3), [e.source for e in c.evidence]) for c in out]
    [('a', 4.736, ['similar', 'vector_similar']), ('b', 2.0, ['vector_similar'])]
    """
    if not neighbours:
        return list(cands[:limit])
    top = max((c.score for c in cands), default=1.0)
    found = {c.item_id: Scored(c.item_id, c.score, list(c.evidence)) for c in cands}
    for item_id, share in vector_shares(neighbours, temperature):
        vote = weight * share * top
        cand = found.setdefault(item_id, Scored(item_id, 0.0))
        cand.score += vote
        cand.evidence.append(Evidence(VECTOR_SIMILAR, vote, because))
        cand.evidence.sort(key=lambda e: -e.score)
    return sorted(found.values(), key=lambda c: -c.score)[:limit]  # stable: ties keep order


def _merge_evidence(evidence: list[Evidence]) -> list[Evidence]:
    """One entry per source (the strongest ``because``, the summed score), strongest first."""
    by_source: dict[str, Evidence] = {}
    for e in evidence:
        prev = by_source.get(e.source)
        if prev is None:
            by_source[e.source] = e
        else:
            because = e.because if e.score > prev.score else prev.because
            by_source[e.source] = Evidence(e.source, prev.score + e.score, because)
    return sorted(by_source.values(), key=lambda e: -e.score)


# ---- exploration -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Exploration:
    item_id: str
    slot: int           # 1-based position it was put in
    propensity: float   # probability this response showed this item in this slot


def explore_pool(ranked: Sequence[Ranked], pool: Sequence[str]) -> list[str]:
    """The items of ``pool`` the exploration slot may show: those not in the answer already."""
    shown = {r.item_id for r in ranked}
    return [i for i in pool if i not in shown]


def explore_pick(n: int, *, epsilon: float, unit: str) -> int | None:
    """Epsilon-greedy exploration: with probability ``epsilon`` (decided by a hash of ``unit``,
    the response id, so the choice is reproducible) the index of one of ``n`` candidates
    (uniformly), else ``None``.

    >>> [explore_pick(5, epsilon=1.0, unit=u) for u in ("a", "b")], explore_pick(5, epsilon=0,
    ...                                                                          unit="a")
    ([0, 1], None)
    """
    if epsilon <= 0 or n < 1:
        return None
    digest = hashlib.blake2b(unit.encode(), digest_size=16).digest()
    coin = int.from_bytes(digest[:8], "big") / 2**64
    if coin >= epsilon:
        return None
    return int.from_bytes(digest[8:], "big") % n


# ---- explanations ----------------------------------------------------------------------------

def context_words(scope: str) -> str:
    """``ctx:device:mobile`` -> ``on mobile``; ``ctx:country:de`` -> ``in DE``."""
    _, dim, value = [*scope.split(":", 2), "", ""][:3]
    if dim == "device":
        return f"on {value}"
    if dim == "country":
        return f"in {value.upper()}"
    if dim == "daypart":
        return DAYPART_WORDS.get(value, value)
    return ""


def reason(e: Evidence, titles: Mapping[str, str]) -> str:
    """A short human reason for one piece of evidence."""
    name = titles.get(e.because, e.because)
    if e.source == SESSION:
        return f"viewed {name}"
    if e.source == SIMILAR:
        return f"often viewed with {name}"
    if e.source == BOUGHT_TOGETHER:
        return f"often bought with {name}"
    if e.source == RECENTLY_VIEWED:
        return "you viewed this recently"
    if e.source == TRENDING_CATEGORY:
        return f"trending in {e.because}"
    if e.source == TRENDING_CONTEXT:
        return f"trending {context_words(e.because)}".rstrip()
    if e.source == EXPLORE:
        return "new arrival"
    if e.source == NEW_ARRIVAL:
        return f"new in {e.because}" if e.because else "new arrival"
    if e.source == VECTOR:
        return VECTOR_REASON
    if e.source == VECTOR_SIMILAR:
        return VECTOR_SIMILAR_REASON
    if e.source == TRENDING and e.because not in ("global", ""):
        return f"trending in {e.because}"
    return "trending"


def render_item(r: Ranked, meta: Mapping[str, Any] | None, titles: Mapping[str, str],
                place: int, *, explain: bool, ranking: RankerPass | None = None) -> dict[str, Any]:
    top = r.candidate.evidence[0] if r.candidate.evidence else Evidence(TRENDING, r.score, "")
    doc: dict[str, Any] = {"item_id": r.item_id, "score": r.score, "source": top.source,
                           "reason": reason(top, titles)}
    if r.sponsored:
        doc["sponsored"] = True
    if meta:
        for name in META_FIELDS:
            value = meta.get(name)
            if value is not None:
                doc[name] = value
    if r.notes:
        doc["rules"] = list(r.notes)
    if explain:
        doc["explanation"] = {
            "sources": [{"source": e.source, "score": e.score, "because": e.because,
                         "reason": reason(e, titles)} for e in r.candidate.evidence],
            "blend_score": r.candidate.score,
            "rank_before_rules": r.rank_before,
            "rank": place,
        }
        ranker = ranking.explanation(r.item_id) if ranking is not None else None
        if ranker is not None and ranking is not None:
            # the blend's own score; when warm the rules got the ranker's (``ranker.score``)
            doc["explanation"]["blend_score"] = ranking.blend_score[r.item_id]
            if ranking.reordered:
                ranker["score"] = r.candidate.score
            doc["explanation"]["ranker"] = ranker
    return doc


def titles_of(meta: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item_id, m in meta.items():
        title = m.get("title") if m else None
        if title:
            out[item_id] = str(title)
    return out
