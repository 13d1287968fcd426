"""Bounded neighbours (``operators/neighbours.py``) against exact counting.

- Below capacity the scores are exact: the similar/bought lists the :class:`ReferenceRunner`
  publishes for a random log equal a naive recount of every documented pair
  (:func:`strategies.naive_pairs`) decayed from scratch, whatever the arrival order of the pairs.
- Above capacity Space-Saving's guarantees hold against the exact decayed weights: at most
  ``capacity`` entries, estimates never below the truth and at most ``total/capacity`` above it,
  every neighbour heavier than ``total/capacity`` kept, and the estimates summing to the total.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import neighbours
from operators.config import EngineConfig, NeighbourConfig, SessionConfig
from operators.decay import log_term
from operators.session import Pair
from schemas.events import Interaction
from state import keys
from stream.reference import ReferenceRunner
from tests.strategies import (
    DAY,
    T0,
    TTL_STEPS,
    Record,
    assert_same_top_k,
    logs,
    naive_neighbour_scores,
    naive_pairs,
)

WIDE = EngineConfig(similar=NeighbourConfig(capacity=100, top_k=100),
                    bought=NeighbourConfig(capacity=100, top_k=100, half_life_s=30 * 86_400.0))
HALF_LIVES = {"similar": WIDE.similar.half_life_s, "bought": WIDE.bought.half_life_s}
DSTS = tuple(f"n{k}" for k in range(10))


def fold(pairs: list[Pair], cfg: NeighbourConfig) -> neighbours.NeighbourState | None:
    state = None
    for p in pairs:
        state = neighbours.step(state, p, cfg)
    return state


# -- exact below capacity ---------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(log=logs(max_size=60, steps=TTL_STEPS))
def test_runner_neighbours_equal_naive_counting(log: list[Record]) -> None:
    runner = ReferenceRunner(WIDE)
    runner.run(log)
    want = naive_neighbour_scores(naive_pairs(log, WIDE.session), HALF_LIVES)
    published = {keys.split_key(k) for k in runner.store.keys(keys.PREFIX)
                 if keys.split_key(k)[0] in (keys.KIND_SIMILAR, keys.KIND_BOUGHT)}
    assert published == set(want)
    for (relation, src), scores in want.items():
        env = runner.store.get(keys.key_for(relation, src))
        assert env is not None
        assert env.data["half_life_s"] == HALF_LIVES[relation]
        assert_same_top_k(env.data["items"], scores, k=100, tol=1e-6)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.builds(Pair, st.just("similar"), st.just("a"), st.sampled_from(DSTS),
                                st.sampled_from((0.1, 0.5, 1.0, 2.0)),
                                st.integers(T0, T0 + 3 * DAY)), max_size=40),
       seed=st.integers(0, 2**32))
def test_below_capacity_order_does_not_matter(pairs: list[Pair], seed: int) -> None:
    cfg = NeighbourConfig(capacity=len(DSTS), top_k=len(DSTS), half_life_s=3_600.0)
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    a, b = fold(pairs, cfg), fold(shuffled, cfg)
    if a is None or b is None:
        assert a is b is None
        return
    assert set(a.scores) == set(b.scores)
    for item, score in a.scores.items():
        assert math.isclose(score, b.scores[item], rel_tol=0, abs_tol=1e-9)
    assert (a.seq, a.as_of) == (b.seq, b.as_of) == (len(pairs), max(p.ts for p in pairs))


# -- Space-Saving above capacity --------------------------------------------------------------

# Skewed streams: a few heavy neighbours and a long tail, with weights decaying over a day.
streams = st.lists(
    st.tuples(st.integers(0, len(DSTS) - 1), st.integers(0, len(DSTS) - 1),
              st.sampled_from((0.1, 0.5, 1.0, 2.0)), st.integers(0, DAY)),
    min_size=1, max_size=80)


@settings(max_examples=120, deadline=None)
@given(stream=streams, capacity=st.integers(1, 5), half_life=st.sampled_from((3_600.0, 1e9)))
def test_space_saving_guarantees(stream: list[tuple[int, int, float, int]], capacity: int,
                                 half_life: float) -> None:
    cfg = NeighbourConfig(capacity=capacity, top_k=capacity, half_life_s=half_life)
    pairs = [Pair("similar", "a", DSTS[min(i, j)], w, T0 + t) for i, j, w, t in stream]
    state = fold(pairs, cfg)
    assert state is not None
    # exact decayed weights, linear space relative to a common reference
    ref = max(log_term(p.weight, p.ts, half_life) for p in pairs)
    exact: dict[str, float] = defaultdict(float)
    for p in pairs:
        exact[p.dst] += math.exp(log_term(p.weight, p.ts, half_life) - ref)
    total = math.fsum(exact.values())
    est = {item: math.exp(score - ref) for item, score in state.scores.items()}
    tol = 1e-9 * total
    share = total / capacity

    assert len(est) <= capacity
    assert math.isclose(math.fsum(est.values()), total, rel_tol=1e-9)  # counts are conserved
    for item, value in est.items():
        assert value >= exact[item] - tol, f"{item} underestimated: {value} < {exact[item]}"
        assert value - exact[item] <= share + tol, f"{item} overestimated beyond total/capacity"
    heavy = {item for item, value in exact.items() if value > share + tol}
    assert heavy <= set(est), f"heavy neighbours {heavy - set(est)} lost (capacity {capacity})"


def test_full_table_replaces_weakest_and_inherits_its_score() -> None:
    cfg = NeighbourConfig(capacity=2, top_k=2, half_life_s=1e12)
    state = fold([Pair("similar", "a", d, w, 0) for d, w in (("x", 3.0), ("y", 1.0),
                                                             ("z", 0.5))], cfg)
    assert state is not None
    assert sorted(state.scores) == ["x", "z"]
    assert math.exp(state.scores["z"]) == pytest.approx(1.5)  # 1.0 inherited + 0.5
    # equal weakest scores: the smaller id goes first, deterministically
    state = fold([Pair("similar", "a", d, 1.0, 0) for d in ("q", "p", "r")], cfg)
    assert state is not None and sorted(state.scores) == ["q", "r"]


def test_top_and_render_ordered_by_score_then_id() -> None:
    cfg = NeighbourConfig(capacity=10, top_k=3, half_life_s=1e12)
    state = fold([Pair("similar", "a", d, w, 0)
                  for d, w in (("c", 1.0), ("b", 1.0), ("a2", 2.0), ("d", 0.5))], cfg)
    assert state is not None
    assert [i for i, _ in neighbours.top(state, 10)] == ["a2", "b", "c", "d"]
    rendered = neighbours.render(state, cfg)
    assert [i for i, _ in rendered["items"]] == ["a2", "b", "c"]
    assert rendered["half_life_s"] == 1e12
    assert (state.seq, state.as_of) == (4, 0)


def test_zero_weight_pairs_are_skipped_or_rejected_by_config() -> None:
    try:
        cfg = EngineConfig(session=SessionConfig(backward_weight=0.0))
    except ValueError as exc:  # rejecting the setting at construction is a fine fix too
        assert "backward_weight" in str(exc)
        return
    runner = ReferenceRunner(cfg)
    runner.run([Interaction("e1", "view", "u", "s", T0, item_id="a"),
                Interaction("e2", "view", "u", "s", T0 + 1, item_id="b")])
    env = runner.store.get(keys.similar_key("a"))
    assert env is not None and [i for i, _ in env.data["items"]] == ["b"]
