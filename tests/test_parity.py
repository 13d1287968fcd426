"""The parity check's rule for overflowed Space-Saving lists (stream/parity.py): near-ties at
the head's edge may fall either way, a clear difference in the head may not."""

from __future__ import annotations

import math

from operators.config import EngineConfig, NeighbourConfig, recent_similar
from schemas.events import Interaction
from state import keys
from state.records import Update
from state.store import MemoryStore
from stream.parity import _overflowed_head_differs, diagnosis, differences
from stream.reference import ReferenceRunner

T0 = 1_700_000_000_000
WEAKEST = math.log(1.0)  # the table's weakest entry: 1.0 in linear space


def _list(*linear: tuple[str, float]) -> list[list[object]]:
    return [[item, math.log(score)] for item, score in linear]


def test_a_near_tie_at_the_edge_of_the_head_may_fall_either_way() -> None:
    a = _list(("x", 50.0), ("y", 40.0), ("p", 10.5), ("q", 10.0))
    b = _list(("x", 50.0), ("y", 40.0), ("q", 10.4), ("p", 10.0))
    assert not _overflowed_head_differs(a, b, 3, WEAKEST)


def test_an_entry_clearly_in_the_head_must_be_in_both() -> None:
    a = _list(("x", 50.0), ("y", 40.0), ("p", 30.0), ("q", 10.0))
    b = _list(("x", 50.0), ("y", 40.0), ("q", 31.0), ("p", 29.0))
    assert not _overflowed_head_differs(a, b, 2, WEAKEST)   # the head of 2 agrees
    assert _overflowed_head_differs(a, b, 3, WEAKEST)       # p beats q by 20 in a: not a tie
    assert _overflowed_head_differs(b, a, 3, WEAKEST)


def test_the_margin_grows_with_the_tables_weakest_score() -> None:
    a = _list(("x", 50.0), ("p", 30.0), ("q", 10.0))
    b = _list(("x", 50.0), ("q", 31.0), ("p", 29.0))
    assert _overflowed_head_differs(a, b, 2, math.log(1.0))
    assert not _overflowed_head_differs(a, b, 2, math.log(15.0))  # 2 x 15 covers 30 - 10


def test_short_lists_compare_whole() -> None:
    a = _list(("x", 5.0), ("y", 4.0))
    assert not _overflowed_head_differs(a, a, 5, WEAKEST)
    assert _overflowed_head_differs(a, _list(("x", 5.0), ("z", 4.0)), 5, WEAKEST)


def test_the_second_similar_items_list_is_compared_like_the_similar_list() -> None:
    """With EngineConfig.similar_recent on, its keys must be in the store with the reference's
    values; an overflowed one may differ below its certain head (Space-Saving's near-ties),
    as any neighbour list, and not in it."""
    small = NeighbourConfig(capacity=3, top_k=3, half_life_s=86_400.0)
    cfg = EngineConfig(similar=small, similar_recent=recent_similar(small, 600.0))
    # "a" seen with "b" forty times, then once each with four more items: a's tables overflow
    # and "b" leads them by far
    seen = ["a", "b"] * 20 + ["c", "a", "d", "a", "e", "a", "f", "a"]
    events = [Interaction(f"e{n}", "view", "u", "s", T0 + 1_000 * n, item_id=item)
              for n, item in enumerate(seen)]
    ref = ReferenceRunner(cfg)
    ref.run(events)
    recent = ref.store.keys(f"{keys.PREFIX}{keys.KIND_SIMILAR_RECENT}:")
    assert recent == [k.replace(":similar:", ":similar_recent:")
                      for k in ref.store.keys(f"{keys.PREFIX}{keys.KIND_SIMILAR}:")]
    copy = MemoryStore()
    copy.apply([Update(k, e.version, e.as_of, e.data) for k in ref.store.keys(keys.PREFIX)
                for e in [ref.store.get(k)] if e is not None])
    assert differences(ref, copy, models=False) == []
    key = keys.similar_recent_key("a")
    assert len(ref.relations[(keys.KIND_SIMILAR_RECENT, "a")].scores) >= small.capacity
    env = ref.store.get(key)
    assert env is not None
    items = env.data["items"]
    assert items[0][0] == "b"

    def stored(listed: list[list[object]], version: int = env.version) -> None:
        copy.apply([Update(key, version, env.as_of, {**env.data, "items": listed})])

    stored([items[0], [items[2][0], items[1][1]], [items[1][0], items[2][1]]])
    assert differences(ref, copy, head=1, models=False) == []  # a near-tie below the head
    stored([["elsewhere", items[0][1]], *items[1:]])
    assert [d.split(" ")[0] for d in differences(ref, copy, head=1, models=False)] == ["head"]
    stored(items)
    copy.apply([Update(key, env.version + 1, env.as_of, None)])  # deleted: missing
    assert differences(ref, copy, models=False) == [f"missing {key}"]


def test_the_diagnosis_tells_a_lost_last_value_from_a_different_result() -> None:
    """A run whose last session value never arrived (an older version stored), whose item
    counter missed an event, whose list is missing and whose model differs: each is named by
    kind and how, and the lost event is counted."""
    events = [Interaction(f"e{n}", "view", "u", "s", T0 + 1_000 * n, item_id=item)
              for n, item in enumerate(["a", "b", "a", "c"])]
    ref = ReferenceRunner(EngineConfig())
    ref.run(events)
    early = ReferenceRunner(EngineConfig())
    early.run(events[:-1])  # the run that stopped one event short
    session, stats = keys.session_key("u"), keys.itemstats_key("c")
    copy = MemoryStore()
    copy.apply([Update(k, e.version, e.as_of, e.data) for k in ref.store.keys(keys.PREFIX)
                if k not in (session, stats) for e in [ref.store.get(k)] if e is not None])
    older, newest = early.store.get(session), ref.store.get(session)
    assert older is not None and newest is not None and older.version < newest.version
    copy.apply([Update(session, older.version, older.as_of, older.data)])
    diffs = differences(ref, copy, models=False)
    assert f"value {session}" in diffs and f"missing {stats}" in diffs
    said = diagnosis(ref, copy, [*diffs, "model ranker.stats: 1 != 2"])
    assert "session: 1 older" in said and "itemstats: 1 missing" in said
    assert said.endswith("other: 1; item counters: 1 events lost, 0 double"), said
