"""The online ranker's features and delayed-feedback join (operators/ranker.py,
operators/ranker_features.py).

The join is checked three ways: hand-written cases for every rule of its docstring, a brute-force
reference written from the docstring for in-order logs (Hypothesis), and the conformance
properties every operator keeps (deterministic, pure, starts from ``None``, codec round-trips
and a restore is invisible).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import ranker_models as rm
from operators.ranker import (
    DUPLICATE,
    DUPLICATE_IMPRESSION,
    LATE_IMPRESSION,
    NO_REC_ID,
    NOT_SHOWN,
    UNMATCHED,
    Labels,
    LabelState,
    Ranker,
    RankerConfig,
    close,
    decode_state,
    encode_state,
    label_step,
    shown_sources,
)
from operators.ranker_features import bucket, features
from schemas.events import Interaction
from tests.rankerkit import CFG, MIN, T0, WINDOW, eng, examples, ignored, imp, run
from tests.strategies import is_json_plain

# ---- features -----------------------------------------------------------------------------------

def test_features_are_the_documented_ones() -> None:
    x = features("u1", "i9", {"device": "Mobile", "country": "DE", "page": "home",
                              "placement": "homepage", "other": "ignored"}, "session",
                 {"category": "hot", "price": 0.0, "first_seen_ms": T0 - 3 * 86_400_000},
                 ts=T0, buckets=1 << 10)
    named = {k for k in x if "#" not in k}
    assert named == {"device=mobile", "country=de", "page=home", "placement=homepage",
                     "hour=22", "source=session", "category=hot",
                     "source|placement=session|homepage", "category|device=hot|mobile",
                     "category|daypart=hot|evening", "price", "age"}
    hashed = sorted(k.split("#")[0] for k in x if "#" in k)
    assert hashed == ["item", "item|placement", "user", "user|category"]
    assert all(int(k.split("#")[1]) < 1 << 10 for k in x if "#" in k)
    assert x["price"] == 0.0 and 0.0 < x["age"] < 1.0
    assert all(v == 1.0 for k, v in x.items() if k not in ("price", "age"))


def test_features_without_context_or_metadata_read_unknown() -> None:
    x = features("u", "i", {"device": "   ", "country": 3}, "", None, ts=T0)
    assert {"device=unknown", "country=unknown", "category=unknown", "source=unknown",
            "category|device=unknown|unknown"} <= set(x)
    assert "price" not in x and "age" not in x
    # an event older than the item's first sighting has no age; prices are capped
    y = features("u", "i", {}, "s", {"first_seen_ms": T0 + 1, "price": 1e300}, ts=T0)
    assert "age" not in y and y["price"] == 1.5


def test_hash_buckets_are_pinned() -> None:
    # snapshots store hashed feature names: changing the hash silently orphans every weight
    assert bucket("user", "u1", 1 << 20) == bucket("user", "u1", 1 << 20)
    assert [bucket("user", "u1", 1 << 20), bucket("item", "i1", 1 << 20)] == [968769, 967528]


def test_features_reject_bad_buckets_naming_the_value() -> None:
    with pytest.raises(ValueError, match=r"features: buckets must be >= 1, got 0"):
        features("u", "i", {}, "s", ts=T0, buckets=0)


# ---- the join: the rules one by one -------------------------------------------------------------

def test_click_inside_window_is_a_positive_and_the_rest_negatives_in_slot_order() -> None:
    _, out = run([imp("r1", T0, ["a", "b", "c"], sources="session,trending,explore",
                      placement="homepage", device="mobile"),
                  eng("click", "r1", "b", T0 + 5 * MIN)])
    assert examples(out) == [("r1", "a", False, 1.0, 1), ("r1", "b", True, 1.0, 2),
                             ("r1", "c", False, 1.0, 3)]
    exs = out[-1].examples
    assert [e.source for e in exs] == ["session", "trending", "explore"]
    assert all(e.ts == T0 and e.label_ts == T0 + WINDOW for e in exs)
    assert dict(exs[0].context) == {"placement": "homepage", "device": "mobile"}
    assert ignored(out) == []


def test_window_closes_on_the_next_later_event_and_is_inclusive() -> None:
    state, out = run([imp("r1", T0, ["a", "b"]), eng("click", "r1", "a", T0 + WINDOW)],
                     flush=False)
    assert examples(out) == [] and state is not None  # still open at exactly the end
    state, labels = label_step(state, eng("view", None, "z", T0 + WINDOW + 1), CFG)
    assert [(e.item, e.label) for e in labels.examples] == [("a", True), ("b", False)]
    assert state is None


def test_click_outside_window_leaves_a_negative_and_is_counted_unmatched() -> None:
    _, out = run([imp("r1", T0, ["a", "b"]), eng("click", "r1", "a", T0 + WINDOW + 1)])
    assert examples(out) == [("r1", "a", False, 1.0, 1), ("r1", "b", False, 1.0, 2)]
    assert ignored(out) == [UNMATCHED]


def test_duplicate_click_counts_once() -> None:
    _, out = run([imp("r1", T0, ["a", "b"]), eng("click", "r1", "a", T0 + MIN),
                  eng("click", "r1", "a", T0 + 2 * MIN)])
    assert examples(out) == [("r1", "a", True, 1.0, 1), ("r1", "b", False, 1.0, 2)]
    assert ignored(out) == [DUPLICATE]


def test_strongest_engagement_sets_the_weight() -> None:
    _, out = run([imp("r1", T0, ["a", "b"]), eng("click", "r1", "a", T0 + MIN),
                  eng("purchase", "r1", "a", T0 + 2 * MIN), eng("add_to_cart", "r1", "a",
                                                                T0 + 3 * MIN),
                  eng("add_to_cart", "r1", "b", T0 + 4 * MIN)])
    assert examples(out) == [("r1", "a", True, 4.0, 1), ("r1", "b", True, 2.0, 2)]
    assert [e.kind for lab in out for e in lab.examples] == ["purchase", "add_to_cart"]
    assert ignored(out) == [DUPLICATE]  # the cart after the purchase


def test_engagements_that_cannot_join_are_ignored_and_counted() -> None:
    _, out = run([eng("click", "r9", "a", T0),               # no impression: unmatched
                  imp("r1", T0, ["a"]),
                  eng("click", None, "a", T0 + MIN),          # organic click
                  eng("click", "r1", "zz", T0 + MIN),         # not shown by r1
                  eng("click", "r2", "a", T0 + MIN)])         # another rec_id
    assert ignored(out) == [UNMATCHED, NO_REC_ID, NOT_SHOWN, UNMATCHED]
    assert examples(out) == [("r1", "a", False, 1.0, 1)]


def test_duplicate_late_and_anonymous_impressions_are_ignored() -> None:
    no_rec = Interaction("e", "impression", "u", "s", T0, item_ids=("a",))
    _, out = run([imp("r1", T0, ["a"]), imp("r1", T0 + 1, ["b"]), no_rec,
                  imp("r3", T0 + 2 * WINDOW, ["d"]), imp("r2", T0 + WINDOW - 1, ["c"])])
    assert ignored(out) == [DUPLICATE_IMPRESSION, NO_REC_ID, LATE_IMPRESSION]
    assert examples(out) == [("r1", "a", False, 1.0, 1), ("r3", "d", False, 1.0, 1)]


def test_sources_fall_back_to_explore_item_then_unknown() -> None:
    assert shown_sources(imp("r", T0, ["a", "b"], sources="session, trending")) == (
        ("a", "b"), ("session", "trending"))
    # missing, or a count that does not match the items: the exploration slot is still known
    for ctx in ({}, {"sources": "session"}, {"sources": 3}):
        assert shown_sources(imp("r", T0, ["a", "b"], explore_item="b", **ctx))[1] == (
            "unknown", "explore")
    assert shown_sources(imp("r", T0, ["a", "b"], sources="session,")) == (
        ("a", "b"), ("session", "unknown"))


def test_negatives_lower_in_the_list_can_be_discounted() -> None:
    cfg = RankerConfig(slot_discount=1.0, negative_weight=2.0)
    _, out = run([imp("r1", T0, ["a", "b", "c", "d"]), eng("click", "r1", "c", T0 + MIN)], cfg)
    assert [w for _, _, _, w, _ in examples(out)] == [2.0, 1.0, 1.0, 0.5]


def test_too_many_open_impressions_close_the_oldest_early() -> None:
    cfg = RankerConfig(max_pending=2)
    state, out = run([imp("r1", T0, ["a"]), imp("r2", T0 + 1, ["b"]), imp("r3", T0 + 2, ["c"]),
                      eng("click", "r1", "a", T0 + 3)], cfg, flush=False)
    assert examples(out) == [("r1", "a", False, 1.0, 1)]
    assert out[2].examples[0].label_ts == T0 + 2
    assert ignored(out) == [UNMATCHED]
    assert state is not None and [p.rec_id for p in state.pending] == ["r2", "r3"]


def test_close_from_a_watermark() -> None:
    state, _ = run([imp("r1", T0, ["a"]), imp("r2", T0 + 10 * MIN, ["b"])], flush=False)
    same, labels = close(state, T0 + WINDOW, "u", CFG)
    assert same is state and labels == Labels()
    state, labels = close(state, T0 + WINDOW + 1, "u", CFG)
    assert [e.rec_id for e in labels.examples] == ["r1"]
    assert state is not None and [p.rec_id for p in state.pending] == ["r2"]
    assert close(None, T0, "u", CFG) == (None, Labels())


def test_config_errors_name_the_field_and_value() -> None:
    with pytest.raises(ValueError, match=r"RankerConfig.window_ms: must be > 0, got 0"):
        RankerConfig(window_ms=0)
    with pytest.raises(ValueError, match=r"RankerConfig.model: .* got 'tree'"):
        RankerConfig(model="tree")
    with pytest.raises(ValueError, match=r"positive_weights\['impression'\]"):
        RankerConfig(positive_weights=MappingProxyType({"impression": 1.0}))
    with pytest.raises(ValueError, match=r"from_dict: unknown field 'colour'"):
        RankerConfig.from_dict({"colour": 1})
    with pytest.raises(ValueError, match=r"optimizer 'ftrl' is for the logistic regression"):
        Ranker(RankerConfig(model=rm.FACTORIZATION_MACHINE, optimizer=rm.FTRL))


# ---- the join: reference and conformance --------------------------------------------------------

RECS = ("r0", "r1")
ITEMS = ("a", "b", "c")
# mostly inside the window, sometimes exactly at, just past or far past its end; the last step
# (back in time) only in the out-of-order logs
STEPS = (0, 1_000, MIN, MIN, 10 * MIN, 10 * MIN, WINDOW - 1, WINDOW, WINDOW + 1, 3 * WINDOW,
         -5 * MIN)
KINDS = ("impression", "impression", "click", "click", "add_to_cart", "purchase", "view")


def _event(n: int, ts: int, kind: int, rec: int, items: tuple[int, ...], srcs: bool,
           has_rec: bool, last: Interaction | None) -> Interaction:
    """One event; an engagement names the last impression's rec_id and one of its items
    unless ``rec`` says otherwise (0: follow it, 1 or 2: that rec_id)."""
    etype = KINDS[kind]
    rec_id = RECS[rec - 1] if rec else (last.rec_id if last is not None else RECS[0])
    if etype == "impression":
        shown = tuple(ITEMS[i] for i in items)
        ctx: dict[str, Any] = {"placement": "homepage", "device": "mobile"}
        if srcs:
            ctx["sources"] = ",".join("session" for _ in shown)
        return Interaction(f"e{n}", etype, "u", "s", ts, item_ids=shown,
                           rec_id=RECS[rec % 2] if has_rec else None, variant="A", context=ctx)
    item = ITEMS[items[0]]
    if not rec and last is not None:
        item = last.item_ids[items[0] % len(last.item_ids)]
    return Interaction(f"e{n}", etype, "u", "s", ts, item_id=item,
                       rec_id=rec_id if has_rec and etype != "view" else None)


@st.composite
def logs(draw: st.DrawFn, *, in_order: bool = False, max_size: int = 14) -> list[Interaction]:
    steps = STEPS[:-1] if in_order else STEPS
    raw = draw(st.lists(st.tuples(
        st.sampled_from(steps), st.integers(0, len(KINDS) - 1), st.sampled_from((0, 0, 1, 2)),
        st.lists(st.integers(0, len(ITEMS) - 1), min_size=1, max_size=4).map(tuple),
        st.booleans(),
        st.sampled_from((True, True, True, False))), max_size=max_size))
    out: list[Interaction] = []
    ts, last = T0, None
    for n, (step, kind, rec, items, srcs, has_rec) in enumerate(raw):
        ts += step
        ev = _event(n, ts, kind, rec, items, srcs, has_rec, last)
        if ev.type == "impression" and ev.rec_id is not None:
            last = ev
        out.append(ev)
    return out


def reference_examples(log: Sequence[Interaction],
                       cfg: RankerConfig) -> list[tuple[str, str, bool, float, int]]:
    """For a log in event-time order, from the docstring: every impression with a rec_id that
    no open impression has (one accepted at most ``window_ms`` earlier) labels each distinct
    shown item with the strongest engagement that names its rec_id and item, comes after it in
    the log and no later than ``window_ms`` after it; else negative."""
    out = []
    opened: dict[str, int] = {}
    for n, ev in enumerate(log):
        if ev.type != "impression" or ev.rec_id is None or (
                ev.rec_id in opened and ev.ts <= opened[ev.rec_id] + cfg.window_ms):
            continue
        opened[ev.rec_id] = ev.ts
        for slot, item in enumerate(dict.fromkeys(ev.item_ids), start=1):
            best = max((cfg.positive_weights[e.type] for e in log[n + 1:]
                        if e.type in cfg.positive_weights and e.rec_id == ev.rec_id
                        and e.item_id == item and e.ts <= ev.ts + cfg.window_ms), default=0.0)
            out.append((ev.rec_id, item, best > 0, best or cfg.negative_weight, slot))
    return out


@settings(max_examples=200, deadline=None)
@given(log=logs(in_order=True))
def test_join_matches_the_reference_on_in_order_logs(log: list[Interaction]) -> None:
    cfg = RankerConfig(max_pending=100)
    _, out = run(log, cfg)
    assert sorted(examples(out)) == sorted(reference_examples(log, cfg))


SMALL = RankerConfig(max_pending=2)
examples_settings = settings(max_examples=60, deadline=None)


def _reach(log: Sequence[Interaction]) -> list[LabelState | None]:
    states, state = [], None
    for ev in log:
        state, _ = label_step(state, ev, SMALL)
        states.append(state)
    return states


@examples_settings
@given(log=logs(), ev=logs(max_size=1))
def test_join_is_deterministic(log: list[Interaction], ev: list[Interaction]) -> None:
    assert _reach(log) == _reach(copy.deepcopy(log))
    state = _reach(log)[-1] if log else None
    for x in ev:
        assert label_step(copy.deepcopy(state), x, SMALL) == label_step(state, copy.deepcopy(x),
                                                                         SMALL)


@examples_settings
@given(log=logs())
def test_join_does_not_mutate_its_inputs(log: list[Interaction]) -> None:
    before = copy.deepcopy(log)
    states: list[LabelState | None] = []
    snapshots: list[LabelState | None] = []
    state: LabelState | None = None
    for ev in log:
        kept: LabelState | None = copy.deepcopy(state)
        state, _ = label_step(state, ev, SMALL)
        assert states[-1] == kept if states else kept is None
        states.append(state)
        snapshots.append(copy.deepcopy(state))
    assert states == snapshots and log == before


@examples_settings
@given(ev=logs(max_size=1))
def test_join_works_from_empty_state(ev: list[Interaction]) -> None:
    for x in ev:
        state, labels = label_step(None, x, SMALL)
        assert labels.examples == ()
        if state is not None:
            assert decode_state(orjson.loads(orjson.dumps(encode_state(state)))) == state


@examples_settings
@given(log=logs(), ev=logs(max_size=1))
def test_join_codec_round_trips_and_restore_is_invisible(log: list[Interaction],
                                                         ev: list[Interaction]) -> None:
    for state in _reach(log):
        if state is None:
            continue
        doc = encode_state(state)
        assert is_json_plain(doc), doc
        restored = decode_state(orjson.loads(orjson.dumps(doc)))
        assert restored == state
        for x in ev:
            assert label_step(restored, x, SMALL) == label_step(state, x, SMALL)


def test_join_decode_rejects_unknown_codec() -> None:
    with pytest.raises(ValueError, match=r"codec 99"):
        decode_state({"_c": 99})

