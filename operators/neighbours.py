"""Bounded, decayed item neighbours: co-visitation (similar items) and co-purchase (bought
together).

Keyed by ``(relation, source item)``. Each state tracks at most ``capacity`` neighbours with
forward-decayed log scores (:mod:`operators.decay`) and publishes the best ``top_k``. When the
table is full, a new neighbour replaces the weakest one and inherits its score (Space-Saving,
Metwally et al. 2005): memory stays bounded and any neighbour whose true decayed weight exceeds
the ``1/capacity`` share of the item's total is never lost. Below capacity the scores are exact
sums, so the result does not depend on the order pairs arrive in; above it, Space-Saving's
guarantees hold but ties at the bottom may resolve differently for different arrival orders.

>>> import math
>>> cfg = NeighbourConfig(capacity=2, top_k=2, half_life_s=1e12)
>>> s = None
>>> for dst in ["x", "x", "y", "z"]:
...     s = step(s, Pair("similar", "a", dst, 1.0, 0), cfg)
>>> [(item, round(math.exp(score), 6)) for item, score in top(s, 2)]
[('x', 2.0), ('z', 2.0)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from operators.config import NeighbourConfig
from operators.decay import log_term, logaddexp
from operators.session import Pair


@dataclass(frozen=True, slots=True)
class NeighbourState:
    scores: dict[str, float]  # neighbour -> log score; never mutated after construction
    seq: int
    as_of: int


def step(state: NeighbourState | None, pair: Pair, cfg: NeighbourConfig) -> NeighbourState:
    term = log_term(pair.weight, pair.ts, cfg.half_life_s)
    scores = {} if state is None else dict(state.scores)
    if pair.dst in scores:
        scores[pair.dst] = logaddexp(scores[pair.dst], term)
    elif len(scores) < cfg.capacity:
        scores[pair.dst] = term
    else:
        weakest = min(scores, key=lambda k: (scores[k], k))
        floor = scores.pop(weakest)
        scores[pair.dst] = logaddexp(floor, term)
    seq = 1 if state is None else state.seq + 1
    as_of = pair.ts if state is None else max(state.as_of, pair.ts)
    return NeighbourState(scores, seq, as_of)


def top(state: NeighbourState, k: int) -> list[tuple[str, float]]:
    """Best ``k`` neighbours, ties broken by item id so the order is deterministic."""
    return sorted(state.scores.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def render(state: NeighbourState, cfg: NeighbourConfig) -> dict[str, Any]:
    """The value published at ``recs:v1:similar:{item}`` / ``recs:v1:bought:{item}``."""
    return {"items": [[item, score] for item, score in top(state, cfg.top_k)],
            "half_life_s": cfg.half_life_s}


def encode(state: NeighbourState) -> dict[str, Any]:
    return {"_c": 1, "scores": state.scores, "seq": state.seq, "as_of": state.as_of}


def decode(doc: dict[str, Any]) -> NeighbourState:
    if doc.get("_c") != 1:
        raise ValueError(f"operators.neighbours: unknown state codec {doc.get('_c')!r}")
    return NeighbourState(dict(doc["scores"]), doc["seq"], doc["as_of"])
