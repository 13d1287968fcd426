"""recs.abtest.stats: known values, references computed another way, properties, coverage."""

from __future__ import annotations

import math
import random
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recs.abtest import stats
from recs.abtest.stats import Interval, compare, proportion

CONFIDENCES = st.sampled_from([0.8, 0.9, 0.95, 0.99, 0.999])


@st.composite
def counts(draw: st.DrawFn, max_n: int = 5_000) -> tuple[int, int]:
    n = draw(st.integers(0, max_n))
    return draw(st.integers(0, n)), n


# --- the inverse normal -------------------------------------------------------------------

@pytest.mark.parametrize(("p", "z"), [
    (0.5, 0.0),
    (0.975, 1.959963984540054),  # the 95% two-sided critical value
    (0.995, 2.5758293035489004),
    (0.95, 1.6448536269514722),
    (0.9, 1.2815515655446004),
    (0.001, -3.090232306167813),
    (1e-10, -6.361340902404056),
])
def test_norm_ppf_textbook_values(p: float, z: float) -> None:
    assert stats.norm_ppf(p) == pytest.approx(z, rel=1e-12, abs=1e-12)


@given(st.floats(1e-300, 1.0, exclude_max=True))
def test_norm_ppf_matches_the_standard_library(p: float) -> None:
    """NormalDist.inv_cdf uses Wichura's AS241, an independent algorithm."""
    assert stats.norm_ppf(p) == pytest.approx(NormalDist().inv_cdf(p), rel=1e-12, abs=1e-12)


@given(st.floats(1e-12, 1 - 1e-12))
def test_norm_ppf_inverts_the_cdf(p: float) -> None:
    assert stats.norm_cdf(stats.norm_ppf(p)) == pytest.approx(p, rel=1e-10, abs=1e-16)


@given(st.floats(1e-15, 0.5))
def test_norm_ppf_is_antisymmetric(p: float) -> None:
    q = 1.0 - p
    exact_p = 1.0 - q  # so that exact_p and q add up to 1 exactly
    assert stats.norm_ppf(exact_p) == pytest.approx(-stats.norm_ppf(q), rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5, math.nan])
def test_norm_ppf_rejects_values_outside_the_open_interval(bad: float) -> None:
    with pytest.raises(ValueError, match=r"norm_ppf\.p: expected 0 < p < 1, got"):
        stats.norm_ppf(bad)


def test_z_for_confidence() -> None:
    assert stats.z_for_confidence(0.95) == pytest.approx(1.959963984540054, rel=1e-12)
    assert stats.z_for_confidence(0.99) == pytest.approx(2.5758293035489004, rel=1e-12)
    with pytest.raises(ValueError, match=r"z_for_confidence\.confidence.*got 1\.0"):
        stats.z_for_confidence(1.0)


# --- Wilson --------------------------------------------------------------------------------

