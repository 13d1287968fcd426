"""Decayed trending (``operators/trending.py``) against a recompute from the log.

- Every item's ``log_pop`` equals ``log Σ w·exp(λ t)`` over its interactions, recomputed naively
  (:func:`strategies.naive_popularity`), its context scores the same sum per context scope
  (:func:`strategies.naive_context_popularity`), and its counters equal a plain count by type.
- The global, per-category and per-context top-K the :class:`ReferenceRunner` publishes equal the
  naive top-K of the recomputed scores, for any permutation of the log (forward decay makes the
  streaming top-K exact whatever the arrival order).
- Above ``max_context_scopes`` an item keeps its best context scopes, retracts the others, and
  every published context list agrees with the item states.
- The documented special cases: impressions count but do not trend (they only add to the
  user's ``shown`` list), ratings weigh by their value, an upsert older than the current one
  leaves the metadata alone, and an item whose category arrives after its events joins the
  category's trending list.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import trending
from operators.config import EngineConfig, TrendingConfig
from operators.decay import NEG_INF, log_term, rate
from schemas.events import Interaction, ItemUpsert
from state import keys
from stream.reference import ReferenceRunner
from stream.routing import item_targets
from tests.strategies import (
    CATEGORIES,
    DAY,
    ITEMS,
    T0,
    TTL_STEPS,
    Record,
    assert_same_top_k,
    logs,
    naive_categories,
    naive_context_popularity,
    naive_context_scopes,
    naive_popularity,
    naive_top_k,
    naive_weight,
)

CFG = EngineConfig(trending=TrendingConfig(half_life_s=3_600.0, top_k=2))  # trims often
HL = CFG.trending.half_life_s


def view(item: str, ts: int, etype: str = "view", user: str = "u",
         value: float | None = None, **context: str) -> Interaction:
    return Interaction(f"e{item}{ts}{etype}", etype, user, "s", ts, item_id=item, value=value,
                       context=context)


def impression(items: tuple[str, ...], ts: int, user: str = "u") -> Interaction:
    return Interaction(f"imp{ts}", "impression", user, "s", ts, item_ids=items)


def trending_items(runner: ReferenceRunner, category: str | None = None) -> list[list[Any]]:
    return scope_items(runner, keys.trending_scope(category))


def scope_items(runner: ReferenceRunner, scope: str) -> list[list[Any]]:
    env = runner.store.get(keys.key_for(keys.KIND_TRENDING, scope))
    return [] if env is None else env.data["items"]


def ctx_scopes_published(runner: ReferenceRunner) -> set[str]:
    found = {keys.split_key(k)[1] for k in runner.store.keys(keys.PREFIX + "trending:")}
    return {s for s in found if s.startswith("ctx:")}


# -- reference: recompute from the log --------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(log=logs(max_size=60))
def test_log_pop_and_counts_equal_recompute(log: list[Record]) -> None:
    runner = ReferenceRunner(CFG)
    runner.run(log)
    pops = naive_popularity(log, CFG)
    ctx = naive_context_popularity(log, CFG)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in log:
        if isinstance(rec, Interaction):
            for item in item_targets(rec):
                counts[item][rec.type] += 1
    for item in ITEMS:
        state = runner.items.get(item)
        env = runner.store.get(keys.itemstats_key(item))
        if item not in counts:
            assert env is None
            continue
        assert state is not None and env is not None
        assert env.data["counts"] == dict(sorted(counts[item].items()))
        if item in pops:
            assert math.isclose(state.log_pop, pops[item], rel_tol=0, abs_tol=1e-7)
            assert env.data["log_pop"] == state.log_pop
        else:
            assert state.log_pop == NEG_INF and env.data["log_pop"] is None
        want_ctx = {scope: per[item] for scope, per in ctx.items() if item in per}
        assert state.ctx.keys() == want_ctx.keys()
        for scope, (score, ts) in state.ctx.items():
            assert math.isclose(score, want_ctx[scope], rel_tol=0, abs_tol=1e-7)
            assert score <= state.log_pop + 1e-9  # a context sees a part of the item's events
            assert ts == max(r.ts for r in log if isinstance(r, Interaction)
                             and r.item_id == item and naive_weight(r.type, r.value) > 0
                             and scope in naive_context_scopes(r))


# Two categories and frequent upserts, so that category lists fill up and get trimmed too.
@settings(max_examples=100, deadline=None)
@given(log=logs(max_size=60, categories=CATEGORIES[:2], upsert_rate=0.3)
       .flatmap(st.permutations))
def test_top_k_equals_naive_for_any_order(log: list[Record]) -> None:
    runner = ReferenceRunner(CFG)
    runner.run(log)
    pops = naive_popularity(log, CFG)
    cats = naive_categories(log)
    k = CFG.trending.top_k
    assert_same_top_k(trending_items(runner), pops, k)
    assert (runner.store.get(keys.trending_key()) is None) == (not pops)
    for cat in CATEGORIES:
        in_cat = {i: s for i, s in pops.items() if cats.get(i) == cat}
        assert_same_top_k(trending_items(runner, cat), in_cat, k)
        assert (runner.store.get(keys.trending_key(cat)) is None) == (not in_cat)
    ctx = naive_context_popularity(log, CFG)
    assert ctx_scopes_published(runner) == set(ctx)
    for scope, scores in ctx.items():
        assert_same_top_k(scope_items(runner, scope), scores, k)


@settings(max_examples=40, deadline=None)
@given(log=logs(max_size=60, fixed_categories=False).flatmap(st.permutations))
def test_global_top_k_ignores_category_changes(log: list[Record]) -> None:
    runner = ReferenceRunner(CFG)
    runner.run(log)
    assert_same_top_k(trending_items(runner), naive_popularity(log, CFG), CFG.trending.top_k)


@settings(max_examples=100, deadline=None)
@given(bumps=st.lists(st.tuples(st.sampled_from(ITEMS), st.floats(0.0, 3.0)), max_size=60),
       top_k=st.integers(1, 4))
def test_streaming_top_k_exact_for_growing_scores(bumps: list[tuple[str, float]],
                                                  top_k: int) -> None:
    """Any interleaving of per-item growing scores ends in the exact top-K of the final scores."""
    cfg = TrendingConfig(top_k=top_k)
    final: dict[str, float] = {}
    state: trending.TopKState | None = None
    for ts, (item, bump) in enumerate(bumps):
        final[item] = final.get(item, 0.0) + bump
        state, _ = trending.topk_step(state, trending.ScopeScore("global", item, final[item], ts))
        state = trending.trim(state, cfg) if state is not None else None
        assert state is None or len(state.items) <= top_k
    got = [] if state is None else trending.ranked(state)
    assert got == naive_top_k(final, top_k)


# -- documented special cases -----------------------------------------------------------------

def test_impressions_count_in_itemstats_but_do_not_trend() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([view("i1", T0)])
    before = {k: runner.store.get(k) for k in runner.store.keys(keys.PREFIX)}
    runner.run([impression(("i1", "i2"), T0 + 1_000)])
    after = {k: runner.store.get(k) for k in runner.store.keys(keys.PREFIX)}
    changed = {k for k in after if before.get(k) != after[k]}
    assert changed == {keys.itemstats_key("i1"), keys.itemstats_key("i2"), keys.session_key("u")}
    session = after[keys.session_key("u")]
    assert session is not None and session.version == T0 + 1_000
    assert session.data["shown"] == [["i1", 1, T0 + 1_000], ["i2", 1, T0 + 1_000]]
    assert session.data["events"] == [["i1", "view", T0]]
    assert after[keys.itemstats_key("i1")].data == {  # type: ignore[union-attr]
        "counts": {"impression": 1, "view": 1},
        "log_pop": runner.items["i1"].log_pop}
    assert after[keys.itemstats_key("i2")].data == {  # type: ignore[union-attr]
        "counts": {"impression": 1}, "log_pop": None}
    assert [i for i, _ in trending_items(runner)] == ["i1"]
    only_impressions = ReferenceRunner(CFG)
    only_impressions.run([impression(("i1",), T0)])
    assert only_impressions.store.keys() == [keys.itemstats_key("i1"), keys.session_key("u")]


@pytest.mark.parametrize(("value", "weight"), [(5.0, 2.0), (2.5, 1.0), (10.0, 4.0), (1.0, 0.4)])
def test_rating_weighted_by_value(value: float, weight: float) -> None:
    state, scores = trending.item_step(None, view("i1", T0, "rating", value=value), CFG)
    assert state.log_pop == pytest.approx(math.log(weight) + rate(HL) * T0 / 1000.0, abs=1e-9)
    assert [s.scope for s in scores] == ["global", "ctx:daypart:evening"]


def test_zero_rating_counts_but_does_not_trend() -> None:
    state, scores = trending.item_step(None, view("i1", T0, "rating", value=0.0, device="web"),
                                       CFG)
    assert (state.counts, state.log_pop, state.ctx, scores) == ({"rating": 1}, NEG_INF, {}, [])


def test_event_weights_order_interest() -> None:
    pops = {etype: trending.item_step(None, view("i1", T0, etype), CFG)[0].log_pop
            for etype in ("view", "click", "add_to_cart", "purchase")}
    assert pops["view"] < pops["click"] < pops["add_to_cart"] < pops["purchase"]
    assert pops["purchase"] - pops["view"] == pytest.approx(math.log(8.0))


def test_item_step_without_item_names_the_event() -> None:
    with pytest.raises(ValueError, match="'imp1'"):
        trending.item_step(None, impression(("i1",), 1), CFG)


def test_older_upsert_keeps_the_metadata_newer_or_equal_wins() -> None:
    state, _ = trending.item_upsert_step(None, ItemUpsert("i1", T0 + 10, title="new",
                                                          category="c0"), CFG)
    older, scores = trending.item_upsert_step(state, ItemUpsert("i1", T0 + 5, title="old",
                                                                category="c1"), CFG)
    # the metadata stays; only the first-seen time goes down (tests/test_arrivals_op.py)
    assert (older.meta, older.meta_ts, older.first_seen_ts) == (state.meta, T0 + 10, T0 + 5)
    assert {s.scope for s in scores} == {"new:global", "new:cat:c0"}
    same, _ = trending.item_upsert_step(state, ItemUpsert("i1", T0 + 10, title="fix"), CFG)
    assert same.meta is not None and same.meta["title"] == "fix"
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert("i1", T0 + 10, title="new", category="c0"), view("i1", T0 + 20),
                ItemUpsert("i1", T0 + 5, title="old", category="c1")])
    env = runner.store.get(keys.item_key("i1"))
    assert env is not None
    assert (env.version, env.data) == (T0 + 10, {"item_id": "i1", "ts": T0 + 10,
                                                 "title": "new", "category": "c0",
                                                 "first_seen_ms": T0 + 5})
    assert runner.store.get(keys.trending_key("c1")) is None


def test_category_trending_picks_up_item_whose_upsert_arrives_after_its_events() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([view("i1", T0), view("i1", T0 + 1_000, "purchase"), view("i2", T0 + 2_000)])
    assert runner.store.get(keys.trending_key("c0")) is None
    runner.run([ItemUpsert("i1", T0 + 5_000, title="late", category="c0")])
    env = runner.store.get(keys.trending_key("c0"))
    assert env is not None
    assert env.data["items"] == [["i1", runner.items["i1"].log_pop]]
    # a list's version is the newest interaction it reflects; the catalogue upsert does not move it
    assert env.version == T0 + 1_000
    # later events keep the category list current
    runner.run([view("i1", T0 + 6_000)])
    assert trending_items(runner, "c0") == [["i1", runner.items["i1"].log_pop]]


def test_item_leaves_its_old_category_when_recategorised() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert("i1", T0, category="c0"), view("i1", T0 + 1),
                ItemUpsert("i1", T0 + 2, category="c1")])
    assert [i for i, _ in trending_items(runner, "c1")] == ["i1"]
    assert [i for i, _ in trending_items(runner, "c0")] == []


def test_top_k_step_ignores_lower_scores_and_trim_keeps_best() -> None:
    cfg = TrendingConfig(top_k=2)
    s, changed = trending.topk_step(None, trending.ScopeScore("global", "a", 1.0, T0))
    assert changed and s is not None and (s.seq, s.as_of) == (1, T0)
    same, changed = trending.topk_step(s, trending.ScopeScore("global", "a", 0.5, T0))
    assert same is s and not changed
    # a lower score with a newer time leaves the items alone but advances the version
    newer, changed = trending.topk_step(s, trending.ScopeScore("global", "a", 0.5, T0 + 9))
    assert changed and newer is not None
    assert (newer.items, newer.as_of) == (s.items, T0 + 9)
    for item, score in (("b", 2.0), ("c", 2.0), ("d", 0.1)):
        s, _ = trending.topk_step(s, trending.ScopeScore("global", item, score, T0 + DAY))
        s = trending.trim(s, cfg) if s is not None else s
    assert s is not None
    assert trending.ranked(s) == [("b", 2.0), ("c", 2.0)]
    # a trimmed item comes back once it overtakes
    s, _ = trending.topk_step(s, trending.ScopeScore("global", "a", 3.0, T0 + DAY))
    assert s is not None
    assert [i for i, _ in trending.ranked(trending.trim(s, cfg))] == ["a", "b"]
    assert trending.render_topk(s, cfg)["items"] == [["a", 3.0], ["b", 2.0]]


# -- context scopes ---------------------------------------------------------------------------

@pytest.mark.parametrize(("hour", "part"), [(0, "night"), (5, "night"), (6, "morning"),
                                            (11, "morning"), (12, "afternoon"), (17, "afternoon"),
                                            (18, "evening"), (23, "evening")])
def test_daypart_by_utc_hour(hour: int, part: str) -> None:
    midnight = T0 - T0 % DAY  # 2023-11-14 00:00 UTC
    assert trending.daypart(midnight + hour * 3_600_000) == part
    assert trending.daypart(midnight + hour * 3_600_000 + 3_599_999) == part


def test_context_scopes_normalised_and_bounded() -> None:
    assert trending.context_scopes(" iOS ", "DE", T0) == [
        "ctx:device:ios", "ctx:country:de", "ctx:daypart:evening"]
    assert trending.context_scopes("", "   ", T0) == ["ctx:daypart:evening"]
    assert trending.context_scopes("x" * 65, None, T0) == ["ctx:daypart:evening"]
    assert trending.context_scopes("x" * 64, None, T0)[0] == "ctx:device:" + "x" * 64
    # non-string context values (the schema allows them for other keys) give no scope
    event = Interaction("e1", "view", "u", "s", T0, item_id="i1", context={"device": 3})
    assert trending.context_field(event, "device") is None


def test_item_scores_every_context_scope_of_its_events() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([view("i1", T0, device="Mobile", country="de"),
                view("i2", T0 + 1_000, "purchase", device="web"),
                view("i1", T0 + 2_000, "click", device="mobile")])
    state = runner.items["i1"]
    assert state.ctx.keys() == {"ctx:device:mobile", "ctx:country:de", "ctx:daypart:evening"}
    assert state.ctx["ctx:device:mobile"] == (state.log_pop, T0 + 2_000)
    assert state.ctx["ctx:country:de"] == (log_term(1.0, T0, HL), T0)
    assert scope_items(runner, "ctx:device:mobile") == [["i1", state.log_pop]]
    assert [i for i, _ in scope_items(runner, "ctx:daypart:evening")] == ["i2", "i1"]
    env = runner.store.get(keys.trending_context_key("country", "DE"))
    assert env is not None and env.version == T0  # the newest event in that scope
    # current_scores: every scope, each at the time of its newest event
    got = {(s.scope, s.ts) for s in trending.current_scores("i1", state)}
    assert got == {("global", T0 + 2_000), ("ctx:country:de", T0),
                   ("ctx:daypart:evening", T0 + 2_000), ("ctx:device:mobile", T0 + 2_000)}


def test_full_item_keeps_its_best_context_scopes_and_retracts_the_dropped_one() -> None:
    cfg = EngineConfig(trending=TrendingConfig(half_life_s=3_600.0, top_k=5,
                                               max_context_scopes=3))
    runner = ReferenceRunner(cfg)
    # de gets two purchases, us one view (the weakest), then a fresh view from fr arrives
    runner.run([view("i1", T0, "purchase", country="de"), view("i1", T0, "purchase", country="de"),
                view("i1", T0, country="us")])
    assert runner.items["i1"].ctx.keys() == {"ctx:country:de", "ctx:country:us",
                                             "ctx:daypart:evening"}
    state, scores = trending.item_step(runner.items["i1"], view("i1", T0 + 1, country="fr"), cfg)
    assert state.ctx.keys() == {"ctx:country:de", "ctx:country:fr", "ctx:daypart:evening"}
    retracted = [s for s in scores if s.log_score == trending.RETRACT]
    assert retracted == [trending.ScopeScore("ctx:country:us", "i1", trending.RETRACT, T0)]
    runner.run([view("i1", T0 + 1, country="fr")])
    assert scope_items(runner, "ctx:country:us") == []
    env = runner.store.get(keys.trending_context_key("country", "us"))
    assert env is not None and env.version == T0  # retraction does not move the version
    # a new scope weaker than every kept one is not added (and nothing is retracted)
    weak, scores = trending.item_event_step(state, "i1", "view", None, T0 - 5 * 3_600_000, cfg,
                                            country="it")
    assert weak.ctx.keys() == state.ctx.keys()
    assert "ctx:country:it" not in {s.scope for s in scores}
    assert all(s.log_score != trending.RETRACT for s in scores)


def test_deleted_item_leaves_its_context_lists_too() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert("i1", T0, category="c0"), view("i1", T0 + 1, device="web"),
                view("i2", T0 + 2, device="web")])
    runner.run([ItemUpsert("i1", T0 + 3, category="c0", deleted=True)])
    for scope in ("global", "cat:c0", "ctx:device:web", "ctx:daypart:evening"):
        assert "i1" not in [i for i, _ in scope_items(runner, scope)], scope
    assert [i for i, _ in scope_items(runner, "ctx:device:web")] == ["i2"]


def test_item_codec_round_trips_context_and_reads_old_checkpoints() -> None:
    state, _ = trending.item_step(None, view("i1", T0, device="web", country="de"), CFG)
    assert trending.decode_item(trending.encode_item(state)) == state
    old = trending.encode_item(state)
    del old["ctx"], old["pop_ts"]  # checkpointed before these fields existed
    restored = trending.decode_item(old)
    assert (restored.ctx, restored.pop_ts, restored.log_pop) == ({}, 0, state.log_pop)


def test_max_context_scopes_is_validated() -> None:
    with pytest.raises(ValueError, match=r"TrendingConfig\.max_context_scopes: must be > 0"):
        TrendingConfig(max_context_scopes=0)


BOUNDED = EngineConfig(trending=TrendingConfig(half_life_s=3_600.0, top_k=3,
                                               max_context_scopes=2))


@settings(max_examples=60, deadline=None)
@given(log=logs(max_size=60, steps=TTL_STEPS).flatmap(st.permutations))
def test_bounded_context_scopes_stay_consistent_with_published_lists(log: list[Record]) -> None:
    """Above the bound: at most ``max_context_scopes`` per item, the kept scores never exceed the
    recompute (dropping loses weight, never adds it), and every published context list holds
    exactly the current scores of items that still track its scope."""
    runner = ReferenceRunner(BOUNDED)
    runner.run(log)
    full = naive_context_popularity(log, BOUNDED)
    for item, state in runner.items.items():
        assert len(state.ctx) <= BOUNDED.trending.max_context_scopes
        for scope, (score, _) in state.ctx.items():
            assert score <= full[scope][item] + 1e-7
    for scope in ctx_scopes_published(runner):
        listed = scope_items(runner, scope)
        assert len(listed) <= BOUNDED.trending.top_k
        for item, score in listed:
            assert runner.items[item].ctx[scope][0] == score
        assert [s for _, s in listed] == sorted((s for _, s in listed), reverse=True)
