"""Decayed trending, global, per category and per context, in two keyed steps.

1. :func:`item_step` (keyed by item) keeps the item's forward-decayed popularity ``log_pop``, its
   counters by event type, its catalogue metadata and first-seen time, and a forward-decayed
   score per context scope it was interacted in. Every change of ``log_pop`` emits a
   :class:`ScopeScore` for the ``global`` scope, for the item's category scope and for the
   event's context scopes. Catalogue upserts (:func:`item_upsert_step`) also emit the scores of
   the new-arrival scopes ``new:global`` and ``new:cat:{category}`` (:mod:`operators.arrivals`).
2. :func:`topk_step` (keyed by scope) keeps the best ``top_k`` items of the scope
   (``new_top_k`` for the new-arrival scopes, see :func:`list_size`).

Forward-decayed log scores only ever grow and share one landmark, so the streaming top-K is exact
(up to ties) whatever order the scope scores arrive in: an item that is not in the top-K when its
final score arrives had at least K others ahead of it. No periodic rescans. The one exception is
a retraction (an item recategorised or deleted, a context scope it stopped tracking, or a
new-arrival score lowered by a late upsert, see :mod:`operators.arrivals`), which
removes the item from a scope; that list then holds fewer than K items until another one rises
into it, and which runner-up fills the gap depends on the arrival order.

Context scopes (cold-start lists by situation): ``ctx:device:{device}`` and
``ctx:country:{country}`` from the event's context (normalised by
:func:`state.keys.context_value`; a missing, empty or over-long value gives no scope) and
``ctx:daypart:{daypart(ts)}`` from its event time. They are scored with the same weights and
half-life as ``log_pop`` (so an item's context scores never exceed it), for events that add
weight only. An item tracks at most ``max_context_scopes`` of them. When an event would exceed
the bound the item keeps the highest-scoring ones (ties: the smaller scope name) and retracts
the tracked ones it drops. Highest-scoring rather than first-come: scores share one landmark, so
the item keeps the scopes with the most *current* weight, and a scope where it stopped being
popular makes room for a new one instead of blocking it for good. A dropped scope that comes
back starts again from its new events. Below the bound the context lists are exact, like the
others.

>>> cfg = TrendingConfig(top_k=2, half_life_s=1e12)
>>> s = None
>>> for item, score in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("a", 4.0)]:
...     s, changed = topk_step(s, ScopeScore("global", item, score, 0))
...     s = trim(s, cfg) if s is not None else s
>>> [item for item, _ in ranked(s)]
['a', 'c']
>>> _, scores = item_event_step(None, "i1", "view", None, 1_700_000_000_000, EngineConfig(),
...                             device="Mobile", country=" DE")
>>> [x.scope for x in scores]
['global', 'ctx:device:mobile', 'ctx:country:de', 'ctx:daypart:evening']
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Final

from operators import arrivals
from operators.config import EngineConfig, TrendingConfig
from operators.decay import NEG_INF, add
from schemas.events import Interaction, ItemUpsert
from state.keys import (
    CONTEXT_COUNTRY,
    CONTEXT_DAYPART,
    CONTEXT_DEVICE,
    context_value,
    is_new_arrivals_scope,
    trending_context_scope,
    trending_scope,
)

HOUR_MS: Final = 3_600_000
DAYPARTS: Final = ("night", "morning", "afternoon", "evening")  # UTC hours [0,6) [6,12) ...


@dataclass(frozen=True, slots=True)
class ItemState:
    meta: dict[str, Any] | None  # latest catalogue upsert (to_dict() without schema_version)
    meta_ts: int                 # event time of that upsert; the version of recs:v1:item
    counts: dict[str, int]
    log_pop: float
    seq: int                     # events applied: the version of recs:v1:itemstats
    as_of: int                   # newest event touching the item
    pop_ts: int = 0              # newest event that added to log_pop
    # context scope -> (log score, newest event that added to it); at most max_context_scopes
    ctx: dict[str, tuple[float, int]] = field(default_factory=dict)
    first_seen_ts: int = 0       # oldest upsert's event time (operators/arrivals.py); 0: no meta


RETRACT = NEG_INF  # a ScopeScore with this log score removes the item from the scope


@dataclass(frozen=True, slots=True)
class ScopeScore:
    scope: str
    item_id: str
    log_score: float
    ts: int


def _empty() -> ItemState:
    return ItemState(None, 0, {}, NEG_INF, 0, 0)


def daypart(ts_ms: int) -> str:
    """Part of the day of an event time, by its UTC hour: ``night`` [0, 6), ``morning`` [6, 12),
    ``afternoon`` [12, 18), ``evening`` [18, 24).

    >>> [daypart(h * HOUR_MS) for h in (0, 5, 6, 11, 12, 17, 18, 23)]
    ['night', 'night', 'morning', 'morning', 'afternoon', 'afternoon', 'evening', 'evening']
    >>> daypart(1_700_000_000_000), daypart(-1)  # 2023-11-14 22:13 UTC; 1969-12-31 23:59
    ('evening', 'evening')
    """
    return DAYPARTS[ts_ms // HOUR_MS % 24 // 6]


def context_field(event: Interaction, name: str) -> str | None:
    """The raw string ``event.context[name]``, or ``None`` (missing or not a string)."""
    value = event.context.get(name)
    return value if isinstance(value, str) else None


def context_scopes(device: str | None, country: str | None, ts: int) -> list[str]:
    """The context scopes an event at ``ts`` with this device and country scores in."""
    out = []
    for dimension, raw in ((CONTEXT_DEVICE, device), (CONTEXT_COUNTRY, country)):
        value = context_value(raw)
        if value is not None:
            out.append(trending_context_scope(dimension, value))
    out.append(trending_context_scope(CONTEXT_DAYPART, daypart(ts)))
    return out


def category_of(state: ItemState | None) -> str | None:
    if state is None or state.meta is None:
        return None
    cat = state.meta.get("category")
    return cat if isinstance(cat, str) else None


def current_scores(item_id: str, state: ItemState) -> list[ScopeScore]:
    """The item's score in every popularity scope it belongs to, as of its newest event there.

    Offering these instead of every intermediate score gives the same top-K, since scores only
    grow (shells that coalesce publications use this). A context score carries the time of the
    newest event that added to it, so a list's version is the newest event it reflects. The
    new-arrival scores are not among them: :func:`item_upsert_step` emits those, to be offered
    at once."""
    out = _scores(item_id, state, state.pop_ts)
    out += [ScopeScore(scope, item_id, score, ts)
            for scope, (score, ts) in sorted(state.ctx.items())]
    return out


def _scores(item_id: str, state: ItemState, ts: int) -> list[ScopeScore]:
    """Global and category scores (both follow ``log_pop``)."""
    if state.log_pop == NEG_INF:
        return []
    out = [ScopeScore(trending_scope(), item_id, state.log_pop, ts)]
    cat = category_of(state)
    if cat is not None:
        out.append(ScopeScore(trending_scope(cat), item_id, state.log_pop, ts))
    return out


def _add_context(ctx: dict[str, tuple[float, int]], scopes: list[str], weight: float, ts: int,
                 cfg: TrendingConfig) -> dict[str, tuple[float, int]]:
    """Add one event to its context scopes; keep the ``max_context_scopes`` best."""
    new = dict(ctx)
    for scope in scopes:
        score, newest = new.get(scope, (NEG_INF, ts))
        new[scope] = (add(score, weight, ts, cfg.half_life_s), max(newest, ts))
    if len(new) <= cfg.max_context_scopes:
        return new
    keep = set(sorted(new, key=lambda s: (-new[s][0], s))[:cfg.max_context_scopes])
    return {s: v for s, v in new.items() if s in keep}


def item_event_step(state: ItemState | None, item_id: str, etype: str, value: float | None,
                    ts: int, cfg: EngineConfig, *, device: str | None = None,
                    country: str | None = None) -> tuple[ItemState, list[ScopeScore]]:
    """Apply one interaction with ``item_id`` (impressions count, but do not trend).

    ``device`` and ``country`` are the raw strings of the event's context (see
    :func:`context_field`); they only matter for events that add weight."""
    cur = state or _empty()
    counts = dict(cur.counts)
    counts[etype] = counts.get(etype, 0) + 1
    weight = cfg.weight(etype, value)
    if not weight > 0:
        return replace(cur, counts=counts, seq=cur.seq + 1, as_of=max(cur.as_of, ts)), []
    scopes = context_scopes(device, country, ts)
    ctx = _add_context(cur.ctx, scopes, weight, ts, cfg.trending)
    log_pop = add(cur.log_pop, weight, ts, cfg.trending.half_life_s)
    new = replace(cur, counts=counts, log_pop=log_pop, seq=cur.seq + 1, as_of=max(cur.as_of, ts),
                  pop_ts=max(cur.pop_ts, ts), ctx=ctx)
    out = _scores(item_id, new, ts)
    out += [ScopeScore(s, item_id, ctx[s][0], ts) for s in scopes if s in ctx]
    # scopes the bound pushed out leave their lists (at their own time: no version moves)
    out += [ScopeScore(s, item_id, RETRACT, t) for s, (_, t) in cur.ctx.items() if s not in ctx]
    return new, out


def item_step(state: ItemState | None, event: Interaction,
              cfg: EngineConfig) -> tuple[ItemState, list[ScopeScore]]:
    if event.item_id is None:
        raise ValueError(f"operators.trending: event {event.event_id!r} has no item_id")
    return item_event_step(state, event.item_id, event.type, event.value, event.ts, cfg,
                           device=context_field(event, CONTEXT_DEVICE),
                           country=context_field(event, CONTEXT_COUNTRY))


def item_upsert_step(state: ItemState | None, upsert: ItemUpsert,
                     cfg: EngineConfig) -> tuple[ItemState, list[ScopeScore]]:
    """Apply a catalogue upsert. The newest ``ts`` wins the metadata (ties: the later upsert);
    an older one leaves it alone but may lower the item's first-seen time, which is the oldest
    upsert's ``ts`` (:mod:`operators.arrivals`)."""
    cur = state or _empty()
    if cur.meta is not None and upsert.ts < cur.meta_ts:
        if upsert.ts >= cur.first_seen_ts:
            return cur, []
        lowered = replace(cur, first_seen_ts=upsert.ts)
        return lowered, _arrival_scores(upsert.item_id, cur, lowered, cfg.trending)
    meta = upsert.to_dict()
    meta.pop("schema_version", None)
    first_seen = upsert.ts if cur.meta is None else min(cur.first_seen_ts, upsert.ts)
    new = replace(cur, meta=meta, meta_ts=upsert.ts, first_seen_ts=first_seen)
    out = _trending_moves(upsert.item_id, cur, new, upsert.deleted)
    out += _arrival_scores(upsert.item_id, cur, new, cfg.trending)
    return new, out


