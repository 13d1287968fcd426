"""The storefront's shoppers: preferred categories, device, country, A/B variant and activity."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass
from typing import Final

from recs.synthetic._sampling import cumulative, pick

DEVICES: Final = (("mobile", 0.62), ("desktop", 0.33), ("tablet", 0.05))
COUNTRIES: Final = (("US", 0.35), ("GB", 0.12), ("DE", 0.12), ("FR", 0.1), ("BR", 0.09),
                    ("IN", 0.08), ("JP", 0.07), ("ES", 0.07))
VARIANTS: Final = ("A", "B")


@dataclass(frozen=True, slots=True)
class User:
    """One shopper: one to three preferred categories, a device, a country and a variant."""

    user_id: str
    categories: tuple[int, ...]
    device: str
    country: str
    variant: str


class Shoppers:
    """``n`` users drawn from ``rnd``; categories are picked by ``cat_weight``, and activity
    (how often a user starts a session) is Zipf-like with exponent ``zipf_s``."""

    def __init__(self, rnd: random.Random, n: int, zipf_s: float, cat_weight: list[float],
                 n_categories: int) -> None:
        self.users: list[User] = []
        cat_cum = cumulative(cat_weight)
        for u in range(n):
            k = rnd.choice((1, 1, 2, 2, 3))
            prefs = {min(bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]),
                         n_categories - 1) for _ in range(k)}
            self.users.append(User(f"u{u}", tuple(sorted(prefs)), pick(rnd, DEVICES),
                                   pick(rnd, COUNTRIES), VARIANTS[u % 2]))
        ranks = list(range(n))
        rnd.shuffle(ranks)
        self.activity_cum = cumulative([1.0 / (r + 1) ** zipf_s for r in ranks])
