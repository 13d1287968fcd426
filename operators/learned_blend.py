"""The learned blend: the homepage blend's candidates re-ranked by weights learned online.

The hand-tuned blend (:func:`operators.blend.blend`) adds its sources' votes with fixed weights
and half-lives chosen on a few logs. This operator learns the combination from the traffic it
serves, test-then-train: for every interest event, the candidates the blend would have answered
just before it (:func:`candidates`) are the example, the event's item is the positive, and
``negatives`` other candidates are paired with it: drawn at random, one of them replaced by the
candidate the current model ranks just above the target (only hard negatives, the items ranked
above, pushed the hand-tuned score's weight down on every event and lost to the hand-tuned
order by far). A River logistic regression learns on the pairs (RankNet with a linear scorer:
``P(a above b) = σ(w·(x_a − x_b))``), so the score of a candidate is ``w·x`` and only the
order it induces matters.

**Features** (:data:`FEATURES`, all in [−1, 1], most zero for a candidate): the similar-items
share of each recent item separately (``sim0`` … ``sim4``: the model learns how fast the
session's interest moves, the window the hand-tuned ``recency_decay`` fixes) and their
reciprocal ranks, bought-together and learned-retrieval votes, whether the candidate *is* the
r-th recent item (``seen0`` … ``seen4``) and how often the session repeated it (repeat
statistics), the calibrated reminder score, its share in the global, category and context
trending lists and its reciprocal rank there (popularity at the trending half-life), a
new-arrivals share, and the hand-tuned blend's own score and rank (``prior``, ``prior_rr``).
**Ages** (``LearnedBlendConfig.ages``, on by default; with the request's ``now``): a news
user's recent items are often days old, their votes noise, so each vote is also weighed by its
recent item's freshness (:mod:`operators.freshness`, halving per hour / per day): ``simh`` /
``simd`` sum ``share · fresh / 5`` over the recent items whose list holds the candidate
(``simrh`` / ``simrd``: second lists), ``seenh`` / ``seend`` the freshness of the one it *is*.

**Cold start.** The initial weights put everything on ``prior`` (the hand-tuned blend's
log-score share), so the untrained model answers exactly what the hand-tuned blend answers.
:func:`is_warm` says when the learned order is served: after ``min_labelled`` labelled events
*and* while its prequential gain (HR@k + MRR@k, an exponential moving average over about
``window`` events, both orders scored on every event before learning it) is at least the hand-
tuned blend's. Until then, and whenever it falls behind, the hand-tuned order is served; the
model keeps learning in the shadow either way.

Pure: :func:`step` returns a new :class:`BlendModel` (the weights are copied, never mutated);
:func:`encode` / :func:`decode` are its JSON codec (``_c``: codec version), the value published
at ``recs:v1:model:blend`` (:func:`state.keys.model_key` with :data:`state.keys.MODEL_BLEND`).

>>> from operators.blend import BlendParams, Fill
>>> session = {"events": [["a", "view", 1], ["b", "view", 2]], "purchased": []}
>>> similar = {"b": (("c", 1.0), ("d", 0.5)), "a": (("d", 1.0),)}
>>> fills = [Fill("trending", "global", [["t", 3.0], ["c", 2.0]])]
>>> cands = candidates(session, similar, {}, fills, BlendParams(), LearnedBlendConfig())
>>> [c.item_id for c in order(initial(), cands, 3)]  # cold: the hand-tuned order
['c', 'd', 't']
>>> model, cfg = initial(), LearnedBlendConfig(min_labelled=5)
>>> for _ in range(30):  # the user always takes the trending item
...     model, _ = step(model, Example("t", cands, 0), cfg)
>>> [c.item_id for c in order(model, cands, 3, cfg)], is_warm(model, cfg)
(['t', 'c', 'd'], True)
"""

from __future__ import annotations

import math
import random
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from river import linear_model, optim, utils

