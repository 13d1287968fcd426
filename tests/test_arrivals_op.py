"""New arrivals (``operators/arrivals.py``): first-seen times and the new-arrival lists.

- ``first_seen_ms`` in every item value is the item's oldest upsert ``ts``, whatever the order of
  the log, and the item value keeps the newest upsert's version (a late older upsert republishes
  it at the same version, which the store accepts);
- the lists ``trending:new:global`` / ``trending:new:cat:{c}`` equal the naive top-K of live items
  by first-seen score for any interleaving of items whose own upserts arrive in event-time
  order; for any order at all they hold only live items at their current scores, and are exact
  while not trimmed; their versions are the newest upsert they reflect;
- recategorisation, deletion, re-listing, old checkpoints and the documented limit of a late
  correction, case by case.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import arrivals, trending
from operators.config import EngineConfig, TrendingConfig
from schemas.events import ItemUpsert
from state import keys
from state.store import MemoryStore
from stream import views
from stream.reference import ReferenceRunner
from tests.strategies import (
    CATEGORIES,
    DAY,
    ITEMS,
    T0,
    Record,
    assert_same_top_k,
    logs,
    naive_first_seen,
    naive_new_arrival_versions,
    naive_new_arrivals,
)

CFG = EngineConfig(trending=TrendingConfig(half_life_s=3_600.0, top_k=2, new_top_k=3))
HL = CFG.trending.half_life_s
K = CFG.trending.new_top_k


def score(ts: int) -> float:
    return arrivals.score(ts, HL)


def listed(runner: ReferenceRunner, category: str | None = None) -> list[list[Any]]:
    env = runner.store.get(keys.new_arrivals_key(category))
    return [] if env is None else env.data["items"]


def ids(runner: ReferenceRunner, category: str | None = None) -> list[str]:
    return [i for i, _ in listed(runner, category)]


def in_event_time_per_item(log: list[Record]) -> list[Record]:
    """The same records, each item's upserts re-sorted by ``ts`` within the positions they hold
    (stable: equal times keep their order), the interleaving of items untouched."""
    positions: dict[str, list[int]] = defaultdict(list)
    for n, rec in enumerate(log):
        if isinstance(rec, ItemUpsert):
            positions[rec.item_id].append(n)
    out = list(log)
    for pos in positions.values():
        ups = sorted((log[n] for n in pos), key=lambda r: r.ts)
        for n, up in zip(pos, ups, strict=True):
            out[n] = up
    return out


def new_scopes_published(runner: ReferenceRunner) -> set[str]:
    found = {keys.split_key(k)[1] for k in runner.store.keys(keys.PREFIX + "trending:new:")}
    return found


# -- against the naive reference --------------------------------------------------------------

@settings(max_examples=80, deadline=None)
@given(log=logs(max_size=60, categories=CATEGORIES[:2], upsert_rate=0.4)
       .flatmap(st.permutations))
def test_first_seen_is_the_oldest_upsert_whatever_the_order(log: list[Record]) -> None:
    runner = ReferenceRunner(CFG)
    runner.run(log)
    first = naive_first_seen(log)
    for item in ITEMS:
        env = runner.store.get(keys.item_key(item))
        if item not in first:
            assert env is None
            continue
        assert env is not None and env.data["first_seen_ms"] == first[item]
        assert runner.items[item].first_seen_ts == first[item]
        # the version stays the newest upsert's, whichever upsert came last
        assert env.version == env.data["ts"] == max(r.ts for r in log
                                                    if isinstance(r, ItemUpsert)
                                                    and r.item_id == item)


@settings(max_examples=100, deadline=None)
@given(log=logs(max_size=60, categories=CATEGORIES[:2], upsert_rate=0.4)
       .flatmap(st.permutations).map(in_event_time_per_item))
def test_lists_equal_naive_top_k_when_each_item_arrives_in_event_time_order(
        log: list[Record]) -> None:
    runner = ReferenceRunner(CFG)
    runner.run(log)
    want = naive_new_arrivals(log, CFG)
    assert new_scopes_published(runner) == set(want)
    for scope, scores in want.items():
        env = runner.store.get(keys.key_for(keys.KIND_TRENDING, scope))
        assert env is not None and env.data["half_life_s"] == HL
        assert_same_top_k(env.data["items"], scores, K)
    for scope, version in naive_new_arrival_versions(log).items():
        env = runner.store.get(keys.key_for(keys.KIND_TRENDING, scope))
        assert env is not None and (env.version, env.as_of) == (version, version), scope


@settings(max_examples=100, deadline=None)
@given(log=logs(max_size=60, categories=CATEGORIES[:2], upsert_rate=0.4)
       .flatmap(st.permutations), new_top_k=st.sampled_from((1, 2, len(ITEMS))))
def test_lists_hold_live_items_at_current_scores_for_any_order(log: list[Record],
                                                               new_top_k: int) -> None:
    """Late corrections lower scores: the lists stay consistent with the items, never longer
    than ``new_top_k``, and exact while they are never trimmed (documented limit otherwise)."""
    cfg = EngineConfig(trending=TrendingConfig(half_life_s=HL, new_top_k=new_top_k))
    runner = ReferenceRunner(cfg)
    runner.run(log)
    want = naive_new_arrivals(log, cfg)
    assert new_scopes_published(runner) == set(want)
    for scope, scores in want.items():
        env = runner.store.get(keys.key_for(keys.KIND_TRENDING, scope))
        assert env is not None
        got = env.data["items"]
        assert 1 <= len(got) <= new_top_k
        for item, log_score in got:
            assert log_score == scores[item], (scope, item)
        assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
        if new_top_k >= len(ITEMS):
            assert_same_top_k(got, scores, new_top_k)


# -- the score --------------------------------------------------------------------------------

@given(a=st.integers(T0 - 400 * DAY, T0 + 400 * DAY), b=st.integers(1, 10 * DAY))
def test_score_strictly_increases_with_first_seen_and_inverts(a: int, b: int) -> None:
    hl = EngineConfig().trending.half_life_s
    assert arrivals.score(a, hl) < arrivals.score(a + b, hl)
    assert abs(arrivals.first_seen_s(arrivals.score(a, hl), hl) * 1000 - a) < 1.0
    # the freshness a reader computes from the payload: 2^(-age / half-life)
    assert math.isclose(math.exp(arrivals.score(a, hl) - arrivals.score(a + b, hl)),
                        2.0 ** (-b / 1000 / hl), rel_tol=1e-6)


# -- cases ------------------------------------------------------------------------------------

def test_first_upsert_offers_global_and_category_at_its_time() -> None:
    state, scores = trending.item_upsert_step(None, ItemUpsert("i1", T0, category="c0"), CFG)
    assert state.first_seen_ts == T0
    assert scores == [trending.ScopeScore("new:global", "i1", score(T0), T0),
                      trending.ScopeScore("new:cat:c0", "i1", score(T0), T0)]
    # a newer upsert re-offers the unchanged score at its own time: the list's version moves
    _, scores = trending.item_upsert_step(state, ItemUpsert("i1", T0 + 9, category="c0",
                                                            price=3.0), CFG)
    assert {(s.scope, s.log_score, s.ts) for s in scores} == {
        ("new:global", score(T0), T0 + 9), ("new:cat:c0", score(T0), T0 + 9)}


def test_items_without_catalogue_value_are_not_new_arrivals() -> None:
    state, scores = trending.item_event_step(None, "i1", "view", None, T0, CFG)
    assert trending.render_item(state) is None
    assert all(not keys.is_new_arrivals_scope(s.scope) for s in scores)


def test_newest_items_first_and_list_trimmed_to_new_top_k() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert(f"i{n}", T0 + n * 1_000, category="c0" if n % 2 else "c1")
                for n in (3, 0, 4, 1, 2)])
    assert ids(runner) == ["i4", "i3", "i2"]  # new_top_k = 3, while trending keeps top_k = 2
    assert ids(runner, "c0") == ["i3", "i1"]
    assert ids(runner, "c1") == ["i4", "i2", "i0"]
    assert listed(runner)[0] == ["i4", score(T0 + 4_000)]
    env = runner.store.get(keys.new_arrivals_key())
    assert env is not None and env.version == T0 + 4_000
    # ties (same millisecond) rank by item id, like every trending list
    tie = ReferenceRunner(CFG)
    tie.run([ItemUpsert(i, T0) for i in ("b", "c", "a", "d")])
    assert ids(tie) == ["a", "b", "c"]


def test_recategorised_item_moves_between_category_lists() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert("i1", T0, category="c0"), ItemUpsert("i2", T0 + 1, category="c0")])
    runner.run([ItemUpsert("i1", T0 + 50, category="c1")])
    assert ids(runner, "c0") == ["i2"]
    assert listed(runner, "c1") == [["i1", score(T0)]]  # first seen stays the first upsert
    assert ids(runner) == ["i2", "i1"]
    c0 = runner.store.get(keys.new_arrivals_key("c0"))
    c1 = runner.store.get(keys.new_arrivals_key("c1"))
    assert c0 is not None and c0.version == T0 + 1  # a retraction does not move a version
    assert c1 is not None and c1.version == T0 + 50


def test_deleted_item_leaves_the_new_lists_and_comes_back_when_relisted() -> None:
    runner = ReferenceRunner(CFG)
    runner.run([ItemUpsert("i1", T0, category="c0"), ItemUpsert("i2", T0 + 1, category="c0")])
    runner.run([ItemUpsert("i2", T0 + 60, category="c0", deleted=True)])
    assert ids(runner) == ids(runner, "c0") == ["i1"]
    env = runner.store.get(keys.item_key("i2"))
    assert env is not None and env.data["deleted"] and env.data["first_seen_ms"] == T0 + 1
    runner.run([ItemUpsert("i2", T0 + 70, category="c0")])
    assert listed(runner) == [["i2", score(T0 + 1)], ["i1", score(T0)]]


def test_late_older_upsert_lowers_first_seen_and_republishes_at_the_same_version() -> None:
    store = MemoryStore()
    runner = ReferenceRunner(CFG, store)
    runner.run([ItemUpsert("i1", T0 + 10, title="v2", category="c0")])
    before = store.get(keys.item_key("i1"))
    state, scores = trending.item_upsert_step(runner.items["i1"],
                                              ItemUpsert("i1", T0 + 5, title="v1"), CFG)
    retract = trending.RETRACT
    assert scores == [trending.ScopeScore("new:global", "i1", retract, T0 + 10),
                      trending.ScopeScore("new:cat:c0", "i1", retract, T0 + 10),
                      trending.ScopeScore("new:global", "i1", score(T0 + 5), T0 + 10),
                      trending.ScopeScore("new:cat:c0", "i1", score(T0 + 5), T0 + 10)]
    (update, *_) = views.item_updates("i1", state)
    assert before is not None and update.version == before.version == T0 + 10
    assert store.apply([update]) == 1  # equal version: accepted by the store
    env = store.get(keys.item_key("i1"))
    assert env is not None and env.data == {"item_id": "i1", "ts": T0 + 10, "title": "v2",
                                            "category": "c0", "first_seen_ms": T0 + 5}
    runner.run([ItemUpsert("i1", T0 + 5, title="v1")])
    assert listed(runner) == [["i1", score(T0 + 5)]]
    # an older upsert that lowers nothing changes nothing
    again, scores = trending.item_upsert_step(state, ItemUpsert("i1", T0 + 7), CFG)
    assert again is state and scores == []


def test_late_correction_exact_while_the_item_still_ranks_documented_limit_otherwise() -> None:
    runner = ReferenceRunner(CFG)  # new_top_k = 3
    runner.run([ItemUpsert(f"i{n}", T0 + n * 1_000) for n in range(5)])
    assert ids(runner) == ["i4", "i3", "i2"]
    runner.run([ItemUpsert("i3", T0 + 2_500)])  # lowered, still third or better: exact
    assert ids(runner) == ["i4", "i3", "i2"]
    runner.run([ItemUpsert("i4", T0 - 1_000)])  # lowered below every item: i1 was evicted,
    assert ids(runner) == ["i3", "i2", "i4"]    # so i4 keeps the place that is i1's by right
    runner.run([ItemUpsert("i5", T0 + 9_000)])  # until the next arrival pushes it out
    assert ids(runner) == ["i5", "i3", "i2"]


def test_item_codec_round_trips_first_seen_and_old_checkpoints_fall_back_to_meta_ts() -> None:
    state, _ = trending.item_upsert_step(None, ItemUpsert("i1", T0 + 10, category="c0"), CFG)
    state, _ = trending.item_upsert_step(state, ItemUpsert("i1", T0 + 5), CFG)
    assert trending.decode_item(trending.encode_item(state)) == state
    old = trending.encode_item(state)
    del old["first_seen_ts"]  # checkpointed before first-seen times existed
    restored = trending.decode_item(old)
    assert (restored.first_seen_ts, restored.meta_ts) == (T0 + 10, T0 + 10)
    no_meta = trending.encode_item(trending.item_event_step(None, "i2", "view", None, T0,
                                                            CFG)[0])
    del no_meta["first_seen_ts"]
    assert trending.decode_item(no_meta).first_seen_ts == 0
    # an upgraded item joins the new-arrival lists at its next upsert
    _, scores = trending.item_upsert_step(restored, ItemUpsert("i1", T0 + 20, category="c0"),
                                          CFG)
    assert {s.scope for s in scores} == {"new:global", "new:cat:c0"}


def test_list_size_and_config() -> None:
    cfg = TrendingConfig(top_k=2, new_top_k=5)
    assert trending.list_size(cfg, "new:global") == trending.list_size(cfg, "new:cat:x") == 5
    assert trending.list_size(cfg, "global") == trending.list_size(cfg) == 2
    assert trending.list_size(cfg, "cat:new:x") == 2
    assert TrendingConfig().new_top_k == 100
    with pytest.raises(ValueError, match=r"TrendingConfig\.new_top_k: must be > 0, got 0"):
        TrendingConfig(new_top_k=0)
