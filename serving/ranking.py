"""The learned ranker's pass over the blended candidates, before the business rules. Pure.

When the loaded :class:`~operators.ranker.Ranker` is warm (:meth:`~operators.ranker.Ranker.
is_warm`: enough labelled impressions and a prequential AUC above its floor), each candidate
gets the ranker's click probability ``p`` (features: user, item, the request's device, country,
page and placement, the hour, the candidate's strongest source, the item's metadata) and the
candidates are ordered by

    ``p · (blend score / best blend score) ** BLEND_PRIOR``    (``BLEND_PRIOR`` = 0.5),

ties keeping the blend's order. Why not ``p`` alone: the ranker sees which source proposed an
item but not how strongly (the co-visitation vote of the user's recent items, the learned
retrieval score), so ordering by ``p`` alone would throw away the relevance the blend measured
and let a popular trending fill pass the session's best neighbour on item click-through alone.
The geometric blend keeps both: a candidate with a quarter of the best blend score needs twice
the click probability to pass it, and fills (scored at most half the weakest blended
candidate) need a clear click advantage to move up. The product is what the rules then boost,
rotate and diversify, so the answer's ``score`` is that product times the rules' factors.

When the ranker is cold or absent the blend's order and scores go to the rules unchanged
(with ``explain=true`` a cold ranker's probabilities are still shown, for inspection). The
trending placement is never ranked (``off``): "what is trending now" is its contract, and its
scores are the decayed popularity a client may show.

>>> from operators.blend import Evidence, Scored
>>> cands = [Scored("a", 1.0, [Evidence("session", 1.0, "x")]),
...          Scored("b", 0.25, [Evidence("trending", 0.25, "global")])]
>>> [(c.item_id, round(c.score, 3)) for c in fuse(cands, [0.1, 0.3])]
[('b', 0.15), ('a', 0.1)]
>>> [c.item_id for c in fuse(cands, [0.1, 0.2])]  # 0.2 · 0.5 ties 0.1 · 1: blend order
['a', 'b']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from operators.blend import Scored
from operators.ranker import Ranker
from serving.models import RANKER_ABSENT, RANKER_WARM
from serving.rules import Ranked

BLEND_PRIOR: Final = 0.5    # exponent of the blend's relative score in the ordering
RANKER_OFF: Final = "off"   # the placement is not ranked (see UNRANKED_PLACEMENTS)
# trending keeps its popularity order and scores: that list is the endpoint's promise
UNRANKED_PLACEMENTS: Final = frozenset({"trending"})
UNKNOWN_SOURCE: Final = "unknown"
MOVED_UP: Final = "moved up by ranker"
MOVED_DOWN: Final = "moved down by ranker"


@dataclass(frozen=True, slots=True)
class RankerPass:
    """What the ranker did to one answer's candidates."""

    state: str                                   # warm, cold or absent
    cands: list[Scored]                          # in the order (and scores) the rules get
    version: int | None = None                   # envelope version of the loaded snapshot
    probability: Mapping[str, float] = field(default_factory=dict)
    blend_rank: Mapping[str, int] = field(default_factory=dict)   # 1-based, blend order
    blend_score: Mapping[str, float] = field(default_factory=dict)

    @property
    def reordered(self) -> bool:
        return self.state == RANKER_WARM and bool(self.probability)

    def explanation(self, item_id: str) -> dict[str, Any] | None:
        """The ``ranker`` entry of an item's explanation, ``None`` when it was not scored."""
        p = self.probability.get(item_id)
        if p is None:
            return None
        return {"probability": p, "state": self.state, "version": self.version,
                "blend_rank": self.blend_rank.get(item_id)}


def top_source(c: Scored) -> str:
    """The candidate's strongest source: the ``source`` feature the ranker learnt from (the
    impression logs the same source for the item)."""
    return c.evidence[0].source if c.evidence else UNKNOWN_SOURCE


def fuse(cands: Sequence[Scored], probs: Sequence[float],
         prior: float = BLEND_PRIOR) -> list[Scored]:
    """The candidates re-scored ``p · (score / best) ** prior`` and sorted, ties in blend
    order; evidence unchanged."""
    top = max((c.score for c in cands), default=0.0)
    fused: list[tuple[float, int, Scored]] = []
    for n, (c, p) in enumerate(zip(cands, probs, strict=True)):
        share = max(c.score / top, 0.0) if top > 0 else 1.0
        fused.append((p * share ** prior, n, c))
    fused.sort(key=lambda t: (-t[0], t[1]))
    return [Scored(c.item_id, score, c.evidence) for score, _, c in fused]


def rank_candidates(ranker: Ranker | None, state: str, version: int | None,
                    cands: Sequence[Scored], *, user: str, placement: str,
                    context: Mapping[str, object], ts: int,
                    meta: Mapping[str, Mapping[str, Any] | None], explain: bool) -> RankerPass:
    """The ranker's pass (module docstring): reordered when warm; scored without reordering
    when cold and ``explain``; untouched otherwise, and always for an unranked placement."""
    if placement in UNRANKED_PLACEMENTS:
        return RankerPass(RANKER_OFF, list(cands), version)
    if ranker is None or not cands or (state != RANKER_WARM and not explain):
        return RankerPass(state if ranker is not None else RANKER_ABSENT, list(cands), version)
    probs = ranker.rank(user, [(c.item_id, top_source(c)) for c in cands], context, ts=ts,
                        meta=meta)
    probability = {c.item_id: p for c, p in zip(cands, probs, strict=True)}
    blend_rank = {c.item_id: n for n, c in enumerate(cands, start=1)}
    blend_score = {c.item_id: c.score for c in cands}
    ordered = fuse(cands, probs) if state == RANKER_WARM else list(cands)
    return RankerPass(state, ordered, version, probability, blend_rank, blend_score)


def note_moves(ranked: Sequence[Ranked], rp: RankerPass) -> None:
    """Name the ranker among the rules of every item it moved (its place in the ranker's order
    differs from its place in the blend's)."""
    if not rp.reordered:
        return
    order = {c.item_id: n for n, c in enumerate(rp.cands, start=1)}
    for r in ranked:
        before, after = rp.blend_rank.get(r.item_id), order.get(r.item_id)
        if before is not None and after is not None and before != after:
            r.notes.insert(0, MOVED_UP if after < before else MOVED_DOWN)


def ranker_context(context: Mapping[str, str], placement: str,
                   dimensions: Sequence[str]) -> dict[str, object]:
    """The context the ranker scores with: the request's ``dimensions`` and the placement, the
    fields the logged impression carries, so the features match at training and serving."""
    out: dict[str, object] = {k: v for k, v in context.items() if k in dimensions}
    out["placement"] = placement
    return out
