"""Weighted sampling helpers shared by the catalogue, the shoppers and the stream run."""

from __future__ import annotations

import itertools
import random


def pick(rnd: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    """A name from ``(name, weight)`` pairs, with probability proportional to its weight."""
    x = rnd.random() * sum(w for _, w in table)
    for name, weight in table:
        x -= weight
        if x < 0:
            return name
    return table[-1][0]


def cumulative(weights: list[float]) -> list[float]:
    """Running sums of ``weights``, for ``bisect`` sampling."""
    return list(itertools.accumulate(weights))
