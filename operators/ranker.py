"""The online ranker: click-through learnt from the event stream, used to order candidates.

Two parts, both pure (no I/O, no clock: event time comes with the events, ``ts`` with a request):

**1. Labelling, the delayed-feedback join** (:func:`label_step`, keyed by user). An impression
(``type: impression`` with ``rec_id``, the shown ``item_ids`` in slot order, ``variant`` and a
``context`` holding ``placement``, ``device``, ...) opens a *pending impression* for
``window_ms`` of event time. An engagement (a type of ``positive_weights``: ``click``,
``add_to_cart``, ``purchase``) carrying that ``rec_id`` and naming a shown item marks the item
engaged, keeping its strongest engagement (a purchase after the click); a repeated or weaker one
changes nothing (``duplicate``).

A window closes when the user's event time (the newest ``ts`` seen for the key, whatever the
event type) passes ``impression ts + window_ms``. The impression then emits one
:class:`Example` per shown item, in slot order: a positive weighted by the strongest engagement
(click 1 < cart 2 < purchase 4), or a negative of weight ``negative_weight · slot **
-slot_discount``. ``slot_discount`` (η, default 0: off) discounts negatives lower down the list,
which the user probably never looked at: the examination probability of the position-based click
model, ∝ (1/slot)^η (Joachims et al., 2017). An engagement that arrives after its window closed,
or before its impression, finds nothing (``unmatched``); the shell may also close windows from a
watermark or an event-time timer with :func:`close`. At most ``max_pending`` impressions wait per
user; one more closes the oldest early. An impression whose window already closed by the user's
newest event time is ignored (``late_impression``); a user with no open impression has no state
(``None``, so the state stays bounded) and hence no newest time to judge lateness by.

*Why positives wait for the window too.* Emitting a positive at the click and the negatives
when the window closes makes the learning order depend on the label. On the planted data
(:mod:`operators.ranker_bench`, 3000 impressions, default SGD model) the prequential AUC then
read 0.889, above the 0.872 of the true click probabilities, which no honest estimate can be,
and ``hour=H`` weights reached ±1.8 on a signal without any hour effect: whatever is labelled in
the current hour looks like a click. Labelling each impression at once, every example predicted
before any is learnt, it reads 0.859, and the model frozen half way scores 0.867 on the second
half (true probabilities: 0.876). The price is ``window_ms`` of freshness.

The candidate source of each shown item comes from ``context["sources"]``: the sources joined by
commas, aligned with ``item_ids`` (``"session,trending,explore"``). Without it (or with a count
that does not match) an item is ``explore`` if it is ``context["explore_item"]``, else
``unknown``. Events the join cannot use say why in :attr:`Labels.ignored` (:data:`REASONS`).

**2. The model** (:class:`Ranker`, one per job, mutable like any River estimator):
logistic regression by default, a factorization machine as an option
(:mod:`operators.ranker_models`), over the features of :mod:`operators.ranker_features`.
The examples of one step are all predicted *before* any is learnt (prequential): the AUC
(:class:`operators.ranker_models.BinnedAUC`) and River's ``LogLoss`` over those predictions are
what ``recs_ranker_auc`` and ``recs_ranker_log_loss`` export. :meth:`Ranker.is_warm` says when
to trust it: after ``warm_positives`` positives and ``warm_negatives`` negatives with an AUC of
at least ``min_auc``; the server keeps the blend's order until then. :meth:`Ranker.snapshot` is
a versioned JSON document (header: format, version, config, stats; then the metric states and
the weights); :meth:`Ranker.restore` continues exactly where the snapshot was taken.

>>> from schemas.events import Interaction
>>> cfg = RankerConfig()
>>> ctx = {"placement": "homepage", "device": "mobile", "sources": "session,trending"}
>>> shown = Interaction("e1", "impression", "u", "s", 0, item_ids=("a", "b"), rec_id="r1",
...                     context=ctx)
>>> st, out = label_step(None, shown, cfg)
>>> click = Interaction("e2", "click", "u", "s", 60_000, item_id="b", rec_id="r1")
>>> st, out = label_step(st, click, cfg)
>>> out
Labels(examples=(), ignored=None)
>>> later = Interaction("e3", "view", "u", "s", 31 * 60_000, item_id="c")
>>> st, out = label_step(st, later, cfg)
>>> [(e.item, e.source, e.label, e.slot, e.weight) for e in out.examples], st
([('a', 'session', False, 1, 1.0), ('b', 'trending', True, 2, 1.0)], None)
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Final

from operators import ranker_models as rm
from operators.ranker_features import (
    CONTEXT_FIELDS,
    DEFAULT_BUCKETS,
    UNKNOWN,
    RequestFeatures,
    features,
)
from schemas.events import Interaction

SNAPSHOT_FORMAT: Final = "recs.ranker"
SNAPSHOT_VERSION: Final = 1
STATE_CODEC: Final = 1

IMPRESSION: Final = "impression"
NEGATIVE: Final = "negative"
EXPLORE: Final = "explore"
SOURCES_FIELD: Final = "sources"
SOURCES_SEPARATOR: Final = ","

# why an event produced nothing (Labels.ignored); the Ranker counts them
NO_REC_ID: Final = "no_rec_id"                   # an engagement or impression without rec_id
UNMATCHED: Final = "unmatched"                   # rec_id of no open impression of this user
NOT_SHOWN: Final = "not_shown"                   # the impression did not show that item
DUPLICATE: Final = "duplicate"                   # the item already had an engagement this strong
DUPLICATE_IMPRESSION: Final = "duplicate_impression"  # its rec_id is open already
LATE_IMPRESSION: Final = "late_impression"       # its window had closed when it arrived
REASONS: Final = (NO_REC_ID, UNMATCHED, NOT_SHOWN, DUPLICATE, DUPLICATE_IMPRESSION,
                  LATE_IMPRESSION)

DEFAULT_POSITIVE_WEIGHTS: Final = MappingProxyType(
    {"click": 1.0, "add_to_cart": 2.0, "purchase": 4.0})


@dataclass(frozen=True, slots=True)
class RankerConfig:
    # labelling
    window_ms: int = 30 * 60_000      # attribution window after an impression (event time)
    max_pending: int = 20             # open impressions per user
    positive_weights: Mapping[str, float] = field(
        default_factory=lambda: DEFAULT_POSITIVE_WEIGHTS)
    negative_weight: float = 1.0
    slot_discount: float = 0.0        # η: a negative at slot s weighs s ** -η
    # model
    model: str = rm.LOGISTIC_REGRESSION
    optimizer: str = rm.SGD           # constant rate: keeps tracking drift (see ranker_models)
    lr: float = 0.02                  # weights (for ftrl: alpha)
    intercept_lr: float = 0.01
    l2: float = 1e-4
    fm_factors: int = 8
    fm_latent_lr: float = 0.02
    fm_init_sigma: float = 0.05
    seed: int = 0
    buckets: int = DEFAULT_BUCKETS    # hash space of the hashed features
    # cold start
    warm_positives: int = 200
    warm_negatives: int = 2_000
    min_auc: float = 0.55

    def __post_init__(self) -> None:
        for name in ("window_ms", "max_pending", "fm_factors", "buckets", "lr"):
            if not getattr(self, name) > 0:
                raise ValueError(f"RankerConfig.{name}: must be > 0, got {getattr(self, name)!r}")
        for name in ("negative_weight", "slot_discount", "intercept_lr", "l2", "fm_latent_lr",
                     "fm_init_sigma", "warm_positives", "warm_negatives", "min_auc"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"RankerConfig.{name}: must be finite and >= 0, got {value!r}")
        for etype, w in self.positive_weights.items():
            if etype == IMPRESSION or not (math.isfinite(w) and w > 0):
                raise ValueError(f"RankerConfig.positive_weights[{etype!r}]: must be a non-"
                                 f"impression type with a finite weight > 0, got {w!r}")
        if self.model not in rm.MODELS:
            raise ValueError(f"RankerConfig.model: expected one of {rm.MODELS}, "
                             f"got {self.model!r}")
        if self.optimizer not in rm.OPTIMIZERS:
            raise ValueError(f"RankerConfig.optimizer: expected one of {rm.OPTIMIZERS}, "
                             f"got {self.optimizer!r}")

    def to_dict(self) -> dict[str, Any]:
        doc = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["positive_weights"] = dict(self.positive_weights)
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> RankerConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(doc) - known)
        if unknown:
            raise ValueError(f"RankerConfig.from_dict: unknown field {unknown[0]!r}")
        values = dict(doc)
        values["positive_weights"] = MappingProxyType(dict(values.get(
            "positive_weights", DEFAULT_POSITIVE_WEIGHTS)))
        return cls(**values)


Context = tuple[tuple[str, str], ...]  # the impression's string context fields, sorted


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled shown item."""

    user: str
    item: str
    source: str
    context: Context
    ts: int            # impression time: the time the features see
    label_ts: int      # event time the window closed (its end, or earlier when pushed out)
    slot: int          # 1-based position in the impression
    label: bool
    weight: float
    kind: str          # the strongest engagement type, or NEGATIVE
    rec_id: str
    variant: str | None