def _trending_moves(item_id: str, cur: ItemState, new: ItemState,
                    deleted: bool) -> list[ScopeScore]:
    """What an applied upsert changes in the popularity lists."""
    old_cat = category_of(cur)
    new_cat = category_of(new)
    out: list[ScopeScore] = []
    if deleted:
        # a retired item leaves every list it is on
        scopes = [trending_scope(), *([trending_scope(old_cat)] if old_cat else [])]
        out = [ScopeScore(s, item_id, RETRACT, cur.pop_ts) for s in scopes]
        out += [ScopeScore(s, item_id, RETRACT, t) for s, (_, t) in cur.ctx.items()]
        return out
    if old_cat is not None and old_cat != new_cat:
        out.append(ScopeScore(trending_scope(old_cat), item_id, RETRACT, cur.pop_ts))
    # The item's score only needs re-announcing when it gains a category scope. Scope scores
    # carry the time of the item's newest scoring event, so a list's version is the newest
    # interaction it reflects (catalogue upserts do not move it).
    if new_cat is not None and new_cat != old_cat and new.log_pop != NEG_INF:
        out.append(ScopeScore(trending_scope(new_cat), item_id, new.log_pop, new.pop_ts))
    return out


def _arrival_scores(item_id: str, cur: ItemState, new: ItemState,
                    cfg: TrendingConfig) -> list[ScopeScore]:
    """What an upsert changes in the new-arrival lists: leave the scopes the item left or where
    its score went down (at the time of its previous offer, ``cur.meta_ts``), then offer its
    score to every scope it is in at the time of its newest upsert (see operators/arrivals.py)."""
    old = arrivals.placement(cur.meta, cur.first_seen_ts, cfg.half_life_s)
    now = arrivals.placement(new.meta, new.first_seen_ts, cfg.half_life_s)
    out = [ScopeScore(s, item_id, RETRACT, cur.meta_ts) for s in arrivals.retracted(old, now)]
    out += [ScopeScore(s, item_id, score, new.meta_ts) for s, score in now.items()]
    return out


