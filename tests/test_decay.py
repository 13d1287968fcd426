"""Forward decay in log space (``operators/decay.py``) against direct recomputation.

The reference is the definition itself: ``S(now) = Σ wᵢ·exp(-λ(now - tᵢ))`` summed with
``math.fsum``, and ``L = log Σ wᵢ·exp(λ tᵢ)`` computed with a max-shift.
"""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import decay
from operators.decay import NEG_INF
from tests.strategies import DAY, T0, naive_log_sum

HALF_LIVES = (60.0, 3_600.0, 6 * 3_600.0, 30 * 86_400.0)
terms = st.lists(
    st.tuples(st.floats(0.01, 100.0), st.integers(T0, T0 + 60 * DAY)), min_size=1, max_size=30)
examples = settings(max_examples=80, deadline=None)


def fold(ts_terms: list[tuple[float, int]], half_life_s: float) -> float:
    score = NEG_INF
    for w, ts in ts_terms:
        score = decay.add(score, w, ts, half_life_s)
    return score


def test_rate_is_ln2_over_half_life() -> None:
    assert decay.rate(3_600.0) == pytest.approx(math.log(2) / 3_600.0)
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="half_life_s must be > 0"):
            decay.rate(bad)


def test_one_half_life_halves_the_score() -> None:
    score = decay.add(NEG_INF, 4.0, T0, 3_600.0)
    assert decay.current(score, T0, 3_600.0) == pytest.approx(4.0)
    assert decay.current(score, T0 + 3_600_000, 3_600.0) == pytest.approx(2.0)
    assert decay.current(score, T0 + 2 * 3_600_000, 3_600.0) == pytest.approx(1.0)


def test_empty_score_is_zero_and_neutral() -> None:
    assert decay.current(NEG_INF, T0, 60.0) == 0.0
    assert decay.logaddexp(NEG_INF, 1.5) == 1.5
    assert decay.logaddexp(1.5, NEG_INF) == 1.5
    assert decay.logaddexp(NEG_INF, NEG_INF) == NEG_INF


def test_no_overflow_at_realistic_epochs() -> None:
    # exp(λ·t) alone overflows for a 1-minute half-life at 2023 epoch ms; the log form does not.
    with pytest.raises(OverflowError):
        math.exp(decay.rate(60.0) * T0 / 1000.0)
    score = fold([(1.0, T0), (1.0, T0 + 60_000)], 60.0)
    assert math.isfinite(score)
    assert decay.current(score, T0 + 60_000, 60.0) == pytest.approx(1.5)


@examples
@given(ts_terms=terms, half_life=st.sampled_from(HALF_LIVES))
def test_log_score_equals_naive_recompute(ts_terms: list[tuple[float, int]],
                                          half_life: float) -> None:
    got = fold(ts_terms, half_life)
    assert got == pytest.approx(naive_log_sum(ts_terms, half_life), abs=1e-9, rel=1e-12)


@examples
@given(ts_terms=terms, half_life=st.sampled_from(HALF_LIVES[1:]), seed=st.integers(0, 2**32))
def test_order_of_events_does_not_matter(ts_terms: list[tuple[float, int]], half_life: float,
                                         seed: int) -> None:
    shuffled = list(ts_terms)
    random.Random(seed).shuffle(shuffled)
    assert fold(shuffled, half_life) == pytest.approx(fold(ts_terms, half_life),
                                                      abs=1e-9, rel=1e-12)


@examples
@given(ts_terms=terms, half_life=st.sampled_from(HALF_LIVES[1:]),
       later=st.integers(0, 10 * DAY))
def test_current_equals_direct_decayed_sum(ts_terms: list[tuple[float, int]], half_life: float,
                                           later: int) -> None:
    now = max(ts for _, ts in ts_terms) + later
    lam = math.log(2) / half_life
    direct = math.fsum(w * math.exp(-lam * (now - ts) / 1000.0) for w, ts in ts_terms)
    assert decay.current(fold(ts_terms, half_life), now, half_life) == pytest.approx(
        direct, rel=1e-9, abs=1e-300)


@examples
@given(ts_terms=terms, half_life=st.sampled_from(HALF_LIVES))
def test_adding_never_lowers_the_score(ts_terms: list[tuple[float, int]],
                                       half_life: float) -> None:
    score = NEG_INF
    for w, ts in ts_terms:
        new = decay.add(score, w, ts, half_life)
        assert new >= score
        score = new


@examples
@given(a=st.floats(-1e4, 1e4), b=st.floats(-1e4, 1e4))
def test_logaddexp_is_symmetric_and_exact(a: float, b: float) -> None:
    assert decay.logaddexp(a, b) == decay.logaddexp(b, a)
    top = max(a, b)
    want = top + math.log(math.fsum([math.exp(a - top), math.exp(b - top)]))
    assert decay.logaddexp(a, b) == pytest.approx(want, abs=1e-9)


def test_ranks_fixed_at_write_time() -> None:
    """Two items' order by ``L`` equals their order by decayed score at any later time."""
    rnd = random.Random(7)
    hl = 3_600.0
    for _ in range(200):
        a = fold([(rnd.uniform(0.1, 5), T0 + rnd.randrange(DAY)) for _ in range(5)], hl)
        b = fold([(rnd.uniform(0.1, 5), T0 + rnd.randrange(DAY)) for _ in range(5)], hl)
        now = T0 + DAY + rnd.randrange(DAY)
        assert (a > b) == (decay.current(a, now, hl) > decay.current(b, now, hl)) or a == b