from operators.blend import (
    BOUGHT_TOGETHER,
    RECENTLY_VIEWED,
    TRENDING,
    TRENDING_CATEGORY,
    TRENDING_CONTEXT,
    VECTOR,
    BlendParams,
    Evidence,
    Fill,
    Scored,
    Shares,
    blend,
)
from operators.candidates import recent_items
from operators.config import INTEREST_TYPES
from operators.freshness import freshness
from schemas.events import Interaction

CODEC: Final = 1
POSITIONS: Final = 5  # recent items with a feature of their own
NEW_ARRIVAL: Final = "new_arrival"
MIN_SHARE: Final = 1e-9  # floor of a served score (scores must stay > 0 for the rules)
PRIOR_FLOOR: Final = -10.0  # the prior's log-share feature is clipped here, then divided by it
_FILL_FEATURES: Final = {TRENDING: "trend", TRENDING_CATEGORY: "trend_cat",
                         TRENDING_CONTEXT: "trend_ctx", NEW_ARRIVAL: "new"}
FEATURES: Final = (
    *(f"sim{r}" for r in range(POSITIONS)), *(f"sim_rr{r}" for r in range(POSITIONS)),
    "bought", "vector", *(f"seen{r}" for r in range(POSITIONS)), "repeats", "remind",
    "trend", "trend_rr", "trend_cat", "trend_cat_rr", "trend_ctx", "trend_ctx_rr", "new",
    "new_rr", "prior", "prior_rr",
    *(f"simr{r}" for r in range(POSITIONS)), *(f"simr_rr{r}" for r in range(POSITIONS)),
    "simh", "simd", "seenh", "seend", "simrh", "simrd",  # the age features (cfg.ages)
)
#: The cold-start weights: the hand-tuned blend's order (see the module docstring).
PRIOR_WEIGHTS: Final = {"prior": 1.0}

_linear_model: Any = linear_model  # River ships partial annotations
_optim: Any = optim


@dataclass(frozen=True, slots=True)
class LearnedBlendConfig:
    lr: float = 0.05           # SGD step of the pairwise logistic regression (constant: drift)
    l2: float = 0.0001
    negatives: int = 3         # candidates paired with the target per event: drawn at random,
                               # one of them the one ranked just above it
    pool: int = 50             # candidates of the hand-tuned blend re-ranked
    fill_pool: int = 20        # items of each trending list added as candidates
    k: int = 20                # cut-off of the prequential comparison (HR@k, MRR@k)
    min_labelled: int = 500    # labelled events before the learned order may be served
    window: int = 1000         # horizon of the moving averages of the two orders' gains
    ages: bool = True          # the age features (module docstring); off: none computed

    def __post_init__(self) -> None:
        for name in ("negatives", "pool", "fill_pool", "k", "min_labelled", "window"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"operators.learned_blend: {name} must be an integer >= 1, "
                                 f"got {value!r}")
        for name in ("lr", "l2"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"operators.learned_blend: {name} must be a finite number "
                                 f">= 0, got {value!r}")
        if not isinstance(self.ages, bool):
            raise ValueError(f"operators.learned_blend: ages must be true or false, "
                             f"got {self.ages!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields, ``ages`` only when on: off, the published value and the reports'
        config stay those of the code before it (which refuses unknown fields)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__
                if name != "ages" or self.ages}


@dataclass(frozen=True, slots=True)
class Candidate:
    item_id: str
    prior_rank: int                 # 0-based place in the hand-tuned order
    features: Mapping[str, float]   # the non-zero features


