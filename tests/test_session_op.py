"""Session operator (``operators/session.py``): boundaries, bounds, pairs against naive counting.

Unit tests pin each documented boundary (``session_id`` change, inactivity gap, TTL in event time,
with the exact-boundary cases), the bounds (last-N, basket, purchased, shown) and what is not an
interest event: impressions only record what was shown, never start, extend or keep a session
alive. Property tests fold random logs user by user and compare the emitted pairs with
:func:`strategies.naive_pairs`, a from-scratch implementation of the docstring's rules, and the
state with a naive model of the same bounds (:func:`strategies.naive_users`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import session
from operators.candidates import recent_items, session_candidates
from operators.config import BASKET_TYPES, SessionConfig
from operators.session import Pair, SessionState, step, version
from schemas.events import Interaction
from serving.answers import session_seen
from tests.strategies import (
    DAY,
    ITEMS,
    MINUTE,
    T0,
    TTL_STEPS,
    Record,
    interactions,
    logs,
    naive_pairs,
    naive_users,
)

CFG = SessionConfig()
SMALL = SessionConfig(max_events=5, pair_window=2, backward_weight=0.25, gap_ms=10 * MINUTE,
                      ttl_ms=2 * DAY, max_basket=3, max_purchased=2, max_shown=3)


def ev(item: str | None, ts: int, etype: str = "view", sess: str = "s",
       value: float | None = None) -> Interaction:
    if etype == "impression":
        return Interaction(f"e{ts}", etype, "u", sess, ts, item_ids=(item or "x",))
    return Interaction(f"e{ts}", etype, "u", sess, ts, item_id=item, value=value)


def shown(items: str, ts: int, sess: str = "s") -> Interaction:
    """An impression of the one-letter items ``items``, in slot order."""
    return Interaction(f"imp{ts}", "impression", "u", sess, ts, item_ids=tuple(items))


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


def test_itemless_events_leave_state_untouched() -> None:
    s, _ = run([ev("a", T0)])
    s2, pairs = step(s, ev(None, T0 + 2, "view"), CFG)
    assert s2 is s and pairs == []
    assert step(None, ev(None, T0, "click"), CFG) == (None, [])


# -- impressions: what was shown ---------------------------------------------------------------

def test_impression_records_shown_and_touches_nothing_else() -> None:
    s, _ = run([ev("a", T0, "add_to_cart"), ev("b", T0 + 1_000, "purchase")])
    assert s is not None
    s2, pairs = step(s, shown("cza", T0 + 2_000, sess="other"), CFG)
    assert pairs == [] and s2 is not None
    assert s2.shown == (("c", 1, T0 + 2_000), ("z", 1, T0 + 2_000), ("a", 1, T0 + 2_000))
    # no new session, no change to anything an interest event drives; the version moves
    assert s2 == replace(s, shown=s2.shown, seq=s.seq + 1)
    assert (version(s), version(s2)) == (T0 + 1_000, T0 + 2_000)


def _fields(s: SessionState) -> dict[str, object]:
    return {name: getattr(s, name) for name in SessionState.__slots__}


def test_counts_order_and_duplicates() -> None:
    s, _ = run([shown("ab", T0), shown("bc", T0 + 1), shown("bb", T0 + 2)])
    assert s is not None
    # newest-shown last, an item listed twice in one impression counts once
    assert s.shown == (("a", 1, T0), ("c", 1, T0 + 1), ("b", 3, T0 + 2))
    assert session.render(s)["shown"] == [["a", 1, T0], ["c", 1, T0 + 1], ["b", 3, T0 + 2]]


def test_shown_bounded_keeps_newest() -> None:
    s, _ = run([shown("abc", T0), shown("a", T0 + 1), shown("e", T0 + 2)], SMALL)
    assert s is not None
    assert s.shown == (("c", 1, T0), ("a", 2, T0 + 1), ("e", 1, T0 + 2))  # b fell out
    # within one impression later slots count as newer: a page larger than the bound keeps
    # its last slots, and an item that fell out starts counting again
    s, _ = run([shown("abcd", T0), shown("a", T0 + 1)], SMALL)
    assert s is not None and s.shown == (("c", 1, T0), ("d", 1, T0), ("a", 1, T0 + 1))


def test_late_impression_takes_its_place_in_event_time() -> None:
    s, _ = run([shown("a", T0 + 10), shown("ba", T0 + 5)])
    assert s is not None
    assert s.shown == (("b", 1, T0 + 5), ("a", 2, T0 + 10)) and version(s) == T0 + 10


def test_impression_too_old_for_the_ttl_is_ignored() -> None:
    s, _ = run([shown("a", T0 + CFG.ttl_ms + 1)])
    s2, pairs = step(s, shown("b", T0), CFG)
    assert s2 is s and pairs == []
    s3, _ = step(s, shown("b", T0 + 1), CFG)  # exactly ttl_ms older: still kept
    assert s3 is not None and [e[0] for e in s3.shown] == ["b", "a"]


def test_impression_on_empty_state_creates_one_without_a_session() -> None:
    s, pairs = step(None, shown("ab", T0, sess="imp"), CFG)
    assert pairs == [] and s is not None
    assert (s.session_id, s.start, s.last_ts, s.events, s.session_items, s.basket, s.seq) == (
        "imp", 0, 0, (), (), (), 1)
    assert version(s) == T0
    rendered = session.render(s)
    # readers see no session: no recent items, nothing "seen", no candidates
    assert recent_items(rendered) == [] and session_seen(rendered) == frozenset()
    assert session_candidates(rendered, {"a": [["x", 1.0]]}) == []


@pytest.mark.parametrize("sess", ["imp", "s2"])
def test_first_interest_after_only_impressions_starts_its_own_session(sess: str) -> None:
    pre, _ = run([shown("ab", T0, sess="imp"), shown("c", T0 + 1_000, sess="imp")])
    later = [ev("x", T0 + 5_000, "add_to_cart", sess=sess), ev("y", T0 + 6_000, sess=sess)]
    s, pairs = pre, []
    for e in later:
        s, out = step(s, e, CFG)
        pairs += out
    fresh, fresh_pairs = run(later)
    assert s is not None and fresh is not None
    assert pairs == fresh_pairs
    assert _fields(s) == {**_fields(fresh), "shown": pre.shown if pre else (), "seq": 4}
    assert s.start == T0 + 5_000 and s.session_id == sess


def test_impressions_neither_extend_the_gap_nor_cut_the_session() -> None:
    # an impression with another session id in between: still one session
    _, pairs = run([ev("a", T0), shown("z", T0 + 1, sess="s2"), ev("b", T0 + 2)])
    assert similar(pairs) == [("a", "b", 1.0), ("b", "a", 0.5)]
    # impressions inside the gap do not keep the session going
    s, pairs = run([ev("a", T0), shown("z", T0 + CFG.gap_ms), ev("b", T0 + CFG.gap_ms + 1)])
    assert pairs == [] and s is not None and s.start == T0 + CFG.gap_ms + 1


def test_impressions_do_not_keep_a_session_alive_past_the_ttl() -> None:
    s, _ = run([ev("a", T0, "purchase"), shown("z", T0 + 1)])
    s2, _ = step(s, shown("y", T0 + CFG.ttl_ms + 1), CFG)
    assert s2 is not None
    # the interest part expired (in event time, relative to the last interest event)
    assert (s2.events, s2.purchased, s2.session_items, s2.start, s2.last_ts) == ((), (), (), 0, 0)
    assert s2.session_id == "s" and [e[0] for e in s2.shown] == ["z", "y"] and s2.seq == 3
    s3, pairs = step(s2, ev("b", T0 + CFG.ttl_ms + 2), CFG)
    assert pairs == [] and s3 is not None and s3.events == (("b", "view", T0 + CFG.ttl_ms + 2),)


def test_interest_event_drops_stale_shown_and_starts_over_when_nothing_is_alive() -> None:
    s, _ = run([shown("z", T0), ev("a", T0 + DAY), shown("y", T0 + 2 * DAY)])
    s2, _ = step(s, ev("b", T0 + CFG.ttl_ms + 1), CFG)
    assert s2 is not None and [e[0] for e in s2.shown] == ["y"]  # z is older than the TTL
    assert [e[0] for e in s2.events] == ["a", "b"] and s2.seq == 4
    s3, _ = step(s2, ev("c", T0 + 2 * DAY + 2 * CFG.ttl_ms), CFG)
    assert s3 is not None
    assert (s3.events, s3.shown, s3.seq) == ((("c", "view", T0 + 2 * DAY + 2 * CFG.ttl_ms),), (), 1)


def test_session_codec_round_trips_shown_and_reads_old_checkpoints() -> None:
    s, _ = run([ev("a", T0), shown("ab", T0 + 1)])
    assert s is not None
    assert session.decode(session.encode(s)) == s
    old = session.encode(s)
    del old["shown"]  # checkpointed before impressions were recorded
    assert session.decode(old) == replace(s, shown=())


def test_max_shown_is_validated() -> None:
    with pytest.raises(ValueError, match=r"SessionConfig\.max_shown: must be > 0, got 0"):
        SessionConfig(max_shown=0)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(interactions(span=40 * DAY, items=ITEMS[:5]), max_size=30))
def test_version_never_decreases_and_shown_stays_bounded(events: list[Interaction]) -> None:
    """Out-of-order events included: the published version only grows, shown stays sorted by
    time, bounded, within the TTL of the version, and never counts as an interaction."""
    state: SessionState | None = None
    for e in events:
        before = state
        state, _ = step(state, e, SMALL)
        assert state is not None or before is None
        if state is None:
            continue
        assert before is None or version(state) >= version(before)
        times = [t for _, _, t in state.shown]
        assert times == sorted(times) and len(times) <= SMALL.max_shown
        assert all(version(state) - t <= SMALL.ttl_ms for t in times)
        assert len({i for i, _, _ in state.shown}) == len(state.shown)
        assert all(c >= 1 for _, c, _ in state.shown)
        assert session_seen(session.render(state)) == (
            {i for i, _, _ in state.events} | set(state.purchased))


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
    naive = naive_users(log, cfg)
    for user, state in states.items():
        want = naive.get(user)
        if want is None:
            assert state is None
            continue
        assert state is not None
        assert state.shown == tuple(want.shown)
        assert (state.seq, version(state)) == (want.seq, want.newest)
        alive = want.interest
        if not alive:
            assert (state.session_id, state.start, state.last_ts) == (want.session_id, 0, 0)
            assert (state.events, state.session_items, state.basket, state.purchased) == (
                (), (), (), ())
            continue
        sess_start = max((k for k in range(1, len(alive))
                          if alive[k].session_id != alive[k - 1].session_id
                          or alive[k].ts - alive[k - 1].ts > cfg.gap_ms), default=0)
        current = alive[sess_start:]

        def newest_distinct(items: list[str], n: int) -> tuple[str, ...]:
            out: list[str] = []
            for x in reversed(items):
                if x not in out:
                    out.append(x)
            return tuple(reversed(out[:n]))

        assert state.events == tuple((e.item_id, e.type, e.ts) for e in alive[-cfg.max_events:])
        assert state.last_ts == alive[-1].ts
        assert (state.session_id, state.start) == (current[0].session_id, current[0].ts)
        assert state.basket == newest_distinct(
            [e.item_id for e in current if e.type in BASKET_TYPES and e.item_id], cfg.max_basket)
        assert state.purchased == newest_distinct(
            [e.item_id for e in alive if e.type == "purchase" and e.item_id], cfg.max_purchased)
        assert state.session_items == newest_distinct(
            [e.item_id for e in current if e.item_id], cfg.pair_window)


def test_zero_bounds_keep_nothing_or_are_rejected() -> None:
    try:
        cfg = SessionConfig(pair_window=0, max_events=0, max_basket=0, max_purchased=0)
    except ValueError:
        return  # rejecting the setting at construction is a fine fix too
    s, pairs = run([ev(x, T0 + k, "purchase") for k, x in enumerate("abc")], cfg)
    assert s is not None
    assert (s.events, s.basket, s.purchased) == ((), (), ())
    assert similar(pairs) == []