def render_item(state: ItemState) -> dict[str, Any] | None:
    """The value published at ``recs:v1:item:{item}``: the newest upsert (without its schema
    version) and ``first_seen_ms``; ``None`` before the item's first upsert."""
    if state.meta is None:
        return None
    return {**state.meta, "first_seen_ms": state.first_seen_ts}


def render_stats(state: ItemState) -> dict[str, Any]:
    """The value published at ``recs:v1:itemstats:{item}``."""
    return {"counts": dict(sorted(state.counts.items())),
            "log_pop": None if state.log_pop == NEG_INF else state.log_pop}


@dataclass(frozen=True, slots=True)
class TopKState:
    items: dict[str, float]  # member -> log score, at most top_k after trim()
    seq: int
    as_of: int


def topk_step(state: TopKState | None, score: ScopeScore) -> tuple[TopKState | None, bool]:
    """Offer one (monotonically growing) score; call :func:`trim` afterwards.

    Returns the new state and whether the published list may have changed.
    """
    items = {} if state is None else state.items
    if score.log_score == RETRACT:
        # Retraction (recategorised or deleted item). The list may hold fewer than top_k
        # items until others rise into it: evicted runners-up are not remembered.
        if state is None or score.item_id not in items:
            return state, False
        kept = {i: s for i, s in items.items() if i != score.item_id}
        return TopKState(kept, state.seq + 1, max(state.as_of, score.ts)), True
    if items.get(score.item_id, NEG_INF) >= score.log_score:
        if state is not None and score.ts > state.as_of:
            # nothing moved, but the list now reflects a newer event: advance its version,
            # so the version is the newest offered time whichever offers change the list
            return replace(state, seq=state.seq + 1, as_of=score.ts), True
        return state, False
    new_items = dict(items)
    new_items[score.item_id] = score.log_score
    seq = 1 if state is None else state.seq + 1
    as_of = score.ts if state is None else max(state.as_of, score.ts)
    return TopKState(new_items, seq, as_of), True


