"""Forward decay in log space (Cormode et al., "Forward Decay", ICDE 2009).

A decayed sum ``S(now) = Σ wᵢ·exp(−λ(now − tᵢ))`` is stored as the time-invariant
``L = log Σ wᵢ·exp(λ·tᵢ)``; then ``S(now) = exp(L − λ·now)``. Adding an event is one
``logaddexp``, never a rescan, and because every score shares the same landmark (the epoch),
ranks computed from ``L`` never change with time: ordering is decided at write time and stays
valid. Working in logs keeps ``exp(λ·t)`` from overflowing for any realistic time span.

>>> hl = 3600.0
>>> a = add(NEG_INF, 1.0, 0, hl)          # one event at t = 0
>>> b = add(a, 1.0, 3_600_000, hl)        # another one hour (= one half-life) later
>>> round(current(b, 3_600_000, hl), 6)   # 0.5 + 1
1.5
"""

from __future__ import annotations

import math
from typing import Final

NEG_INF: Final = float("-inf")
LN2: Final = math.log(2.0)


def rate(half_life_s: float) -> float:
    """λ in 1/seconds for a half-life in seconds."""
    if half_life_s <= 0:
        raise ValueError(f"operators.decay: half_life_s must be > 0, got {half_life_s!r}")
    return LN2 / half_life_s


def log_term(weight: float, ts_ms: int, half_life_s: float) -> float:
    """``log(w·exp(λ·t))`` for one event of weight ``w > 0`` at event time ``ts_ms``."""
    return math.log(weight) + rate(half_life_s) * (ts_ms / 1000.0)


def logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` without overflow."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a < b:
        a, b = b, a
    return a + math.log1p(math.exp(b - a))


def add(log_score: float, weight: float, ts_ms: int, half_life_s: float) -> float:
    return logaddexp(log_score, log_term(weight, ts_ms, half_life_s))


def current(log_score: float, now_ms: int, half_life_s: float) -> float:
    """The decayed sum as seen at ``now_ms``."""
    if log_score == NEG_INF:
        return 0.0
    return math.exp(log_score - rate(half_life_s) * (now_ms / 1000.0))
