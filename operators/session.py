"""Per-user session state, keyed by user, on event time.

``step(state, event, cfg) -> (state, pairs)``: keeps the last-N events, the current session (a new
one starts when ``session_id`` changes or after ``gap_ms`` of event-time inactivity), the basket
(items carted or bought in the session) and the items the user bought. State older than
``ttl_ms`` in event time is forgotten lazily on the next event. It emits the item pairs the
relation operators learn from:

- ``similar``: when the user interacts with ``b`` after ``a`` in the same session (``a`` among the
  last ``pair_window`` distinct items, ``d`` steps back), ``a -> b`` gets ``1/d`` and ``b -> a``
  gets ``backward_weight/d`` (sequential co-visitation, as in sequential rules);
- ``bought``: an item carted or bought pairs with everything already in the basket, both ways.

Impressions (the items a storefront showed, ``item_ids`` in slot order) are not interest: they
only update ``shown``, ``(item_id, count, last_ts)`` per item, how many impressions showed it to
the user and when last, newest-shown last (ties in slot order), at most ``max_shown`` entries. An
item listed twice in one impression counts once. An impression never starts or extends a session
and never emits pairs: it leaves ``session_id``, ``start``, ``last_ts`` (the newest *interest*
event, which drives the gap and the TTL), the events, the basket and the purchases alone. So a
user who is only shown things does not keep a session alive: an impression more than ``ttl_ms``
after the last interest event forgets the interest part like any other event would.

TTL of ``shown``: entries whose ``last_ts`` is more than ``ttl_ms`` before the newest event time
of the state (:func:`version`) are dropped on the next event; an impression that late is ignored.
When an event finds nothing alive (no interest event and no shown entry within ``ttl_ms``), the
state starts over as if it had been empty.

Impressions only: a user with no interest event yet has a state with empty events, ``start =
last_ts = 0`` and the ``session_id`` of the impression that created it (a user whose interest
part expired keeps that of the expired session). That session id does not count: the next
interest event always starts a session of its own (its ``session_id``, ``start = ts``, nothing
to pair with), exactly as if the state had been empty.

``seq`` counts the state changes since the state was created; an ignored event changes nothing
and returns the same state object. The published value's version is :func:`version`, the newest
event time the state reflects (interest or impression), which never decreases.

>>> from schemas.events import Interaction
>>> cfg = SessionConfig()
>>> ev = lambda i, t, typ="view": Interaction(f"e{t}", typ, "u", "s", t, item_id=i)
>>> s, p = step(None, ev("a", 1_000), cfg)
>>> s, p = step(s, ev("b", 2_000), cfg)
>>> [(x.relation, x.src, x.dst, x.weight) for x in p]
[('similar', 'a', 'b', 1.0), ('similar', 'b', 'a', 0.5)]
>>> s.events
(('a', 'view', 1000), ('b', 'view', 2000))
>>> shown = Interaction("e9", "impression", "u", "s", 3_000, item_ids=("c", "a"))
>>> s, p = step(s, shown, cfg)
>>> s.shown, s.last_ts, p, version(s)
((('c', 1, 3000), ('a', 1, 3000)), 2000, [], 3000)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from operators.config import BASKET_TYPES, IMPRESSION, INTEREST_TYPES, SessionConfig
from schemas.events import Interaction

Event = tuple[str, str, int]  # (item_id, type, ts_ms)
Shown = tuple[str, int, int]  # (item_id, times shown, ts_ms of the newest impression showing it)


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    start: int                      # event time of the session's first event (0: no session)
    last_ts: int                    # newest interest event time seen for the user (0: none)
    events: tuple[Event, ...]       # last-N interest events, oldest first, across sessions
    session_items: tuple[str, ...]  # distinct items of the current session, newest last
    basket: tuple[str, ...]
    purchased: tuple[str, ...]
    seq: int                        # state changes applied since the state was created
    shown: tuple[Shown, ...] = ()   # impressions per item, newest-shown last


@dataclass(frozen=True, slots=True)
class Pair:
    relation: str  # "similar" or "bought"
    src: str
    dst: str
    weight: float
    ts: int


def version(state: SessionState) -> int:
    """The newest event time the state reflects: its newest interest or impression."""
    return max(state.last_ts, state.shown[-1][2]) if state.shown else state.last_ts


def _has_interest(state: SessionState) -> bool:
    # every interest event leaves its item in session_items (pair_window >= 1)
    return bool(state.session_items)


def _live(shown: tuple[Shown, ...], newest: int, ttl_ms: int) -> tuple[Shown, ...]:
    """Entries shown within ``ttl_ms`` of ``newest`` (all of them, as the same tuple, if any)."""
    if not shown or newest - shown[0][2] <= ttl_ms:  # sorted by ts: the oldest decides
        return shown
    return tuple(e for e in shown if newest - e[2] <= ttl_ms)


def _alive(state: SessionState | None, ts: int, cfg: SessionConfig) -> SessionState | None:
    """What is left of ``state`` for an event at ``ts``: the interest part is forgotten when
    the event comes more than ``ttl_ms`` after the last interest event, stale ``shown`` entries
    with it; ``None`` when nothing is left (the state starts over)."""
    if state is None or (_has_interest(state) and ts - state.last_ts <= cfg.ttl_ms):
        return state
    shown = _live(state.shown, max(version(state), ts), cfg.ttl_ms)
    if not shown:
        return None
    if not _has_interest(state) and shown is state.shown:
        return state
    return replace(state, start=0, last_ts=0, events=(), session_items=(), basket=(),
                   purchased=(), shown=shown)


def _append_bounded(items: tuple[str, ...], item: str, limit: int) -> tuple[str, ...]:
    """Move ``item`` to the end (distinct), keep the newest ``limit``."""
    kept = (*(x for x in items if x != item), item)
    return kept[-limit:]


def _record_shown(shown: tuple[Shown, ...], item_ids: tuple[str, ...], ts: int, newest: int,
                  cfg: SessionConfig) -> tuple[Shown, ...]:
    distinct = dict.fromkeys(item_ids)  # slot order, an item listed twice counts once
    before = {e[0]: e for e in shown if e[0] in distinct}
    updated = [(i, before[i][1] + 1, max(before[i][2], ts)) if i in before else (i, 1, ts)
               for i in distinct]
    merged = sorted((*(e for e in shown if e[0] not in distinct), *updated),
                    key=lambda e: e[2])  # stable: among equal times, older entries first
    return _live(tuple(merged), newest, cfg.ttl_ms)[-cfg.max_shown:]


def _impression_step(state: SessionState | None, event: Interaction,
                     cfg: SessionConfig) -> SessionState | None:
    ts = event.ts
    newest = ts if state is None else max(version(state), ts)
    if newest - ts > cfg.ttl_ms or not event.item_ids:
        return state  # too late to be remembered, or shows nothing
    cur = _alive(state, ts, cfg)  # an impression does not keep a session alive
    if cur is None:
        shown = _record_shown((), event.item_ids, ts, newest, cfg)
        return SessionState(event.session_id, 0, 0, (), (), (), (), 1, shown)
    shown = _record_shown(cur.shown, event.item_ids, ts, newest, cfg)
    if cur is state and shown == cur.shown:
        return state  # a late impression whose items fell straight out of the bound
    return replace(cur, shown=shown, seq=cur.seq + 1)


def step(state: SessionState | None, event: Interaction,
         cfg: SessionConfig) -> tuple[SessionState | None, list[Pair]]:
    if event.type == IMPRESSION:
        return _impression_step(state, event, cfg), []
    if event.type not in INTEREST_TYPES or event.item_id is None:
        return state, []
    item, ts = event.item_id, event.ts
    state = _alive(state, ts, cfg)  # expired in event time: start over (but for recent shown)
    if state is None:
        state = SessionState(event.session_id, ts, ts, (), (), (), (), 0)
    elif (not _has_interest(state) or event.session_id != state.session_id
          or ts - state.last_ts > cfg.gap_ms):
        state = replace(state, session_id=event.session_id, start=ts, session_items=(),
                        basket=())

    pairs: list[Pair] = []
    history = state.session_items
    if not history or history[-1] != item:
        window = history[-cfg.pair_window:]
        for dist, prev in enumerate(reversed(window), start=1):
            if prev == item:
                continue
            pairs.append(Pair("similar", prev, item, 1.0 / dist, ts))
            if cfg.backward_weight > 0:
                pairs.append(Pair("similar", item, prev, cfg.backward_weight / dist, ts))
    basket = state.basket
    purchased = state.purchased
    if event.type in BASKET_TYPES:
        weight = cfg.purchase_pair_weight if event.type == "purchase" else cfg.cart_pair_weight
        for other in basket if weight > 0 else ():
            if other != item:
                pairs.append(Pair("bought", other, item, weight, ts))
                pairs.append(Pair("bought", item, other, weight, ts))
        basket = _append_bounded(basket, item, cfg.max_basket)
        if event.type == "purchase":
            purchased = _append_bounded(purchased, item, cfg.max_purchased)

    events = (*state.events, (item, event.type, ts))[-cfg.max_events:]
    new_state = SessionState(
        session_id=state.session_id,
        start=state.start,
        last_ts=max(state.last_ts, ts),
        events=events,
        session_items=_append_bounded(history, item, cfg.pair_window),
        basket=basket,
        purchased=purchased,
        seq=state.seq + 1,
        shown=_live(state.shown, max(version(state), ts), cfg.ttl_ms),
    )
    return new_state, pairs


def render(state: SessionState) -> dict[str, Any]:
    """The value published at ``recs:v1:session:{user}``.

    ``shown`` lists ``[item_id, count, last_ts]``, newest-shown last. Items merely shown are not
    interactions: readers that look for what the user touched use ``events`` and ``purchased``.
    """
    return {
        "session_id": state.session_id,
        "start": state.start,
        "last_ts": state.last_ts,
        "events": [list(e) for e in state.events],
        "basket": list(state.basket),
        "purchased": list(state.purchased),
        "shown": [list(e) for e in state.shown],
    }


def encode(state: SessionState) -> dict[str, Any]:
    return {"_c": 1, **render(state), "session_items": list(state.session_items),
            "seq": state.seq}


def decode(doc: dict[str, Any]) -> SessionState:
    """Inverse of :func:`encode`; states checkpointed before ``shown`` existed have none."""
    if doc.get("_c") != 1:
        raise ValueError(f"operators.session: unknown state codec {doc.get('_c')!r}")
    return SessionState(
        session_id=doc["session_id"], start=doc["start"], last_ts=doc["last_ts"],
        events=tuple((e[0], e[1], e[2]) for e in doc["events"]),
        session_items=tuple(doc["session_items"]), basket=tuple(doc["basket"]),
        purchased=tuple(doc["purchased"]), seq=doc["seq"],
        shown=tuple((e[0], e[1], e[2]) for e in doc.get("shown", ())),
    )