def list_size(cfg: TrendingConfig, scope: str | None = None) -> int:
    """Items a scope's list keeps: ``new_top_k`` for a new-arrival scope, ``top_k`` for any
    other (``None``: a popularity list)."""
    return cfg.new_top_k if scope is not None and is_new_arrivals_scope(scope) else cfg.top_k


def trim(state: TopKState, cfg: TrendingConfig, scope: str | None = None) -> TopKState:
    """Keep the best :func:`list_size` items of ``scope``'s list."""
    k = list_size(cfg, scope)
    if len(state.items) <= k:
        return state
    kept = dict(ranked(state)[:k])
    return replace(state, items=kept)


def ranked(state: TopKState) -> list[tuple[str, float]]:
    return sorted(state.items.items(), key=lambda kv: (-kv[1], kv[0]))


def render_topk(state: TopKState, cfg: TrendingConfig, scope: str | None = None
                ) -> dict[str, Any]:
    """The value published at ``recs:v1:trending:{scope}``."""
    return {"items": [[i, s] for i, s in ranked(state)[:list_size(cfg, scope)]],
            "half_life_s": cfg.half_life_s}


def encode_item(state: ItemState) -> dict[str, Any]:
    return {"_c": 1, "meta": state.meta, "meta_ts": state.meta_ts, "counts": state.counts,
            "log_pop": None if state.log_pop == NEG_INF else state.log_pop,
            "seq": state.seq, "as_of": state.as_of, "pop_ts": state.pop_ts,
            "ctx": {scope: [score, ts] for scope, (score, ts) in state.ctx.items()},
            "first_seen_ts": state.first_seen_ts}


def decode_item(doc: dict[str, Any]) -> ItemState:
    """Inverse of :func:`encode_item`; states checkpointed before ``pop_ts`` or ``ctx`` existed
    decode with ``0`` and no context scores, before ``first_seen_ts`` with ``meta_ts`` (the
    newest upsert: the oldest one is not known any more)."""
    if doc.get("_c") != 1:
        raise ValueError(f"operators.trending: unknown item codec {doc.get('_c')!r}")
    log_pop = NEG_INF if doc["log_pop"] is None else float(doc["log_pop"])
    ctx = {scope: (float(v[0]), int(v[1])) for scope, v in doc.get("ctx", {}).items()}
    return ItemState(doc["meta"], doc["meta_ts"], dict(doc["counts"]), log_pop, doc["seq"],
                     doc["as_of"], doc.get("pop_ts", 0), ctx,
                     doc.get("first_seen_ts", doc["meta_ts"]))


def encode_topk(state: TopKState) -> dict[str, Any]:
    return {"_c": 1, "items": state.items, "seq": state.seq, "as_of": state.as_of}


def decode_topk(doc: dict[str, Any]) -> TopKState:
    if doc.get("_c") != 1:
        raise ValueError(f"operators.trending: unknown top-k codec {doc.get('_c')!r}")
    return TopKState(dict(doc["items"]), doc["seq"], doc["as_of"])