@dataclass(frozen=True, slots=True)
class Example:
    target: str                     # the item of the interest event
    candidates: Sequence[Candidate]  # what the blend would have answered before it
    ts: int                         # the event's time (the model's as-of)


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where the target stood (1-based; ``None`` when not in the candidates) in each order."""

    prior_rank: int | None
    learned_rank: int | None
    served_learned: bool            # which order was served for this event


@dataclass(frozen=True, slots=True)
class BlendModel:
    weights: Mapping[str, float] = field(default_factory=lambda: dict(PRIOR_WEIGHTS))
    events: int = 0                 # events compared (candidates present)
    labelled: int = 0               # events whose target was a candidate (learned from)
    prior_gain: float = 0.0         # moving average of HR@k + MRR@k, hand-tuned order
    learned_gain: float = 0.0       # the same for the learned order
    pairs: int = 0                  # pairs scored before learning them
    pair_wins: float = 0.0          # of them, ordered right (ties count half): pairwise AUC
    as_of: int = 0


def initial() -> BlendModel:
    return BlendModel()


def label_of(event: Interaction) -> str | None:
    """The item an event labels the blend's candidates with (an interest event's item), or
    ``None``: the one definition ``recs eval`` and the blend learner both apply."""
    return event.item_id if event.type in INTEREST_TYPES else None


# ---- candidates and features --------------------------------------------------------------

def candidates(session: Mapping[str, Any] | None, similar: Mapping[str, Shares],
               bought: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams,
               cfg: LearnedBlendConfig, *, exclude: Collection[str] = (), vector: Shares = (),
               vector_because: str = "", vector_events: int = 0,
               similar_recent: Mapping[str, Shares] | None = None,
               now: int | None = None) -> tuple[Candidate, ...]:
    """The hand-tuned blend's best ``cfg.pool`` candidates in its order, then the best
    ``cfg.fill_pool`` items of every fill list not among them, each with its features. The
    arguments are :func:`operators.blend.blend`'s; ``similar_recent``: the recent items'
    similar lists at a shorter half-life (features ``simr*``), when there are any; ``now``:
    the request's time in ms (the age features, when ``cfg.ages``; none without it)."""
    prior = blend(session, similar, bought, fills, params, k=cfg.pool, exclude=exclude,
                  vector=vector, vector_because=vector_because, vector_events=vector_events)
    return _features(prior, session, similar, fills, params, cfg, exclude,
                     similar_recent=similar_recent, now=now)


def _features(prior: Sequence[Scored], session: Mapping[str, Any] | None,
              similar: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams,
              cfg: LearnedBlendConfig, exclude: Collection[str], *,
              similar_recent: Mapping[str, Shares] | None = None,
              now: int | None = None) -> tuple[Candidate, ...]:
    history = recent_items(session, POSITIONS) if session else []
    fresh = freshness(session, history, now) if session and cfg.ages and now is not None \
        else []
    feats: dict[str, dict[str, float]] = {}
    order: list[str] = []
    top = prior[0].score if prior else 1.0
    for rank, s in enumerate(prior):
        f: dict[str, float] = {"prior_rr": 1.0 / (rank + 1)}
        if s.score > 0 and top > 0:
            ratio = s.score / top  # 0.0 when it underflows: the floor, as log(0) = -inf
            f["prior"] = max(math.log(ratio) if ratio > 0 else PRIOR_FLOOR,
                             PRIOR_FLOOR) / -PRIOR_FLOOR + 1.0
        for e in s.evidence:
            if e.source == BOUGHT_TOGETHER:
                f["bought"] = min(e.score, 1.0)
            elif e.source == VECTOR:
                f["vector"] = min(e.score, 1.0)
            elif e.source == RECENTLY_VIEWED:
                f["remind"] = min(e.score, 1.0)
        feats[s.item_id] = f
        order.append(s.item_id)
    banned = set(exclude)
    if session:
        banned.update(session.get("purchased", ()))
        if not params.allow_repeats:
            banned.update(history)
    for fill in fills:
        if not fill.items:
            continue
        best = float(fill.items[0][1])
        place = 0  # among the list's entries not banned
        for entry in fill.items:
            item_id = str(entry[0])
            if item_id in banned:
                continue
            place += 1
            found = feats.get(item_id)
            if found is None:
                if place > cfg.fill_pool:
                    continue
                found = feats[item_id] = {}
                order.append(item_id)
            name = _FILL_FEATURES.get(str(entry[2]) if len(entry) > 3 else fill.source)
            if name is not None and name not in found:
                found[name] = math.exp(float(entry[1]) - best)
                found[name + "_rr"] = 1.0 / place
    for lists, name in ((similar, "sim"), (similar_recent or {}, "simr")):
        for r, src in enumerate(history):
            lst = lists.get(src)
            if not lst:
                continue
            sim, sim_rr = f"{name}{r}", f"{name}_rr{r}"
            for rank, (item_id, share) in enumerate(lst):
                found = feats.get(item_id)
                if found is not None and sim not in found:
                    found[sim] = share
                    found[sim_rr] = 1.0 / (rank + 1)
                    if fresh:
                        fh, fd = fresh[r]
                        found[name + "h"] = found.get(name + "h", 0.0) + share * fh / POSITIONS
                        found[name + "d"] = found.get(name + "d", 0.0) + share * fd / POSITIONS
    if session:
        counts: dict[str, int] = {}
        for item_id, _etype, _ts in session.get("events", ()):
            counts[item_id] = counts.get(item_id, 0) + 1
        for r, item_id in enumerate(history):
            found = feats.get(item_id)
            if found is not None:
                found[f"seen{r}"] = 1.0
                if fresh:
                    found["seenh"], found["seend"] = fresh[r]
                found["repeats"] = min(math.log1p(counts.get(item_id, 0)) / 3.0, 1.0)
    return tuple(Candidate(i, n, feats[i]) for n, i in enumerate(order))


