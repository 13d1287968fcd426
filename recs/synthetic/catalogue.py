"""The storefront's catalogue: categories, items, planted substitutes and complements.

Categories get a name, a base price, a weight, a few brands and two complementary categories.
Items get a category (by weight, at least 5 per category), a brand, price, stock and title, and a
Zipf-like popularity weight. Substitutes are an item's price neighbours in its category;
complements are popular items of its category's complementary categories. Items launched
mid-stream (index ``>= n_items``) are a pure function of the seed and their index.
"""

from __future__ import annotations

import bisect
import math
import random
from typing import Final, NamedTuple

from recs.synthetic._sampling import cumulative
from schemas.events import ItemUpsert

DEFAULT_START_TS: Final = 1_704_067_200_000  # 2024-01-01T00:00:00Z
CATEGORY_NAMES: Final = (
    "running shoes", "sneakers", "jackets", "jeans", "t-shirts", "dresses", "backpacks",
    "watches", "sunglasses", "laptops", "laptop bags", "monitors", "keyboards", "mice",
    "headphones", "phones", "phone cases", "chargers", "tablets", "cameras", "lenses", "tripods",
    "coffee makers", "coffee beans", "mugs", "cookware", "knives", "cutting boards", "blenders",
    "yoga mats", "dumbbells", "water bottles", "tents", "sleeping bags", "lamps", "bedding",
    "pillows", "board games", "books", "toys",
)
ADJECTIVES: Final = (
    "Classic", "Pro", "Ultra", "Lite", "Eco", "Urban", "Trail", "Studio", "Compact", "Premium",
    "Essential", "Nova", "Flex", "Prime", "Vintage", "Sport",
)
_SYLLABLES: Final = ("ka", "lo", "mi", "ra", "ven", "tor", "sa", "lin", "dor", "fe", "zu", "mar",
                     "no", "vik", "el", "bra", "ti", "qua", "sol", "ner")


class NewItem(NamedTuple):
    """An item launched mid-stream: its upsert and its planted neighbours."""

    upsert: ItemUpsert
    substitutes: tuple[int, ...]
    complements: tuple[int, ...]
    category: int