@pytest.mark.parametrize(("x", "n", "low", "high"), [
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score, no CC)
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(x: int, n: int, low: float, high: float) -> None:
    ci = stats.wilson_interval(x, n, 0.95)
    assert ci is not None
    assert (round(ci.low, 4), round(ci.high, 4)) == (low, high)


@given(counts(), CONFIDENCES)
def test_wilson_bounds_are_where_the_score_test_is_at_z(xn: tuple[int, int],
                                                       confidence: float) -> None:
    """Reference: the Wilson interval is {p0 : |p̂ - p0| <= z·sqrt(p0(1-p0)/n)}."""
    x, n = xn
    ci = stats.wilson_interval(x, n, confidence)
    if n == 0:
        assert ci is None
        return
    assert ci is not None
    z, rate = stats.z_for_confidence(confidence), x / n
    for bound, at_edge in ((ci.low, x == 0), (ci.high, x == n)):
        if at_edge:
            continue
        score = abs(rate - bound) / math.sqrt(bound * (1 - bound) / n)
        assert score == pytest.approx(z, rel=1e-6)


@given(counts(), CONFIDENCES)
def test_wilson_contains_the_rate_and_stays_in_unit_interval(xn: tuple[int, int],
                                                             confidence: float) -> None:
    x, n = xn
    p = proportion(x, n, confidence)
    if n == 0:
        assert p.rate is None and p.ci is None
        return
    assert p.rate is not None and p.ci is not None
    assert 0.0 <= p.ci.low <= p.rate <= p.ci.high <= 1.0


def test_wilson_coverage_is_near_nominal() -> None:
    """Seeded simulation: 2,000 samples of n=200 at p=0.1 (Wilson is known to be ~95%)."""
    rng = random.Random(20261101)
    hits = 0
    for _ in range(2_000):
        x = sum(rng.random() < 0.1 for _ in range(200))
        ci = stats.wilson_interval(x, 200)
        assert ci is not None
        hits += ci.contains(0.1)
    assert 0.93 <= hits / 2_000 <= 0.97


@pytest.mark.parametrize(("x", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_counts_are_validated_with_their_values(x: int, n: int) -> None:
    with pytest.raises(ValueError, match=rf"successes={x}, trials={n}"):
        proportion(x, n)


# --- the two-proportion z-test -------------------------------------------------------------

def chi_square_p(a: int, n1: int, c: int, n2: int) -> float:
    """Reference: Pearson's chi-square of the 2x2 table (no continuity correction), 1 df."""
    b, d = n1 - a, n2 - c
    n = n1 + n2
    chi2 = n * (a * d - b * c) ** 2 / (n1 * n2 * (a + c) * (b + d))
    return math.erfc(math.sqrt(chi2 / 2))


def test_z_test_textbook_value() -> None:
    # 10% of 1,000 vs 15% of 1,000: z = 0.05 / sqrt(0.125·0.875·0.002) = 3.3806,
    # p = 7.2323e-4 (scipy.stats.chi2_contingency(correction=False) gives 7.232327164e-4)
    p = stats.two_proportion_p_value(proportion(100, 1000), proportion(150, 1000))
    assert p == pytest.approx(7.232327164301936e-4, rel=1e-9)


@given(counts(), counts())
def test_z_test_equals_the_chi_square_test(a: tuple[int, int], b: tuple[int, int]) -> None:
    p = stats.two_proportion_p_value(proportion(*a), proportion(*b))
    (x1, n1), (x2, n2) = a, b
    if n1 == 0 or n2 == 0:
        assert p is None
    elif x1 + x2 in (0, n1 + n2):
        assert p == 1.0
    else:
        assert p == pytest.approx(chi_square_p(x1, n1, x2, n2), rel=1e-6, abs=1e-300)


@given(counts(), counts())
def test_p_value_is_a_probability_and_symmetric(a: tuple[int, int], b: tuple[int, int]) -> None:
    pa, pb = proportion(*a), proportion(*b)
    p, q = stats.two_proportion_p_value(pa, pb), stats.two_proportion_p_value(pb, pa)
    assert p == q
    if p is not None:
        assert 0.0 <= p <= 1.0


def test_z_test_false_positive_rate_is_near_alpha() -> None:
    """Seeded A/A simulation: 1,000 tests of 500 vs 500 at 20%; about 5% are significant."""
    rng = random.Random(7)
    positives = 0
    for _ in range(1_000):
        a = sum(rng.random() < 0.2 for _ in range(500))
        b = sum(rng.random() < 0.2 for _ in range(500))
        positives += bool(compare(proportion(a, 500), proportion(b, 500), alpha=0.05).significant)
    assert 0.03 <= positives / 1_000 <= 0.07


# --- relative lift -------------------------------------------------------------------------

def test_lift_textbook_value() -> None:
    # Katz log interval by hand: RR = 1.5, se = sqrt(1/150 - 1/1000 + 1/100 - 1/1000) = 0.1211060,
    # exp(0.4054651 ± 1.9599640·0.1211060) = exp(0.4054651 ± 0.2373632) = [1.183057, 1.901853]
    lift, ci = stats.relative_lift(proportion(100, 1000), proportion(150, 1000))
    assert lift == pytest.approx(0.5)
    assert ci is not None
    assert ci.low == pytest.approx(0.183057, abs=2e-6)
    assert ci.high == pytest.approx(0.901853, abs=2e-6)


@given(counts(), counts(), CONFIDENCES)
def test_lift_ci_contains_the_lift(c: tuple[int, int], t: tuple[int, int],
                                   confidence: float) -> None:
    lift, ci = stats.relative_lift(proportion(*c), proportion(*t), confidence)
    if c[1] == 0 or t[1] == 0 or c[0] == 0:
        assert (lift, ci) == (None, None)
        return
    assert lift is not None and lift >= -1.0
    if t[0] == 0:
        assert lift == -1.0 and ci is None
    else:
        assert ci is not None and ci.low <= lift <= ci.high and ci.low > -1.0


@given(counts(), counts())
def test_lift_ci_inverts_when_the_groups_swap(c: tuple[int, int], t: tuple[int, int]) -> None:
    """The ratio's interval for B/A is the reciprocal of the one for A/B."""
    _, ab = stats.relative_lift(proportion(*c), proportion(*t))
    _, ba = stats.relative_lift(proportion(*t), proportion(*c))
    assert (ab is None) == (ba is None)  # both need a success in both groups
    if ab is None or ba is None:
        return
    assert 1 + ba.low == pytest.approx(1 / (1 + ab.high), rel=1e-9)
    assert 1 + ba.high == pytest.approx(1 / (1 + ab.low), rel=1e-9)


# --- compare and formatting ----------------------------------------------------------------

@given(counts(), counts(), st.sampled_from([0.01, 0.05, 0.1]))
def test_compare_is_significant_iff_p_below_alpha(c: tuple[int, int], t: tuple[int, int],
                                                  alpha: float) -> None:
    out = compare(proportion(*c), proportion(*t), alpha=alpha)
    if out.p_value is None:
        assert out.significant is None
    else:
        assert out.significant == (out.p_value < alpha)


def test_compare_rejects_a_bad_alpha() -> None:
    with pytest.raises(ValueError, match=r"compare\.alpha.*got 1\.5"):
        compare(proportion(1, 2), proportion(1, 2), alpha=1.5)


def test_zero_counts_print_as_not_available() -> None:
    empty = proportion(0, 0)
    out = compare(empty, proportion(3, 10), alpha=0.05)
    assert (out.lift, out.lift_ci, out.p_value, out.significant) == (None, None, None, None)
    assert stats.fmt_rate(empty) == "n/a"
    assert stats.fmt_lift(out) == "n/a"
    assert stats.fmt_p(None) == "n/a"
    no_ci = compare(proportion(5, 50), proportion(0, 50), alpha=0.05)
    assert stats.fmt_lift(no_ci) == "-100.0% [n/a]"
    assert stats.fmt_p(1e-12) == "<1e-10"
    assert Interval(0.1, 0.2).as_list() == [0.1, 0.2]