# ---- scoring ------------------------------------------------------------------------------

def score(model: BlendModel, features: Mapping[str, float]) -> float:
    get = model.weights.get
    return sum([get(k, 0.0) * v for k, v in features.items()])


def learned_order(model: BlendModel, cands: Sequence[Candidate]) -> list[Candidate]:
    """Every candidate by the learned score, ties in the hand-tuned order."""
    get = model.weights.get
    keyed = [(-sum([get(k, 0.0) * v for k, v in c.features.items()]), c.prior_rank, c)
             for c in cands]
    keyed.sort(key=_by_score)
    return [t[2] for t in keyed]


def _by_score(t: tuple[float, int, Candidate]) -> tuple[float, int]:
    return t[0], t[1]


def prior_order(cands: Sequence[Candidate]) -> list[Candidate]:
    return sorted(cands, key=lambda c: c.prior_rank)


def is_warm(model: BlendModel, cfg: LearnedBlendConfig) -> bool:
    """The rule: ``cfg.min_labelled`` labelled events, and the learned order's moving
    prequential gain at least the hand-tuned one's."""
    return model.labelled >= cfg.min_labelled and model.learned_gain >= model.prior_gain


def order(model: BlendModel, cands: Sequence[Candidate], k: int,
          cfg: LearnedBlendConfig | None = None) -> list[Candidate]:
    """The served answer: the learned order when warm (:func:`is_warm`), else the hand-tuned
    one (``cfg`` defaults to :class:`LearnedBlendConfig`)."""
    if is_warm(model, cfg or LearnedBlendConfig()):
        return learned_order(model, cands)[:k]
    return prior_order(cands)[:k]


def pairwise_auc(model: BlendModel) -> float | None:
    """Share of (target, negative) pairs the model ordered right before learning them."""
    return model.pair_wins / model.pairs if model.pairs else None


# ---- learning -----------------------------------------------------------------------------

def _gain(rank: int | None, k: int) -> float:
    return 0.0 if rank is None or rank > k else 1.0 + 1.0 / rank


