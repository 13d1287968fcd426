"""Decayed trending, global and per category, in two keyed steps.

1. :func:`item_step` (keyed by item) keeps the item's forward-decayed popularity ``log_pop``, its
   counters by event type, and its catalogue metadata. Every change of ``log_pop`` emits a
   :class:`ScopeScore` for the ``global`` scope and for the item's category scope.
2. :func:`topk_step` (keyed by scope) keeps the best ``top_k`` items of the scope.

Forward-decayed log scores only ever grow and share one landmark, so the streaming top-K is exact
(up to ties) whatever order the scope scores arrive in: an item that is not in the top-K when its
final score arrives had at least K others ahead of it. No periodic rescans. The one exception is
a retraction (an item recategorised or deleted), which removes the item from a scope; that list
then holds fewer than K items until another one rises into it.

>>> cfg = TrendingConfig(top_k=2, half_life_s=1e12)
>>> s = None
>>> for item, score in [("a", 1.0), ("b", 2.0), ("c", 3.0), ("a", 4.0)]:
...     s, changed = topk_step(s, ScopeScore("global", item, score, 0))
...     s = trim(s, cfg) if s is not None else s
>>> [item for item, _ in ranked(s)]
['a', 'c']
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from operators.config import EngineConfig, TrendingConfig
from operators.decay import NEG_INF, add
from schemas.events import Interaction, ItemUpsert
from state.keys import trending_scope


@dataclass(frozen=True, slots=True)
class ItemState:
    meta: dict[str, Any] | None  # latest catalogue upsert (to_dict() without schema_version)
    meta_ts: int                 # event time of that upsert; the version of recs:v1:item
    counts: dict[str, int]
    log_pop: float
    seq: int                     # events applied: the version of recs:v1:itemstats
    as_of: int                   # newest event touching the item
    pop_ts: int = 0              # newest event that added to log_pop


RETRACT = NEG_INF  # a ScopeScore with this log score removes the item from the scope


@dataclass(frozen=True, slots=True)
class ScopeScore:
    scope: str
    item_id: str
    log_score: float
    ts: int


def _empty() -> ItemState:
    return ItemState(None, 0, {}, NEG_INF, 0, 0)


def category_of(state: ItemState | None) -> str | None:
    if state is None or state.meta is None:
        return None
    cat = state.meta.get("category")
    return cat if isinstance(cat, str) else None


def current_scores(item_id: str, state: ItemState) -> list[ScopeScore]:
    """The item's score in every scope it belongs to, as of its newest event.

    Offering these instead of every intermediate score gives the same top-K, since scores only
    grow (shells that coalesce publications use this)."""
    return _scores(item_id, state, state.pop_ts)


def _scores(item_id: str, state: ItemState, ts: int) -> list[ScopeScore]:
    if state.log_pop == NEG_INF:
        return []
    out = [ScopeScore(trending_scope(), item_id, state.log_pop, ts)]
    cat = category_of(state)
    if cat is not None:
        out.append(ScopeScore(trending_scope(cat), item_id, state.log_pop, ts))
    return out


def item_event_step(state: ItemState | None, item_id: str, etype: str, value: float | None,
                    ts: int, cfg: EngineConfig) -> tuple[ItemState, list[ScopeScore]]:
    """Apply one interaction with ``item_id`` (impressions count, but do not trend)."""
    cur = state or _empty()
    counts = dict(cur.counts)
    counts[etype] = counts.get(etype, 0) + 1
    weight = cfg.weight(etype, value)
    log_pop = add(cur.log_pop, weight, ts, cfg.trending.half_life_s) if weight > 0 else cur.log_pop
    new = replace(cur, counts=counts, log_pop=log_pop, seq=cur.seq + 1,
                  as_of=max(cur.as_of, ts),
                  pop_ts=max(cur.pop_ts, ts) if weight > 0 else cur.pop_ts)
    return new, (_scores(item_id, new, ts) if weight > 0 else [])


def item_step(state: ItemState | None, event: Interaction,
              cfg: EngineConfig) -> tuple[ItemState, list[ScopeScore]]:
    if event.item_id is None:
        raise ValueError(f"operators.trending: event {event.event_id!r} has no item_id")
    return item_event_step(state, event.item_id, event.type, event.value, event.ts, cfg)


def item_upsert_step(state: ItemState | None,
                     upsert: ItemUpsert) -> tuple[ItemState, list[ScopeScore]]:
    """Apply a catalogue upsert; the newest ``ts`` wins, older upserts are ignored."""
    cur = state or _empty()
    if cur.meta is not None and upsert.ts < cur.meta_ts:
        return cur, []
    meta = upsert.to_dict()
    meta.pop("schema_version", None)
    old_cat = category_of(cur)
    new = replace(cur, meta=meta, meta_ts=upsert.ts)
    new_cat = category_of(new)
    out: list[ScopeScore] = []
    if upsert.deleted:
        # a retired item leaves every list it is on
        scopes = [trending_scope(), *([trending_scope(old_cat)] if old_cat else [])]
        return new, [ScopeScore(s, upsert.item_id, RETRACT, cur.pop_ts) for s in scopes]
    if old_cat is not None and old_cat != new_cat:
        out.append(ScopeScore(trending_scope(old_cat), upsert.item_id, RETRACT, cur.pop_ts))
    # The item's score only needs re-announcing when it gains a category scope. Scope scores
    # carry the time of the item's newest scoring event, so a list's version is the newest
    # interaction it reflects (catalogue upserts do not move it).
    if new_cat is not None and new_cat != old_cat:
        out += [s for s in _scores(upsert.item_id, new, new.pop_ts) if s.scope != "global"]
    return new, out


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


def trim(state: TopKState, cfg: TrendingConfig) -> TopKState:
    if len(state.items) <= cfg.top_k:
        return state
    kept = dict(ranked(state)[:cfg.top_k])
    return replace(state, items=kept)


def ranked(state: TopKState) -> list[tuple[str, float]]:
    return sorted(state.items.items(), key=lambda kv: (-kv[1], kv[0]))


def render_topk(state: TopKState, cfg: TrendingConfig) -> dict[str, Any]:
    """The value published at ``recs:v1:trending:{scope}``."""
    return {"items": [[i, s] for i, s in ranked(state)[:cfg.top_k]],
            "half_life_s": cfg.half_life_s}


def encode_item(state: ItemState) -> dict[str, Any]:
    return {"_c": 1, "meta": state.meta, "meta_ts": state.meta_ts, "counts": state.counts,
            "log_pop": None if state.log_pop == NEG_INF else state.log_pop,
            "seq": state.seq, "as_of": state.as_of, "pop_ts": state.pop_ts}


def decode_item(doc: dict[str, Any]) -> ItemState:
    if doc.get("_c") != 1:
        raise ValueError(f"operators.trending: unknown item codec {doc.get('_c')!r}")
    log_pop = NEG_INF if doc["log_pop"] is None else float(doc["log_pop"])
    return ItemState(doc["meta"], doc["meta_ts"], dict(doc["counts"]), log_pop, doc["seq"],
                     doc["as_of"], doc.get("pop_ts", 0))


def encode_topk(state: TopKState) -> dict[str, Any]:
    return {"_c": 1, "items": state.items, "seq": state.seq, "as_of": state.as_of}


def decode_topk(doc: dict[str, Any]) -> TopKState:
    if doc.get("_c") != 1:
        raise ValueError(f"operators.trending: unknown top-k codec {doc.get('_c')!r}")
    return TopKState(dict(doc["items"]), doc["seq"], doc["as_of"])
