"""Rates, confidence intervals, lift and p-values for A/B tests, with ``math`` only.

Methods (one each, chosen for being well behaved at the small rates of CTR and conversion):

* **Rate CI**: the Wilson score interval (Wilson 1927). Unlike the Wald interval it never leaves
  [0, 1] and keeps its coverage near 0 (Newcombe 1998, method 3).
* **Relative lift** ``rate_t / rate_c - 1`` with a CI from the delta method on the log of the
  ratio (Katz et al. 1978): ``se(log RR) = sqrt(1/x_t - 1/n_t + 1/x_c - 1/n_c)``, the interval
  is ``exp(log RR ± z·se) - 1``. It needs a success in both groups; otherwise it is ``None``.
* **p-value**: the two-sided, pooled two-proportion z-test (equal to Pearson's chi-square test
  of the 2x2 table without continuity correction, ``z² = χ²``).
* **z of a confidence level**: Acklam's rational approximation of the inverse normal CDF
  (relative error < 1.15e-9), polished by one Halley step with ``math.erfc`` (then accurate to
  about 1e-15).

Undefined quantities (no trials, no successes in the control, ...) are ``None``, never a
division by zero; :func:`fmt_rate` and friends print them as ``n/a``.

>>> round(z_for_confidence(0.95), 6)
1.959964
>>> p = proportion(81, 263)
>>> round(p.rate, 4), round(p.ci.low, 4), round(p.ci.high, 4)
(0.308, 0.2553, 0.3662)
>>> c = compare(proportion(100, 1000), proportion(150, 1000), alpha=0.05)
>>> round(c.lift, 3), round(c.lift_ci.low, 3), round(c.lift_ci.high, 3)
(0.5, 0.183, 0.902)
>>> round(c.p_value, 5), c.significant
(0.00072, True)
>>> compare(proportion(0, 0), proportion(3, 10), alpha=0.05).p_value is None
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

_SQRT2: Final = math.sqrt(2.0)
_SQRT2PI: Final = math.sqrt(2.0 * math.pi)

# Acklam's coefficients (P. J. Acklam, "An algorithm for computing the inverse normal
# cumulative distribution function", 2003).
_A: Final = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
             1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B: Final = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
             6.680131188771972e01, -1.328068155288572e01)
_C: Final = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
             -2.549732539343734e00, 4.374664141464968e00, 2.938163982698783e00)
_D: Final = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00,
             3.754408661907416e00)
_P_LOW: Final = 0.02425


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_list(self) -> list[float]:
        return [self.low, self.high]


@dataclass(frozen=True, slots=True)
class Proportion:
    """``successes`` out of ``trials``; ``rate`` and ``ci`` are ``None`` without trials."""

    successes: int
    trials: int
    rate: float | None
    ci: Interval | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """A treatment against the control: relative lift, its CI, the p-value and the verdict."""

    lift: float | None
    lift_ci: Interval | None
    p_value: float | None
    significant: bool | None


def norm_cdf(x: float) -> float:
    """Standard normal CDF via ``erfc`` (accurate in both tails).

    >>> norm_cdf(0.0)
    0.5
    """
    return 0.5 * math.erfc(-x / _SQRT2)


def norm_ppf(p: float) -> float:
    """Inverse of :func:`norm_cdf` for ``0 < p < 1`` (Acklam + one Halley step).

    >>> round(norm_ppf(0.975), 9), round(norm_ppf(0.025), 9)
    (1.959963985, -1.959963985)
    >>> norm_ppf(1.0)
    Traceback (most recent call last):
    ...
    ValueError: norm_ppf.p: expected 0 < p < 1, got 1.0
    """
    if not 0.0 < p < 1.0:  # also rejects NaN
        raise ValueError(f"norm_ppf.p: expected 0 < p < 1, got {p!r}")
    if p < _P_LOW:
        q = math.sqrt(-2.0 * math.log(p))
        x = _tail(q)
    elif p <= 1.0 - _P_LOW:
        q = p - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        den = ((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0
        x = num / den
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -_tail(q)
    # One Halley step on f(x) = cdf(x) - p brings the error down to machine precision; above
    # the median f is computed as (1 - p) - sf(x), which does not cancel near p = 1.
    if x * x > 1400.0:  # p < 1e-300: exp(x²/2) would overflow; Acklam alone is within 1e-9
        return x
    e = norm_cdf(x) - p if p <= 0.5 else (1.0 - p) - 0.5 * math.erfc(x / _SQRT2)
    u = e * _SQRT2PI * math.exp(x * x / 2.0)
    return x - u / (1.0 + x * u / 2.0)


def _tail(q: float) -> float:
    num = ((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5]
    den = (((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0
    return num / den


def z_for_confidence(confidence: float) -> float:
    """The two-sided critical value: ``z`` with ``P(|Z| <= z) = confidence``."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"z_for_confidence.confidence: expected 0 < confidence < 1, "
                         f"got {confidence!r}")
    return norm_ppf(0.5 + confidence / 2.0)