def step(model: BlendModel | None, ex: Example,
         cfg: LearnedBlendConfig) -> tuple[BlendModel, Outcome | None]:
    """Score both orders on ``ex`` (before learning), then learn from its pairs.
    ``(model, None)`` when there is no candidate: nothing to compare or learn."""
    model = model if model is not None else initial()
    if not ex.candidates:
        return model, None
    learned = learned_order(model, ex.candidates)
    l_rank = next((n for n, c in enumerate(learned, 1) if c.item_id == ex.target), None)
    p_rank = next((c.prior_rank + 1 for c in ex.candidates if c.item_id == ex.target), None)
    served = is_warm(model, cfg)
    alpha = 1.0 / min(model.events + 1, cfg.window)
    prior_gain = model.prior_gain + alpha * (_gain(p_rank, cfg.k) - model.prior_gain)
    learned_gain = model.learned_gain + alpha * (_gain(l_rank, cfg.k) - model.learned_gain)
    weights = model.weights
    pairs, wins, labelled = model.pairs, model.pair_wins, model.labelled
    if l_rank is not None and len(learned) > 1:
        labelled += 1
        pos = learned[l_rank - 1]
        others = [c for c in learned if c.item_id != ex.target]
        rng = random.Random(zlib.crc32(ex.target.encode()) ^ ex.ts)
        sampled = [others[rng.randrange(len(others))] for _ in range(cfg.negatives)]
        for n in sampled:  # the pairwise AUC: random negatives, scored before learning
            z = score(model, pos.features) - score(model, n.features)
            pairs += 1
            wins += 1.0 if z > 0 else 0.5 if z == 0 else 0.0
        negs = [*sampled[:-1], learned[l_rank - 2]] if l_rank > 1 else sampled
        weights = _learn(weights, [_diff(pos.features, n.features) for n in negs], cfg)
    new = BlendModel(weights, model.events + 1, labelled, prior_gain, learned_gain, pairs,
                     wins, max(model.as_of, ex.ts))
    return new, Outcome(p_rank, l_rank, served)