class Catalogue:
    """Categories and items drawn from ``rnd`` (categories first, then items).

    Items are indexed ``0..n_items-1`` (ids ``i<index>``); the per-item lists (``ids``, ``cat``,
    ``price``, ``stock``, ``subs``, ``comps``, ``weight``...) are the initial catalogue, which a
    stream run copies before changing stock or launching items.
    """

    def __init__(self, rnd: random.Random, seed: int, n_items: int, n_categories: int,
                 zipf_s: float) -> None:
        self.seed = seed
        self.n_items = n_items
        self.n_categories = n_categories
        self._build_categories(rnd, n_categories)
        self._build_items(rnd, n_items, zipf_s)
        self._new_cache: dict[int, NewItem] = {}

    # --- construction ---------------------------------------------------------------------------

    def _build_categories(self, rnd: random.Random, n: int) -> None:
        names = [CATEGORY_NAMES[i % len(CATEGORY_NAMES)] +
                 (f" {i // len(CATEGORY_NAMES) + 1}" if i >= len(CATEGORY_NAMES) else "")
                 for i in range(n)]
        self.category_names: list[str] = names
        self.cat_slug = [name.replace(" ", "-") for name in names]
        self.cat_base_price = [round(math.exp(rnd.uniform(math.log(8), math.log(900))), 2)
                               for _ in range(n)]
        self.cat_weight = [rnd.lognormvariate(0, 0.6) for _ in range(n)]
        self.cat_brands: list[list[str]] = []
        for _ in range(n):
            brands = {"".join(rnd.choice(_SYLLABLES) for _ in range(rnd.randint(2, 3))).title()
                      for _ in range(rnd.randint(4, 10))}
            self.cat_brands.append(sorted(brands))
        others = list(range(n))
        self.cat_complements: list[tuple[int, ...]] = []
        for c in range(n):
            pool = [o for o in others if o != c]
            self.cat_complements.append(tuple(rnd.sample(pool, min(2, len(pool)))))

    def _build_items(self, rnd: random.Random, n: int, zipf_s: float) -> None:
        cats = list(range(self.n_categories))
        cat_cum = cumulative(self.cat_weight)
        # every category gets at least 5 items; the rest follow the category weights
        item_cat = [c for c in cats for _ in range(5)]
        item_cat += [bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]) for _ in
                     range(n - len(item_cat))]
        item_cat = [min(c, self.n_categories - 1) for c in item_cat]
        rnd.shuffle(item_cat)
        ranks = list(range(n))
        rnd.shuffle(ranks)
        self.weight = [1.0 / (r + 1) ** zipf_s for r in ranks]
        self.launch_weight = 1.0 / (max(1, n // 50) + 1) ** zipf_s  # a new item starts top-2%
        self.ids = [f"i{i}" for i in range(n)]
        self.cat = item_cat
        self.price: list[float] = []
        self.stock: list[int] = []
        self.brand: list[str] = []
        self.title: list[str] = []
        for i in range(n):
            self._add_item_attributes(rnd, i, item_cat[i])
        self.by_cat: list[list[int]] = [[] for _ in cats]
        for i, c in enumerate(item_cat):
            self.by_cat[c].append(i)
        # substitutes: price neighbours within the category
        self.subs: list[tuple[int, ...]] = [()] * n
        self.cat_by_price: list[list[int]] = []
        for c in cats:
            members = sorted(self.by_cat[c], key=lambda i: (self.price[i], i))
            self.cat_by_price.append(members)
            for pos, i in enumerate(members):
                self.subs[i] = self._price_neighbours(members, pos, exclude=i)
        # complements: popular items of the complementary categories
        self.cat_cum = [cumulative([self.weight[i] for i in self.by_cat[c]]) for c in cats]
        self.comps: list[tuple[int, ...]] = [()] * n
        for i in range(n):
            self.comps[i] = self._draw_complements(rnd, self.cat[i])

    def _add_item_attributes(self, rnd: random.Random, i: int, cat: int) -> None:
        brand = rnd.choice(self.cat_brands[cat])
        price = round(self.cat_base_price[cat] * rnd.lognormvariate(0, 0.45), 2)
        stock = 0 if rnd.random() < 0.05 else int(rnd.paretovariate(1.2) * 20)
        noun = self.category_names[cat].rstrip("s0123456789 ").title()
        self.brand.append(brand)
        self.price.append(max(0.5, price))
        self.stock.append(min(stock, 10_000))
        self.title.append(f"{brand} {rnd.choice(ADJECTIVES)} {noun} {rnd.randint(100, 999)}")

    def _price_neighbours(self, members: list[int], pos: int, exclude: int) -> tuple[int, ...]:
        lo, hi = max(0, pos - 2), min(len(members), pos + 3)
        return tuple(m for m in members[lo:hi] if m != exclude)

    def _draw_complements(self, rnd: random.Random, cat: int) -> tuple[int, ...]:
        out: list[int] = []
        for other in self.cat_complements[cat]:
            members, cum = self.by_cat[other], self.cat_cum[other]
            for _ in range(2):
                pick = members[bisect.bisect(cum, rnd.random() * cum[-1])]
                if pick not in out:
                    out.append(pick)
        return tuple(out)

    # --- items as upserts -----------------------------------------------------------------------

    def upsert(self, i: int, ts: int, stock: int | None = None) -> ItemUpsert:
        """Item ``i`` (initial or launched) as an upsert stamped ``ts``, with ``stock`` if given."""
        if i >= self.n_items:
            base = self.new_item(i).upsert
            return ItemUpsert(base.item_id, ts, base.title, base.category, base.brand,
                              base.price, base.stock if stock is None else stock, base.tags)
        cat = self.cat[i]
        return ItemUpsert(item_id=self.ids[i], ts=ts, title=self.title[i],
                          category=self.cat_slug[cat], brand=self.brand[i],
                          price=self.price[i], stock=self.stock[i] if stock is None else stock)

    def new_item(self, i: int) -> NewItem:
        """Item ``i >= n_items``, launched mid-stream; a pure function of the seed and ``i``."""
        cached = self._new_cache.get(i)
        if cached is not None:
            return cached
        rnd = random.Random(f"storefront:{self.seed}:new:{i}")
        cat_cum = cumulative(self.cat_weight)
        cat = min(bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]), self.n_categories - 1)
        brand = rnd.choice(self.cat_brands[cat])
        price = max(0.5, round(self.cat_base_price[cat] * rnd.lognormvariate(0, 0.45), 2))
        noun = self.category_names[cat].rstrip("s0123456789 ").title()
        upsert = ItemUpsert(item_id=f"i{i}", ts=DEFAULT_START_TS,
                            title=f"{brand} New {noun} {rnd.randint(100, 999)}",
                            category=self.cat_slug[cat], brand=brand, price=price,
                            stock=int(rnd.paretovariate(1.2) * 20) + 5, tags=("new",))
        members = self.cat_by_price[cat]
        keys = [self.price[m] for m in members]
        pos = bisect.bisect(keys, price)
        subs = tuple(members[max(0, pos - 2):pos + 2])
        comps = self._draw_complements(rnd, cat)
        out = self._new_cache[i] = NewItem(upsert, subs, comps, cat)
        return out