def _check_counts(step: str, successes: int, trials: int) -> None:
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"{step}: expected 0 <= successes <= trials, got successes="
                         f"{successes!r}, trials={trials!r}")


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval for a binomial proportion; ``None`` without trials.

    >>> iv = wilson_interval(0, 20)
    >>> iv.low, round(iv.high, 4)
    (0.0, 0.1611)
    >>> wilson_interval(0, 0) is None
    True
    """
    _check_counts("wilson_interval", successes, trials)
    if trials == 0:
        return None
    z = z_for_confidence(confidence)
    n = float(trials)
    rate = successes / n
    z2n = z * z / n
    center = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(rate * (1.0 - rate) / n + z2n / (4.0 * n))
    low = 0.0 if successes == 0 else min(rate, max(0.0, center - half))
    high = 1.0 if successes == trials else max(rate, min(1.0, center + half))
    return Interval(low, high)


def proportion(successes: int, trials: int, confidence: float = 0.95) -> Proportion:
    """The rate with its Wilson interval.

    >>> proportion(3, 0)
    Traceback (most recent call last):
    ...
    ValueError: proportion: expected 0 <= successes <= trials, got successes=3, trials=0
    """
    _check_counts("proportion", successes, trials)
    rate = successes / trials if trials else None
    return Proportion(successes, trials, rate, wilson_interval(successes, trials, confidence))


def relative_lift(control: Proportion, treatment: Proportion,
                  confidence: float = 0.95) -> tuple[float | None, Interval | None]:
    """``treatment / control - 1`` and its Katz log-ratio interval.

    The lift is ``None`` when either group has no trials or the control has no successes; the
    interval is ``None`` also when the treatment has no successes (the log ratio is infinite).

    >>> relative_lift(proportion(0, 50), proportion(5, 50))
    (None, None)
    >>> relative_lift(proportion(5, 50), proportion(0, 50))
    (-1.0, None)
    """
    if control.rate is None or treatment.rate is None or control.successes == 0:
        return None, None
    lift = treatment.rate / control.rate - 1.0
    if treatment.successes == 0:
        return lift, None
    se = math.sqrt(1.0 / treatment.successes - 1.0 / treatment.trials
                   + 1.0 / control.successes - 1.0 / control.trials)
    z = z_for_confidence(confidence)
    log_rr = math.log(treatment.rate) - math.log(control.rate)
    low = min(lift, math.expm1(log_rr - z * se))
    high = max(lift, math.expm1(log_rr + z * se))
    return lift, Interval(low, high)


def two_proportion_p_value(a: Proportion, b: Proportion) -> float | None:
    """Two-sided p-value of the pooled two-proportion z-test; ``None`` if a group is empty.

    When the pooled rate is 0 or 1 both groups agree exactly and the p-value is 1.

    >>> two_proportion_p_value(proportion(0, 40), proportion(0, 60))
    1.0
    """
    if a.trials == 0 or b.trials == 0:
        return None
    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    var = pooled * (1.0 - pooled) * (1.0 / a.trials + 1.0 / b.trials)
    if var <= 0.0:
        return 1.0
    z = (a.successes / a.trials - b.successes / b.trials) / math.sqrt(var)
    return min(1.0, math.erfc(abs(z) / _SQRT2))


def compare(control: Proportion, treatment: Proportion, *, alpha: float) -> Comparison:
    """Treatment vs control: lift with a ``1 - alpha`` CI, p-value, ``p < alpha``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"compare.alpha: expected 0 < alpha < 1, got {alpha!r}")
    lift, lift_ci = relative_lift(control, treatment, 1.0 - alpha)
    p_value = two_proportion_p_value(control, treatment)
    significant = None if p_value is None else p_value < alpha
    return Comparison(lift, lift_ci, p_value, significant)


def fmt_rate(p: Proportion) -> str:
    """``12.34% [11.20, 13.50]`` or ``n/a``.

    >>> fmt_rate(proportion(1, 8)), fmt_rate(proportion(0, 0))
    ('12.50% [2.24, 47.09]', 'n/a')
    """
    if p.rate is None or p.ci is None:
        return "n/a"
    return f"{100 * p.rate:.2f}% [{100 * p.ci.low:.2f}, {100 * p.ci.high:.2f}]"


def fmt_lift(c: Comparison) -> str:
    """``+50.0% [+18.3, +90.2]``; ``n/a`` for what is undefined."""
    if c.lift is None:
        return "n/a"
    ci = "n/a" if c.lift_ci is None else \
        f"{100 * c.lift_ci.low:+.1f}, {100 * c.lift_ci.high:+.1f}"
    return f"{100 * c.lift:+.1f}% [{ci}]"


def fmt_p(p_value: float | None) -> str:
    """Four decimals, scientific below 0.001, ``<1e-10`` or ``n/a``.

    >>> fmt_p(0.04512), fmt_p(4.6e-6), fmt_p(1e-12), fmt_p(None)
    ('0.0451', '4.6e-06', '<1e-10', 'n/a')
    """
    if p_value is None:
        return "n/a"
    if p_value < 1e-10:
        return "<1e-10"
    return f"{p_value:.1e}" if p_value < 1e-3 else f"{p_value:.4f}"