def _diff(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    d = dict(a)
    for k, v in b.items():
        d[k] = d.get(k, 0.0) - v
    return {k: v for k, v in d.items() if v != 0.0}


def _learn(weights: Mapping[str, float], diffs: Sequence[dict[str, float]],
           cfg: LearnedBlendConfig) -> dict[str, float]:
    """River's logistic regression (no intercept: the pairs are symmetric) on each pair
    ``x_target − x_negative`` labelled True, on a copy of the weights."""
    new = dict(weights)
    lr = _linear_model.LogisticRegression(optimizer=_optim.SGD(cfg.lr), l2=cfg.l2,
                                          intercept_lr=0.0)
    for d in diffs:
        local = {k: new.get(k, 0.0) for k in d}
        lr._weights = utils.VectorDict(local)
        lr.learn_one(d, True)
        for k in d:
            new[k] = float(lr._weights[k])
    return new


# ---- serving ------------------------------------------------------------------------------

def serve(model: BlendModel | None, cfg: LearnedBlendConfig,
          session: Mapping[str, Any] | None, similar: Mapping[str, Shares],
          bought: Mapping[str, Shares], fills: Sequence[Fill], params: BlendParams, *, k: int,
          exclude: Collection[str] = (), vector: Shares = (), vector_because: str = "",
          vector_events: int = 0, similar_recent: Mapping[str, Shares] | None = None,
          now: int | None = None, blend_fn: Callable[..., list[Scored]] = blend,
          features_fn: Callable[..., tuple[Candidate, ...]] | None = None,
          order_fn: Callable[..., list[Candidate]] | None = None) -> list[Scored]:
    """The server's homepage blend: exactly :func:`operators.blend.blend` while ``model`` is
    absent or cold; when warm, the learned order of :func:`candidates` (pool at least ``k``;
    ``similar_recent`` and ``now`` as there), each candidate keeping the hand-tuned
    blend's evidence (a fill added as a candidate: its list's), scored ``exp(w·x − best)`` so
    the scores fall with the rank. ``blend_fn``, ``features_fn`` and ``order_fn``: the
    hand-tuned blend, the features and the learned order to call
    (:func:`~operators.blend.blend`, :func:`_features` and :func:`learned_order` by default, or
    their compiled twins)."""
    if model is None or not is_warm(model, cfg):
        return blend_fn(session, similar, bought, fills, params, k=k, exclude=exclude,
                     vector=vector, vector_because=vector_because, vector_events=vector_events)
    pool = max(cfg.pool, k)
    prior = blend_fn(session, similar, bought, fills, params, k=pool, exclude=exclude,
                  vector=vector, vector_because=vector_because, vector_events=vector_events)
    cands = (features_fn or _features)(prior, session, similar, fills, params, cfg, exclude,
                                       similar_recent=similar_recent, now=now)
    evidence = {s.item_id: s.evidence for s in prior}
    ranked = (order_fn or learned_order)(model, cands)[:k]
    if not ranked:
        return []
    fill_evidence = _fill_evidence(fills, {c.item_id for c in ranked} - evidence.keys())
    top = score(model, ranked[0].features)
    out: list[Scored] = []
    for c in ranked:
        ev = evidence.get(c.item_id)
        if ev is None:
            found = fill_evidence.get(c.item_id)
            ev = [found] if found is not None else []
        share = max(math.exp(min(score(model, c.features) - top, 0.0)), MIN_SHARE)
        out.append(Scored(c.item_id, share, list(ev)))
    return out


def _fill_evidence(fills: Sequence[Fill], wanted: Collection[str]) -> dict[str, Evidence]:
    """The evidence of each ``wanted`` item added from a fill list: from the first list that
    holds it, its share of that list's best entry (only these are computed: a fill list holds
    hundreds of entries, an answer a few of them).

    >>> fills = [Fill("trending", "global", [["a", 2.0], ["b", 1.0]]),
    ...          Fill("new_arrival", "", [["b", 5.0]])]
    >>> _fill_evidence(fills, {"b"})
    {'b': Evidence(source='trending', score=0.36787944117144233, because='global')}
    """
    found: dict[str, Evidence] = {}
    if not wanted:
        return found
    for fill in fills:
        best = float(fill.items[0][1]) if fill.items else 0.0
        for entry in fill.items:
            item_id = str(entry[0])
            if item_id in wanted and item_id not in found:
                source, scope = (entry[2], entry[3]) if len(entry) > 3 else \
                    (fill.source, fill.scope)
                found[item_id] = Evidence(str(source), math.exp(float(entry[1]) - best),
                                          str(scope))
                if len(found) == len(wanted):
                    return found
    return found


def published(model: BlendModel, cfg: LearnedBlendConfig) -> dict[str, Any]:
    """The value published at ``recs:v1:model:blend``: the model and the config whose warm-up
    rule the server applies."""
    return {**encode(model), "cfg": cfg.to_dict()}


def from_published(doc: Mapping[str, Any]) -> tuple[BlendModel, LearnedBlendConfig]:
    raw = doc.get("cfg")
    if not isinstance(raw, Mapping):
        raise ValueError(f"operators.learned_blend.from_published: cfg must be an object, "
                         f"got {raw!r}")
    known = set(LearnedBlendConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"operators.learned_blend.from_published: unknown cfg fields "
                         f"{unknown}")
    return decode(doc), LearnedBlendConfig(**{"ages": False, **raw})  # older values: no ages


# ---- codec --------------------------------------------------------------------------------

def encode(model: BlendModel) -> dict[str, Any]:
    return {"_c": CODEC, "weights": dict(model.weights), "events": model.events,
            "labelled": model.labelled, "prior_gain": model.prior_gain,
            "learned_gain": model.learned_gain, "pairs": model.pairs,
            "pair_wins": model.pair_wins, "as_of": model.as_of}


def decode(doc: Mapping[str, Any]) -> BlendModel:
    if doc.get("_c") != CODEC:
        raise ValueError(f"operators.learned_blend.decode: codec {doc.get('_c')!r}, "
                         f"expected {CODEC}")
    weights = doc["weights"]
    if not isinstance(weights, Mapping):
        raise ValueError(f"operators.learned_blend.decode: weights must be an object, "
                         f"got {weights!r}")
    return BlendModel({str(k): float(v) for k, v in weights.items()}, int(doc["events"]),
                      int(doc["labelled"]), float(doc["prior_gain"]),
                      float(doc["learned_gain"]), int(doc["pairs"]), float(doc["pair_wins"]),
                      int(doc["as_of"]))
