"""Session operator (``operators/session.py``): boundaries, bounds, pairs against naive counting.

Unit tests pin each documented boundary (``session_id`` change, inactivity gap, TTL in event time,
with the exact-boundary cases), the bounds (last-N, basket, purchased) and what is not an interest
event. Property tests fold random logs user by user and compare the emitted pairs with
:func:`strategies.naive_pairs`, a from-scratch implementation of the docstring's rules, and the
state with a naive model of the same bounds.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings

from operators.config import BASKET_TYPES, INTEREST_TYPES, SessionConfig
from operators.session import Pair, SessionState, step
from schemas.events import Interaction
from tests.strategies import DAY, MINUTE, T0, TTL_STEPS, Record, logs, naive_pairs

CFG = SessionConfig()
SMALL = SessionConfig(max_events=5, pair_window=2, backward_weight=0.25, gap_ms=10 * MINUTE,
                      ttl_ms=2 * DAY, max_basket=3, max_purchased=2)


def ev(item: str | None, ts: int, etype: str = "view", sess: str = "s",
       value: float | None = None) -> Interaction:
    if etype == "impression":
        return Interaction(f"e{ts}", etype, "u", sess, ts, item_ids=(item or "x",))
    return Interaction(f"e{ts}", etype, "u", sess, ts, item_id=item, value=value)


def run(events: list[Interaction], cfg: SessionConfig = CFG
        ) -> tuple[SessionState | None, list[Pair]]:
    state: SessionState | None = None
    pairs: list[Pair] = []
    for e in events:
        state, out = step(state, e, cfg)
        pairs.extend(out)
    return state, pairs


def similar(pairs: list[Pair]) -> list[tuple[str, str, float]]:
    return [(p.src, p.dst, p.weight) for p in pairs if p.relation == "similar"]


# -- session boundaries -----------------------------------------------------------------------

def test_session_id_change_starts_a_new_session() -> None:
    s, _ = run([ev("a", T0, "add_to_cart"), ev("b", T0 + 1_000, "purchase")])
    assert s is not None
    s2, pairs = step(s, ev("c", T0 + 2_000, "add_to_cart", sess="s2"), CFG)
    assert pairs == []  # nothing pairs across sessions
    assert s2 is not None
    assert (s2.session_id, s2.start, s2.session_items, s2.basket) == ("s2", T0 + 2_000, ("c",),
                                                                      ("c",))
    assert s2.purchased == ("b",)  # purchases outlive the session
    assert [e[0] for e in s2.events] == ["a", "b", "c"]  # last-N spans sessions


@pytest.mark.parametrize(("gap", "new_session"), [(CFG.gap_ms, False), (CFG.gap_ms + 1, True)])
def test_inactivity_gap_starts_a_new_session(gap: int, new_session: bool) -> None:
    s, _ = run([ev("a", T0, "add_to_cart")])
    s2, pairs = step(s, ev("b", T0 + gap, "add_to_cart"), CFG)
    assert s2 is not None
    assert (pairs == []) is new_session
    assert s2.start == (T0 + gap if new_session else T0)
    assert s2.basket == (("b",) if new_session else ("a", "b"))


@pytest.mark.parametrize(("gap", "expired"), [(CFG.ttl_ms, False), (CFG.ttl_ms + 1, True)])
def test_ttl_expiry_forgets_everything_in_event_time(gap: int, expired: bool) -> None:
    s, _ = run([ev("a", T0, "purchase"), ev("b", T0 + 1_000)])
    assert s is not None
    s2, _ = step(s, ev("c", T0 + 1_000 + gap), CFG)
    assert s2 is not None
    if expired:
        assert s2.events == (("c", "view", T0 + 1_000 + gap),)
        assert (s2.purchased, s2.seq) == ((), 1)
    else:
        assert [e[0] for e in s2.events] == ["a", "b", "c"]
        assert (s2.purchased, s2.seq) == (("a",), 3)


def test_late_event_never_opens_a_session_or_expires() -> None:
    s, _ = run([ev("a", T0 + 40 * DAY), ev("b", T0)])  # second one 40 days late
    assert s is not None
    assert s.last_ts == T0 + 40 * DAY and s.start == T0 + 40 * DAY
    assert s.session_items == ("a", "b")


# -- bounds -----------------------------------------------------------------------------------

def test_last_n_events_bounded() -> None:
    events = [ev(f"i{k}", T0 + k * 1_000) for k in range(CFG.max_events + 7)]
    s, _ = run(events)
    assert s is not None
    assert len(s.events) == CFG.max_events
    assert s.events == tuple((e.item_id, e.type, e.ts) for e in events[-CFG.max_events:])
    assert s.seq == len(events)


def test_basket_and_purchased_bounded_distinct_newest_last() -> None:
    items = ["a", "b", "c", "d", "b", "e"]
    s, _ = run([ev(i, T0 + k * 1_000, "purchase") for k, i in enumerate(items)], SMALL)
    assert s is not None
    assert s.basket == ("d", "b", "e")
    assert s.purchased == ("b", "e")


def test_impressions_and_itemless_events_leave_state_untouched() -> None:
    s, _ = run([ev("a", T0)])
    for other in (ev("z", T0 + 1, "impression"), ev(None, T0 + 2, "view")):
        s2, pairs = step(s, other, CFG)
        assert s2 is s and pairs == []
    assert step(None, ev("z", T0, "impression"), CFG) == (None, [])


def test_rating_is_an_interest_event() -> None:
    s, pairs = run([ev("a", T0), ev("b", T0 + 1, "rating", value=1.0)])
    assert s is not None and s.events[-1] == ("b", "rating", T0 + 1)
    assert similar(pairs) == [("a", "b", 1.0), ("b", "a", 0.5)]


# -- pairs ------------------------------------------------------------------------------------

def test_similar_pairs_weighted_by_distance_within_window() -> None:
    _, pairs = run([ev("a", T0), ev("b", T0 + 1), ev("c", T0 + 2)], SMALL)
    assert similar(pairs)[-4:] == [("b", "c", 1.0), ("c", "b", 0.25),
                                   ("a", "c", 0.5), ("c", "a", 0.125)]
    _, pairs = run([ev(x, T0 + k) for k, x in enumerate("abcd")], SMALL)
    assert ("a", "d") not in {(s, d) for s, d, _ in similar(pairs)}  # outside pair_window=2


def test_repeating_the_last_item_emits_nothing() -> None:
    s, _ = run([ev("a", T0), ev("b", T0 + 1)])
    _, pairs = step(s, ev("b", T0 + 2, "click"), CFG)
    assert pairs == []


def test_revisit_counts_distance_over_distinct_items() -> None:
    # session a, b, c then a again: c is 1 back, b is 2 back (a itself sits 3 back, skipped)
    _, pairs = run([ev(x, T0 + k) for k, x in enumerate("abca")])
    assert similar(pairs)[-4:] == [("c", "a", 1.0), ("a", "c", 0.5),
                                   ("b", "a", 0.5), ("a", "b", 0.25)]


def test_bought_pairs_with_basket_both_ways() -> None:
    _, pairs = run([ev("a", T0, "add_to_cart"), ev("b", T0 + 1, "view"),
                    ev("c", T0 + 2, "purchase"), ev("d", T0 + 3, "add_to_cart")])
    bought = [(p.src, p.dst, p.weight) for p in pairs if p.relation == "bought"]
    assert bought == [("a", "c", 1.0), ("c", "a", 1.0),
                      ("a", "d", 0.5), ("d", "a", 0.5), ("c", "d", 0.5), ("d", "c", 0.5)]


# -- properties against the naive model -------------------------------------------------------

def fold_per_user(log: list[Record], cfg: SessionConfig
                  ) -> tuple[dict[str, SessionState | None], list[Pair]]:
    states: dict[str, SessionState | None] = {}
    pairs: list[Pair] = []
    for rec in log:
        if isinstance(rec, Interaction):
            states[rec.user_id], out = step(states.get(rec.user_id), rec, cfg)
            pairs.extend(out)
    return states, pairs


def key(p: Pair) -> tuple[str, str, str, float, int]:
    return (p.relation, p.src, p.dst, p.weight, p.ts)


@pytest.mark.parametrize("cfg", [CFG, SessionConfig(pair_window=2, backward_weight=0.25,
                                                    gap_ms=10 * MINUTE, cart_pair_weight=0.3)],
                         ids=["default", "window2"])
@settings(max_examples=60, deadline=None)
@given(log=logs(max_size=60, steps=TTL_STEPS, upsert_rate=0.0))
def test_pairs_equal_naive_counting(cfg: SessionConfig, log: list[Record]) -> None:
    _, pairs = fold_per_user(log, cfg)
    assert Counter(map(key, pairs)) == Counter(map(key, naive_pairs(log, cfg)))


@settings(max_examples=60, deadline=None)
@given(log=logs(max_size=60, steps=TTL_STEPS, upsert_rate=0.0))
def test_state_matches_naive_bounded_model(log: list[Record]) -> None:
    cfg = SMALL
    states, _ = fold_per_user(log, cfg)
    for user, state in states.items():
        mine = [e for e in log if isinstance(e, Interaction) and e.user_id == user
                and e.type in INTEREST_TYPES and e.item_id is not None]
        if not mine:
            assert state is None
            continue
        assert state is not None
        # the user's history since the last TTL expiry (event time only moves forward here)
        cut = max((k for k in range(1, len(mine)) if mine[k].ts - mine[k - 1].ts > cfg.ttl_ms),
                  default=0)
        alive = mine[cut:]
        sess_start = max((k for k in range(1, len(alive))
                          if alive[k].session_id != alive[k - 1].session_id
                          or alive[k].ts - alive[k - 1].ts > cfg.gap_ms), default=0)
        session = alive[sess_start:]

        def newest_distinct(items: list[str], n: int) -> tuple[str, ...]:
            out: list[str] = []
            for x in reversed(items):
                if x not in out:
                    out.append(x)
            return tuple(reversed(out[:n]))

        assert state.events == tuple((e.item_id, e.type, e.ts) for e in alive[-cfg.max_events:])
        assert state.seq == len(alive)
        assert state.last_ts == alive[-1].ts
        assert (state.session_id, state.start) == (session[0].session_id, session[0].ts)
        assert state.basket == newest_distinct(
            [e.item_id for e in session if e.type in BASKET_TYPES and e.item_id], cfg.max_basket)
        assert state.purchased == newest_distinct(
            [e.item_id for e in alive if e.type == "purchase" and e.item_id], cfg.max_purchased)
        assert state.session_items == newest_distinct(
            [e.item_id for e in session if e.item_id], cfg.pair_window)


def test_zero_bounds_keep_nothing_or_are_rejected() -> None:
    try:
        cfg = SessionConfig(pair_window=0, max_events=0, max_basket=0, max_purchased=0)
    except ValueError:
        return  # rejecting the setting at construction is a fine fix too
    s, pairs = run([ev(x, T0 + k, "purchase") for k, x in enumerate("abc")], cfg)
    assert s is not None
    assert (s.events, s.basket, s.purchased) == ((), (), ())
    assert similar(pairs) == []
