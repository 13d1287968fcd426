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

>>> from schemas.events import Interaction
>>> cfg = SessionConfig()
>>> ev = lambda i, t, typ="view": Interaction(f"e{t}", typ, "u", "s", t, item_id=i)
>>> s, p = step(None, ev("a", 1_000), cfg)
>>> s, p = step(s, ev("b", 2_000), cfg)
>>> [(x.relation, x.src, x.dst, x.weight) for x in p]
[('similar', 'a', 'b', 1.0), ('similar', 'b', 'a', 0.5)]
>>> s.events
(('a', 'view', 1000), ('b', 'view', 2000))
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from operators.config import BASKET_TYPES, INTEREST_TYPES, SessionConfig
from schemas.events import Interaction

Event = tuple[str, str, int]  # (item_id, type, ts_ms)


@dataclass(frozen=True, slots=True)
class SessionState:
    session_id: str
    start: int                      # event time of the session's first event
    last_ts: int                    # newest event time seen for the user
    events: tuple[Event, ...]       # last-N interest events, oldest first, across sessions
    session_items: tuple[str, ...]  # distinct items of the current session, newest last
    basket: tuple[str, ...]
    purchased: tuple[str, ...]
    seq: int                        # number of applied events: the version of the Redis value


@dataclass(frozen=True, slots=True)
class Pair:
    relation: str  # "similar" or "bought"
    src: str
    dst: str
    weight: float
    ts: int


def _append_bounded(items: tuple[str, ...], item: str, limit: int) -> tuple[str, ...]:
    """Move ``item`` to the end (distinct), keep the newest ``limit``."""
    kept = (*(x for x in items if x != item), item)
    return kept[-limit:]


def step(state: SessionState | None, event: Interaction,
         cfg: SessionConfig) -> tuple[SessionState | None, list[Pair]]:
    if event.type not in INTEREST_TYPES or event.item_id is None:
        return state, []
    item, ts = event.item_id, event.ts
    if state is not None and ts - state.last_ts > cfg.ttl_ms:
        state = None  # expired in event time: start over
    new_session = (
        state is None
        or event.session_id != state.session_id
        or ts - state.last_ts > cfg.gap_ms
    )
    if state is None:
        state = SessionState(event.session_id, ts, ts, (), (), (), (), 0)
    elif new_session:
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
    )
    return new_state, pairs


def render(state: SessionState) -> dict[str, Any]:
    """The value published at ``recs:v1:session:{user}``."""
    return {
        "session_id": state.session_id,
        "start": state.start,
        "last_ts": state.last_ts,
        "events": [list(e) for e in state.events],
        "basket": list(state.basket),
        "purchased": list(state.purchased),
    }


def encode(state: SessionState) -> dict[str, Any]:
    return {"_c": 1, **render(state), "session_items": list(state.session_items),
            "seq": state.seq}


def decode(doc: dict[str, Any]) -> SessionState:
    if doc.get("_c") != 1:
        raise ValueError(f"operators.session: unknown state codec {doc.get('_c')!r}")
    return SessionState(
        session_id=doc["session_id"], start=doc["start"], last_ts=doc["last_ts"],
        events=tuple((e[0], e[1], e[2]) for e in doc["events"]),
        session_items=tuple(doc["session_items"]), basket=tuple(doc["basket"]),
        purchased=tuple(doc["purchased"]), seq=doc["seq"],
    )