@dataclass(frozen=True, slots=True)
class Labels:
    examples: tuple[Example, ...] = ()
    ignored: str | None = None  # one of REASONS when the event itself could not be used


@dataclass(frozen=True, slots=True)
class Pending:
    rec_id: str
    ts: int
    items: tuple[str, ...]             # distinct, slot order
    sources: tuple[str, ...]           # aligned with items
    context: Context
    variant: str | None
    engaged: tuple[tuple[int, str], ...] = ()  # (0-based slot, strongest engagement type)


@dataclass(frozen=True, slots=True)
class LabelState:
    pending: tuple[Pending, ...]  # by impression time, oldest first
    newest: int                   # newest event time seen for the key


# ---- labelling ----------------------------------------------------------------------------------

def shown_sources(event: Interaction) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The distinct shown items (first slot wins) and the source of each (module docstring).

    >>> ev = Interaction("e", "impression", "u", "s", 0, item_ids=("a", "b", "a"),
    ...                  context={"sources": "session,explore,trending"})
    >>> shown_sources(ev)
    (('a', 'b'), ('session', 'explore'))
    """
    raw = event.context.get(SOURCES_FIELD)
    parts = raw.split(SOURCES_SEPARATOR) if isinstance(raw, str) else []
    explore = event.context.get("explore_item")
    items: dict[str, str] = {}
    for i, item in enumerate(event.item_ids):
        if item in items:
            continue
        if len(parts) == len(event.item_ids):
            items[item] = parts[i].strip() or UNKNOWN
        else:
            items[item] = EXPLORE if item == explore else UNKNOWN
    return tuple(items), tuple(items.values())


def _context(event: Interaction) -> Context:
    return tuple(sorted((k, v) for k in CONTEXT_FIELDS
                        if isinstance(v := event.context.get(k), str)))


def _examples(p: Pending, label_ts: int, user: str, cfg: RankerConfig) -> list[Example]:
    """Every shown item of a closed impression, in slot order."""
    engaged = dict(p.engaged)
    out = []
    for i, item in enumerate(p.items):
        kind = engaged.get(i, NEGATIVE)
        weight = (cfg.positive_weights[kind] if kind != NEGATIVE
                  else cfg.negative_weight * (i + 1) ** -cfg.slot_discount)
        out.append(Example(user, item, p.sources[i], p.context, p.ts, label_ts, i + 1,
                           kind != NEGATIVE, weight, kind, p.rec_id, p.variant))
    return out


def _close(pending: tuple[Pending, ...], newest: int, user: str,
           cfg: RankerConfig) -> tuple[tuple[Pending, ...], list[Example]]:
    """Close the impressions whose window ``newest`` has passed: their examples, in order."""
    out: list[Example] = []
    keep: list[Pending] = []
    for p in pending:
        if newest > p.ts + cfg.window_ms:
            out.extend(_examples(p, p.ts + cfg.window_ms, user, cfg))
        else:
            keep.append(p)
    return (pending, out) if not out and len(keep) == len(pending) else (tuple(keep), out)


def _state(pending: tuple[Pending, ...], newest: int) -> LabelState | None:
    return LabelState(pending, newest) if pending else None


def close(state: LabelState | None, until_ts: int, user: str,
          cfg: RankerConfig) -> tuple[LabelState | None, Labels]:
    """Close every window that ends before ``until_ts`` (a watermark, an event-time timer, or
    the end of a replay): the examples of those impressions. Keyed by ``user``."""
    if state is None:
        return None, Labels()
    newest = max(state.newest, until_ts)
    pending, out = _close(state.pending, newest, user, cfg)
    if pending is state.pending:
        return state, Labels()
    return _state(pending, state.newest), Labels(tuple(out))


def _impression(pending: tuple[Pending, ...], event: Interaction, newest: int,
                cfg: RankerConfig) -> tuple[tuple[Pending, ...], list[Example], str | None]:
    if event.rec_id is None:
        return pending, [], NO_REC_ID
    if any(p.rec_id == event.rec_id for p in pending):
        return pending, [], DUPLICATE_IMPRESSION
    if newest > event.ts + cfg.window_ms:
        return pending, [], LATE_IMPRESSION
    items, sources = shown_sources(event)
    new = Pending(event.rec_id, event.ts, items, sources, _context(event), event.variant)
    merged = sorted((*pending, new), key=lambda p: p.ts)  # stable: equal times keep arrival
    out: list[Example] = []
    while len(merged) > cfg.max_pending:
        out.extend(_examples(merged.pop(0), event.ts, event.user_id, cfg))
    return tuple(merged), out, None


def _engagement(pending: tuple[Pending, ...],
                event: Interaction, cfg: RankerConfig) -> tuple[tuple[Pending, ...], str | None]:
    if event.rec_id is None or event.item_id is None:
        return pending, NO_REC_ID
    at = next((n for n, p in enumerate(pending) if p.rec_id == event.rec_id), None)
    if at is None:
        return pending, UNMATCHED
    p = pending[at]
    if event.item_id not in p.items:
        return pending, NOT_SHOWN
    slot = p.items.index(event.item_id)
    weights = cfg.positive_weights
    before = next((t for s, t in p.engaged if s == slot), None)
    if before is not None and weights[event.type] <= weights[before]:
        return pending, DUPLICATE
    engaged = (*(e for e in p.engaged if e[0] != slot), (slot, event.type))
    return (*pending[:at], replace(p, engaged=engaged), *pending[at + 1:]), None


def label_step(state: LabelState | None, event: Interaction,
               cfg: RankerConfig) -> tuple[LabelState | None, Labels]:
    """One event of one user: the examples it completes (see the module docstring). ``None``
    when no impression is open (the state is deleted)."""
    pending = state.pending if state is not None else ()
    newest = max(state.newest, event.ts) if state is not None else event.ts
    pending, out = _close(pending, newest, event.user_id, cfg)
    ignored: str | None = None
    if event.type == IMPRESSION:
        pending, more, ignored = _impression(pending, event, newest, cfg)
        out.extend(more)
    elif event.type in cfg.positive_weights:
        pending, ignored = _engagement(pending, event, cfg)
    if state is not None and pending is state.pending and newest == state.newest:
        return state, Labels((), ignored)
    return _state(pending, newest), Labels(tuple(out), ignored)


def encode_state(state: LabelState) -> dict[str, Any]:
    return {"_c": STATE_CODEC, "newest": state.newest, "pending": [
        {"rec_id": p.rec_id, "ts": p.ts, "items": list(p.items), "sources": list(p.sources),
         "context": dict(p.context), "variant": p.variant,
         "engaged": [list(e) for e in p.engaged]} for p in state.pending]}


def decode_state(doc: Mapping[str, Any]) -> LabelState:
    if doc.get("_c") != STATE_CODEC:
        raise ValueError(f"operators.ranker.decode_state: unknown state codec {doc.get('_c')!r}")
    return LabelState(tuple(
        Pending(p["rec_id"], p["ts"], tuple(p["items"]), tuple(p["sources"]),
                tuple(sorted(p["context"].items())), p["variant"],
                tuple((e[0], e[1]) for e in p["engaged"])) for p in doc["pending"]),
        doc["newest"])


# ---- the model ----------------------------------------------------------------------------------

ItemMeta = Mapping[str, Mapping[str, Any] | None]
NO_META: Final[ItemMeta] = MappingProxyType({})


class Ranker:
    """The click-through model, its prequential metrics and counters. Mutable (it is the model):
    :meth:`learn` changes it; :meth:`rank`, :meth:`is_warm` and :meth:`snapshot` never do."""

    def __init__(self, cfg: RankerConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else RankerConfig()
        self.model: rm.Model = rm.make_model(self.cfg)
        self.auc = rm.BinnedAUC()
        self.log_loss = rm.new_log_loss()
        self.positives = 0
        self.negatives = 0
        self.ignored: dict[str, int] = {}

    def features(self, user: str, item: str, source: str, context: Mapping[str, object],
                 ts: int, meta: Mapping[str, Any] | None) -> dict[str, float]:
        return features(user, item, context, source, meta, ts=ts, buckets=self.cfg.buckets)

    def observe(self, labels: Labels, meta: ItemMeta = NO_META) -> list[float]:
        """Learn the examples of one :func:`label_step` (``meta``: catalogue values by item):
        predict them all, update the metrics, then learn them in order. Counts why the event
        was ignored. Returns the prequential predictions, aligned with the examples."""
        if labels.ignored is not None:
            self.ignored[labels.ignored] = self.ignored.get(labels.ignored, 0) + 1
        xs = [self.features(ex.user, ex.item, ex.source, dict(ex.context), ex.ts,
                            meta.get(ex.item)) for ex in labels.examples]
        ps = [rm.sigmoid(self.model.logit(x)) for x in xs]
        for ex, p in zip(labels.examples, ps, strict=True):
            self.auc.update(ex.label, p)
            self.log_loss.update(ex.label, p)
            if ex.label:
                self.positives += 1
            else:
                self.negatives += 1
        for ex, x in zip(labels.examples, xs, strict=True):
            self.model.learn(x, ex.label, ex.weight)
        return ps

    def rank(self, user: str, candidates: Sequence[tuple[str, str]],
             context: Mapping[str, object], *, ts: int, meta: ItemMeta = NO_META) -> list[float]:
        """Click probabilities of ``candidates`` (``(item_id, source)`` pairs) shown to ``user``
        at ``ts`` in ``context`` (device, country, page, placement), aligned with them. Scores
        even when cold: the caller checks :meth:`is_warm` first."""
        request = RequestFeatures(user, context, ts=ts, buckets=self.cfg.buckets)
        logit, get = self.model.logit, meta.get
        return [rm.sigmoid(logit(request.item(item, source, get(item))))
                for item, source in candidates]

    def is_warm(self) -> bool:
        c = self.cfg
        return (self.positives >= c.warm_positives and self.negatives >= c.warm_negatives
                and self.auc.get() >= c.min_auc)

    def stats(self) -> dict[str, Any]:
        """Counters and metrics, for ``/metrics`` and the snapshot header."""
        return {"examples": self.positives + self.negatives, "positives": self.positives,
                "negatives": self.negatives,
                "ignored": dict(sorted(self.ignored.items())), "auc": self.auc.get(),
                "log_loss": float(self.log_loss.get()), "warm": self.is_warm(),
                "model_size": self.model.size()}

    def top_features(self, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` unhashed features with the largest absolute weight (hashed ids left out)."""
        named = [(k, w) for k, w in self.model.weights.items() if "#" not in k]
        return sorted(named, key=lambda kw: (-abs(kw[1]), kw[0]))[:n]

    def snapshot(self) -> dict[str, Any]:
        """A plain-JSON, versioned document: header first, weights last."""
        return {"format": SNAPSHOT_FORMAT, "version": SNAPSHOT_VERSION,
                "config": self.cfg.to_dict(), "stats": self.stats(),
                "metrics_state": {"auc": self.auc.encode(),
                                  "log_loss": rm.encode_log_loss(self.log_loss)},
                "model": self.model.encode()}

    @classmethod
    def restore(cls, doc: Mapping[str, Any]) -> Ranker:
        if doc.get("format") != SNAPSHOT_FORMAT or doc.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"operators.ranker.Ranker.restore: format/version "
                             f"{doc.get('format')!r}/{doc.get('version')!r}, expected "
                             f"{SNAPSHOT_FORMAT!r}/{SNAPSHOT_VERSION}")
        ranker = cls(RankerConfig.from_dict(doc["config"]))
        model = doc["model"]
        if model.get("kind") != ranker.model.kind:
            raise ValueError(f"operators.ranker.Ranker.restore: model.kind {model.get('kind')!r}"
                             f" does not match config.model {ranker.cfg.model!r}")
        ranker.model.decode(model)
        ranker.auc = rm.BinnedAUC.decode(doc["metrics_state"]["auc"])
        ranker.log_loss = rm.decode_log_loss(doc["metrics_state"]["log_loss"])
        stats = doc["stats"]
        ranker.positives, ranker.negatives = int(stats["positives"]), int(stats["negatives"])
        ranker.ignored = {str(k): int(v) for k, v in stats["ignored"].items()}
        return ranker


if __name__ == "__main__":  # python -m operators.ranker bench
    from operators.ranker_bench import main

    sys.exit(main(sys.argv[1:]))
