"""A deterministic synthetic storefront: catalogue, shoppers and their sessions as events.

Everything follows from the seed: the same ``Storefront(seed=...)`` yields the same catalogue and,
call after call, the same event stream. The structure is planted so a good recommender can find it
and tests can check that it does:

* **popularity** is Zipf-like (item of popularity rank ``r`` has weight ``1 / (r + 1) ** zipf_s``);
* **substitutes**: each item's price neighbours in its category (:meth:`Storefront.substitutes`);
  within a session the next item is often a substitute of the previous one;
* **complements**: a few popular items of the category's complementary categories
  (:meth:`Storefront.complements`); after an add-to-cart shoppers often look at, cart and buy a
  complement, so complements co-occur in purchases;
* **funnels**: view -> click -> add_to_cart -> purchase at the rates of :class:`Funnel`; items out
  of stock are viewed but never carted;
* **users** have one to three preferred categories, a device and a country;
* **new items** launch mid-stream (:meth:`Storefront.stream` emits their :class:`ItemUpsert` before
  any event mentions them), and items that sell out get a ``stock=0`` upsert, then a restock;
* **impressions** (a recommendation widget's item list, with ``rec_id`` and ``variant``) appear
  after some views; a click on a shown item carries the impression's ``rec_id``;
* **time** is event time: sessions arrive as a Poisson process sized so the stream runs at
  ``rate`` events per second of event time (once sessions overlap as in steady state, after
  about one session length, a minute or two; the stream starts thinner), with seconds between a
  session's events, and the stream is emitted in time order.

>>> shop = Storefront(seed=7, n_items=200, n_users=50, n_categories=5)
>>> events = list(shop.events(1000))
>>> events == list(shop.events(1000)), len(shop.catalogue())
(True, 200)
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson

from schemas.events import (
    MAX_EVENT_BYTES,
    Interaction,
    ItemUpsert,
    SchemaError,
    decode_interaction,
)

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
DEVICES: Final = (("mobile", 0.62), ("desktop", 0.33), ("tablet", 0.05))
COUNTRIES: Final = (("US", 0.35), ("GB", 0.12), ("DE", 0.12), ("FR", 0.1), ("BR", 0.09),
                    ("IN", 0.08), ("JP", 0.07), ("ES", 0.07))
REFERRERS: Final = (("direct", 0.35), ("search", 0.35), ("social", 0.12), ("email", 0.1),
                    ("ads", 0.08))
VARIANTS: Final = ("A", "B")
CALIBRATION_SESSIONS: Final = 500
DEFAULT_MAX_SESSIONS: Final = 2_000  # open sessions at once before session time is compressed


@dataclass(frozen=True, slots=True)
class Funnel:
    """Shopper behaviour: conversion rates and how the next item of a session is chosen."""

    click: float = 0.30                # P(click | product view)
    cart_after_click: float = 0.07     # P(add_to_cart | clicked)
    cart_without_click: float = 0.005  # P(add_to_cart | not clicked)
    purchase: float = 0.35             # P(checkout | cart not empty at the session's end)
    complement_after_cart: float = 0.6  # P(next item is a complement | just carted)
    complement_cart: float = 0.30      # P(cart | viewing a complement of a carted item)
    substitute: float = 0.5            # P(next item is a substitute of the previous one)
    same_category: float = 0.6         # P(popular item of the same category | not a substitute)
    impression: float = 0.15           # P(an impression follows a view)
    impression_click: float = 0.35     # P(next item is taken from the impression just shown)
    mean_steps: float = 5.0            # mean product views per session (geometric)
    mean_gap_s: float = 12.0           # mean seconds between product views of a session


@dataclass(frozen=True, slots=True)
class _User:
    user_id: str
    categories: tuple[int, ...]
    device: str
    country: str
    variant: str


class _NewItem(NamedTuple):
    upsert: ItemUpsert
    substitutes: tuple[int, ...]
    complements: tuple[int, ...]
    category: int


def _pick(rnd: random.Random, table: tuple[tuple[str, float], ...]) -> str:
    x = rnd.random() * sum(w for _, w in table)
    for name, weight in table:
        x -= weight
        if x < 0:
            return name
    return table[-1][0]


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


class Storefront:
    """A seeded storefront. See the module docstring for what is planted in the data."""

    def __init__(self, seed: int = 0, n_items: int = 1000, n_users: int = 1000,
                 n_categories: int = 20, *, zipf_s: float = 1.0, user_zipf_s: float = 0.6,
                 rate: float = 50.0, new_item_every: int = 2000, restock_after: int = 5000,
                 funnel: Funnel | None = None, id_prefix: str | None = None,
                 max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        if n_items < 10 or n_users < 1 or n_categories < 1:
            raise ValueError(f"storefront: need n_items >= 10, n_users >= 1, n_categories >= 1, "
                             f"got {n_items}, {n_users}, {n_categories}")
        if n_categories > n_items // 5:
            raise ValueError(f"storefront: need at least 5 items per category, got {n_items} "
                             f"items for {n_categories} categories")
        if rate <= 0:
            raise ValueError(f"storefront: rate must be > 0 events per second, got {rate}")
        self.seed = seed
        self.n_items = n_items
        self.n_users = n_users
        self.n_categories = n_categories
        self.rate = rate
        self.new_item_every = new_item_every
        self.restock_after = restock_after
        self.max_sessions = max_sessions
        self.funnel = funnel or Funnel()
        self.id_prefix = f"syn{seed}:" if id_prefix is None else id_prefix
        self.zipf_s = zipf_s
        rnd = random.Random(f"storefront:{seed}")
        self._build_categories(rnd, n_categories)
        self._build_items(rnd, n_items, zipf_s)
        self._build_users(rnd, n_users, user_zipf_s)
        self._profile: tuple[float, float] | None = None
        self._new_cache: dict[int, _NewItem] = {}

    # --- construction ---------------------------------------------------------------------------

    def _build_categories(self, rnd: random.Random, n: int) -> None:
        names = [CATEGORY_NAMES[i % len(CATEGORY_NAMES)] +
                 (f" {i // len(CATEGORY_NAMES) + 1}" if i >= len(CATEGORY_NAMES) else "")
                 for i in range(n)]
        self.category_names: list[str] = names
        self._cat_slug = [name.replace(" ", "-") for name in names]
        self._cat_base_price = [round(math.exp(rnd.uniform(math.log(8), math.log(900))), 2)
                                for _ in range(n)]
        self._cat_weight = [rnd.lognormvariate(0, 0.6) for _ in range(n)]
        self._cat_brands: list[list[str]] = []
        for _ in range(n):
            brands = {"".join(rnd.choice(_SYLLABLES) for _ in range(rnd.randint(2, 3))).title()
                      for _ in range(rnd.randint(4, 10))}
            self._cat_brands.append(sorted(brands))
        others = list(range(n))
        self._cat_complements: list[tuple[int, ...]] = []
        for c in range(n):
            pool = [o for o in others if o != c]
            self._cat_complements.append(tuple(rnd.sample(pool, min(2, len(pool)))))

    def _build_items(self, rnd: random.Random, n: int, zipf_s: float) -> None:
        cats = list(range(self.n_categories))
        cat_cum = _cumulative(self._cat_weight)
        # every category gets at least 5 items; the rest follow the category weights
        item_cat = [c for c in cats for _ in range(5)]
        item_cat += [bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]) for _ in
                     range(n - len(item_cat))]
        item_cat = [min(c, self.n_categories - 1) for c in item_cat]
        rnd.shuffle(item_cat)
        ranks = list(range(n))
        rnd.shuffle(ranks)
        self._weight = [1.0 / (r + 1) ** zipf_s for r in ranks]
        self._launch_weight = 1.0 / (max(1, n // 50) + 1) ** zipf_s  # a new item starts top-2%
        self._ids = [f"i{i}" for i in range(n)]
        self._cat = item_cat
        self._price: list[float] = []
        self._stock: list[int] = []
        self._brand: list[str] = []
        self._title: list[str] = []
        for i in range(n):
            self._add_item_attributes(rnd, i, item_cat[i])
        self._by_cat: list[list[int]] = [[] for _ in cats]
        for i, c in enumerate(item_cat):
            self._by_cat[c].append(i)
        # substitutes: price neighbours within the category
        self._subs: list[tuple[int, ...]] = [()] * n
        self._cat_by_price: list[list[int]] = []
        for c in cats:
            members = sorted(self._by_cat[c], key=lambda i: (self._price[i], i))
            self._cat_by_price.append(members)
            for pos, i in enumerate(members):
                self._subs[i] = self._price_neighbours(members, pos, exclude=i)
        # complements: popular items of the complementary categories
        self._cat_cum = [_cumulative([self._weight[i] for i in self._by_cat[c]]) for c in cats]
        self._comps: list[tuple[int, ...]] = [()] * n
        for i in range(n):
            self._comps[i] = self._draw_complements(rnd, self._cat[i])

    def _add_item_attributes(self, rnd: random.Random, i: int, cat: int) -> None:
        brand = rnd.choice(self._cat_brands[cat])
        price = round(self._cat_base_price[cat] * rnd.lognormvariate(0, 0.45), 2)
        stock = 0 if rnd.random() < 0.05 else int(rnd.paretovariate(1.2) * 20)
        noun = self.category_names[cat].rstrip("s0123456789 ").title()
        self._brand.append(brand)
        self._price.append(max(0.5, price))
        self._stock.append(min(stock, 10_000))
        self._title.append(f"{brand} {rnd.choice(ADJECTIVES)} {noun} {rnd.randint(100, 999)}")

    def _price_neighbours(self, members: list[int], pos: int, exclude: int) -> tuple[int, ...]:
        lo, hi = max(0, pos - 2), min(len(members), pos + 3)
        return tuple(m for m in members[lo:hi] if m != exclude)

    def _draw_complements(self, rnd: random.Random, cat: int) -> tuple[int, ...]:
        out: list[int] = []
        for other in self._cat_complements[cat]:
            members, cum = self._by_cat[other], self._cat_cum[other]
            for _ in range(2):
                pick = members[bisect.bisect(cum, rnd.random() * cum[-1])]
                if pick not in out:
                    out.append(pick)
        return tuple(out)

    def _build_users(self, rnd: random.Random, n: int, zipf_s: float) -> None:
        self._users: list[_User] = []
        cat_cum = _cumulative(self._cat_weight)
        for u in range(n):
            k = rnd.choice((1, 1, 2, 2, 3))
            prefs = {min(bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]),
                         self.n_categories - 1) for _ in range(k)}
            self._users.append(_User(f"u{u}", tuple(sorted(prefs)), _pick(rnd, DEVICES),
                                     _pick(rnd, COUNTRIES), VARIANTS[u % 2]))
        ranks = list(range(n))
        rnd.shuffle(ranks)
        self._user_cum = _cumulative([1.0 / (r + 1) ** zipf_s for r in ranks])

    # --- public views of the catalogue and the planted truth -------------------------------------

    def catalogue(self, ts: int = DEFAULT_START_TS) -> list[ItemUpsert]:
        """The initial catalogue, one upsert per item, stamped ``ts``."""
        return [self._upsert(i, ts) for i in range(self.n_items)]

    def _upsert(self, i: int, ts: int, stock: int | None = None) -> ItemUpsert:
        if i >= self.n_items:
            base = self._new_item(i).upsert
            return ItemUpsert(base.item_id, ts, base.title, base.category, base.brand,
                              base.price, base.stock if stock is None else stock, base.tags)
        cat = self._cat[i]
        return ItemUpsert(item_id=self._ids[i], ts=ts, title=self._title[i],
                          category=self._cat_slug[cat], brand=self._brand[i],
                          price=self._price[i], stock=self._stock[i] if stock is None else stock)

    def item_index(self, item_id: str) -> int:
        if not item_id.startswith("i") or not item_id[1:].isdigit():
            raise KeyError(item_id)
        return int(item_id[1:])

    def substitutes(self, item_id: str) -> tuple[str, ...]:
        """Planted substitutes: price neighbours in the same category."""
        i = self.item_index(item_id)
        subs = self._subs[i] if i < self.n_items else self._new_item(i).substitutes
        return tuple(f"i{j}" for j in subs)

    def complements(self, item_id: str) -> tuple[str, ...]:
        """Planted complements: popular items of the complementary categories."""
        i = self.item_index(item_id)
        comps = self._comps[i] if i < self.n_items else self._new_item(i).complements
        return tuple(f"i{j}" for j in comps)

    def category_of(self, item_id: str) -> str:
        i = self.item_index(item_id)
        if i >= self.n_items:
            return self._new_item(i).upsert.category or ""
        return self._cat_slug[self._cat[i]]

    def popularity(self) -> dict[str, float]:
        """Planted popularity weights of the initial catalogue (not normalised)."""
        return dict(zip(self._ids, self._weight, strict=True))

    def _new_item(self, i: int) -> _NewItem:
        """Item ``i >= n_items``, launched mid-stream; a pure function of the seed and ``i``."""
        cached = self._new_cache.get(i)
        if cached is not None:
            return cached
        rnd = random.Random(f"storefront:{self.seed}:new:{i}")
        cat_cum = _cumulative(self._cat_weight)
        cat = min(bisect.bisect(cat_cum, rnd.random() * cat_cum[-1]), self.n_categories - 1)
        brand = rnd.choice(self._cat_brands[cat])
        price = max(0.5, round(self._cat_base_price[cat] * rnd.lognormvariate(0, 0.45), 2))
        noun = self.category_names[cat].rstrip("s0123456789 ").title()
        upsert = ItemUpsert(item_id=f"i{i}", ts=DEFAULT_START_TS,
                            title=f"{brand} New {noun} {rnd.randint(100, 999)}",
                            category=self._cat_slug[cat], brand=brand, price=price,
                            stock=int(rnd.paretovariate(1.2) * 20) + 5, tags=("new",))
        members = self._cat_by_price[cat]
        keys = [self._price[m] for m in members]
        pos = bisect.bisect(keys, price)
        subs = tuple(members[max(0, pos - 2):pos + 2])
        comps = self._draw_complements(rnd, cat)
        out = self._new_cache[i] = _NewItem(upsert, subs, comps, cat)
        return out

    # --- the event stream -----------------------------------------------------------------------

    def _calibrate(self) -> tuple[float, float]:
        """Mean events per session and mean session length in ms (unscaled), measured once on a
        throwaway run; they size session arrivals and the gap scale."""
        if self._profile is None:
            run = _Run(self, DEFAULT_START_TS, 0, 1, calibration=True)
            events = duration = 0
            for _ in range(CALIBRATION_SESSIONS):
                stamps = [e.ts for e in run.session(run.pick_user(), DEFAULT_START_TS)]
                events += len(stamps)
                duration += stamps[-1] - stamps[0]
            self._profile = (events / CALIBRATION_SESSIONS, duration / CALIBRATION_SESSIONS)
        return self._profile

    def mean_session_events(self) -> float:
        """Mean events per session (sizes session arrivals)."""
        return self._calibrate()[0]

    def gap_scale(self) -> float:
        """Factor on the time between a session's events: 1, unless ``rate`` is so high that
        more than ``max_sessions`` sessions would be open at once; then sessions are compressed
        in time so that about ``max_sessions`` are (this keeps generation fast and memory small;
        the event rate is unchanged)."""
        mean_events, mean_ms = self._calibrate()
        open_sessions = self.rate / 1000.0 / mean_events * mean_ms
        return min(1.0, self.max_sessions / open_sessions) if open_sessions > 0 else 1.0

    def events(self, n: int, start_ts: int = DEFAULT_START_TS, *,
               shard: tuple[int, int] = (0, 1)) -> Iterator[Interaction]:
        """``n`` interactions in event-time order (item upserts left out)."""
        for ev in self.stream(n, start_ts, shard=shard):
            if isinstance(ev, Interaction):
                yield ev

    def stream(self, n: int, start_ts: int = DEFAULT_START_TS, *,
               shard: tuple[int, int] = (0, 1)) -> Iterator[Interaction | ItemUpsert]:
        """``n`` interactions in event-time order, with item upserts (launches, sell-outs,
        restocks) interleaved, each before any interaction that depends on it.

        ``shard=(i, k)`` keeps only users whose index is ``i`` modulo ``k``: ``k`` processes with
        the same seed and shards ``0..k-1`` together publish ``k`` disjoint user populations.
        """
        index, count = shard
        if not 0 <= index < count or count > self.n_users:
            raise ValueError(f"shard: expected (i, k) with 0 <= i < k <= n_users "
                             f"({self.n_users}), got {shard}")
        return _Run(self, start_ts, index, count).run(n)


class _Run:
    """One pass over the stream: the mutable state (clock, stock, launches) of a single call."""

    def __init__(self, shop: Storefront, start_ts: int, shard: int, shards: int, *,
                 calibration: bool = False) -> None:
        self.shop = shop
        self.rnd = random.Random(f"{'calibration' if calibration else 'stream'}:{shop.seed}:"
                                 f"{shard}:{shards}")
        self.shard, self.shards = shard, shards
        self.prefix = shop.id_prefix if shards == 1 else f"{shop.id_prefix}{shard}."
        self.start_ts = start_ts
        self.gap_scale = 1.0 if calibration else shop.gap_scale()
        self.ids = list(shop._ids)
        self.cat = list(shop._cat)
        self.price = list(shop._price)
        self.stock = list(shop._stock)
        self.subs = list(shop._subs)
        self.comps = list(shop._comps)
        self.cum = _cumulative(shop._weight)
        self.cat_members = [list(m) for m in shop._by_cat]
        self.cat_cum = [list(c) for c in shop._cat_cum]
        self.user_sessions: dict[int, int] = {}
        self.active: set[int] = set()
        self.counter = 0
        self.rec_counter = 0
        self.restocks: deque[tuple[int, int]] = deque()  # (due event count, item)
        self.next_launch = shop.n_items

    # sampling ---------------------------------------------------------------------------------

    def popular(self) -> int:
        cum = self.cum
        return bisect.bisect(cum, self.rnd.random() * cum[-1])

    def popular_in(self, cat: int) -> int:
        cum = self.cat_cum[cat]
        return self.cat_members[cat][bisect.bisect(cum, self.rnd.random() * cum[-1])]

    def pick_user(self) -> int:
        """A user of this shard, by activity; one without an open session when that is easy."""
        cum, n_users = self.shop._user_cum, self.shop.n_users
        k, shard = self.shards, self.shard
        for _ in range(4):
            u = bisect.bisect(cum, self.rnd.random() * cum[-1])
            u = u - u % k + shard
            if u >= n_users:
                u -= k
            if u not in self.active:
                break
        return u

    # events -----------------------------------------------------------------------------------

    def _launch(self, ts: int) -> ItemUpsert:
        i = self.next_launch
        self.next_launch += 1
        upsert, subs, comps, cat = self.shop._new_item(i)
        self.ids.append(upsert.item_id)
        self.cat.append(cat)
        self.price.append(upsert.price or 1.0)
        self.stock.append(upsert.stock or 0)
        self.subs.append(subs)
        self.comps.append(comps)
        w = self.shop._launch_weight
        self.cum.append(self.cum[-1] + w)
        self.cat_members[cat].append(i)
        self.cat_cum[cat].append(self.cat_cum[cat][-1] + w)
        return self.shop._upsert(i, ts)

    def run(self, n: int) -> Iterator[Interaction | ItemUpsert]:
        shop, rnd = self.shop, self.rnd
        heap: list[tuple[int, int, Iterator[Interaction], Interaction]] = []
        push, pop = heapq.heappush, heapq.heappop
        per_ms = shop.rate / 1000.0
        mean_events = shop.mean_session_events()
        next_arrival = float(self.start_ts)
        seq = 0
        emitted = 0
        launch_every = shop.new_item_every
        restocks = self.restocks
        while emitted < n:
            if not heap or next_arrival <= heap[0][0]:
                u = self.pick_user()
                self.active.add(u)
                gen = self.session(u, int(next_arrival))
                first = next(gen)
                push(heap, (first.ts, seq, gen, first))
                seq += 1
                # sessions arrive so that events flow at `rate` per second of event time
                next_arrival += rnd.expovariate(per_ms / mean_events)
                continue
            ts, s, gen, ev = pop(heap)
            yield ev
            emitted += 1
            if ev.type == "purchase":
                yield from self._sold(ev, emitted)
            if launch_every and emitted % launch_every == 0:
                yield self._launch(ts)
            while restocks and restocks[0][0] <= emitted:
                _, item = restocks.popleft()
                self.stock[item] = 20 + int(rnd.paretovariate(1.2) * 20)
                yield shop._upsert(item, ts, self.stock[item])
            nxt = next(gen, None)
            if nxt is not None:
                push(heap, (nxt.ts, s, gen, nxt))

    def _sold(self, ev: Interaction, emitted: int) -> Iterator[ItemUpsert]:
        j = int((ev.item_id or "i0")[1:])
        if self.stock[j] > 0:
            self.stock[j] -= 1
            if self.stock[j] == 0:
                yield self.shop._upsert(j, ev.ts, 0)
                self.restocks.append((emitted + self.shop.restock_after, j))

    def session(self, u: int, start: int) -> Iterator[Interaction]:
        """One shopper's visit, as a generator of its events in time order."""
        shop, rnd = self.shop, self.rnd
        random_ = rnd.random
        expo = rnd.expovariate
        f = shop.funnel
        user = shop._users[u]
        uid = user.user_id
        k = self.user_sessions.get(u, 0)
        self.user_sessions[u] = k + 1
        sid = f"{uid}-{k}"
        prefix = self.prefix
        base = {"device": user.device, "country": user.country}
        ctx_product = {**base, "page": "product"}
        ctx_cart = {**base, "page": "cart"}
        ctx_first = {**ctx_product, "referrer": _pick(rnd, REFERRERS)}
        ctx_widget = {**base, "page": "product", "widget": "similar"}
        ids, price, stock, subs, comps = self.ids, self.price, self.stock, self.subs, self.comps
        # intent: mostly one of the user's categories
        cat = (user.categories[int(random_() * len(user.categories))] if random_() < 0.8
               else self.cat[self.popular()])
        item = self.popular_in(cat)
        ts = start
        steps = 1 + int(math.log(1.0 - random_()) / math.log(1.0 - 1.0 / f.mean_steps))
        mean_gap_ms = f.mean_gap_s * 1000.0
        scale = self.gap_scale
        cart: list[int] = []
        rec_id: str | None = None
        shown: list[int] = []
        complement_of_cart = False
        for step in range(steps):
            if rec_id is not None:  # arrived by clicking a shown item
                yield self._ev("click", uid, sid, ts, ids[item], ctx_widget, rec_id,
                               user.variant)
                ts += int((300 + expo(1 / 700.0)) * scale)
            yield self._ev("view", uid, sid, ts, ids[item], ctx_first if step == 0
                           else ctx_product)
            clicked = rec_id is not None
            if not clicked and random_() < f.click:
                clicked = True
                ts += int((500 + expo(1 / 3000.0)) * scale)
                yield self._ev("click", uid, sid, ts, ids[item], ctx_product)
            p_cart = (f.complement_cart if complement_of_cart
                      else f.cart_after_click if clicked else f.cart_without_click)
            carted = False
            if stock[item] > 0 and item not in cart and random_() < p_cart:
                carted = True
                cart.append(item)
                ts += int((1000 + expo(1 / 5000.0)) * scale)
                yield self._ev("add_to_cart", uid, sid, ts, ids[item], ctx_product,
                               value=price[item])
            rec_id = None
            complement_of_cart = False
            if random_() < f.impression:
                shown = self.widget(item)
                self.rec_counter += 1
                widget_id = f"{prefix}r{self.rec_counter}"
                ts += 50
                yield self._impression(uid, sid, ts, [ids[j] for j in shown], ctx_widget,
                                       widget_id, user.variant)
                if random_() < f.impression_click:
                    rec_id = widget_id
                    item = shown[int(random_() ** 2 * len(shown))]
                    ts += int((1000 + expo(1 / mean_gap_ms)) * scale)
                    continue
            # the next item
            if carted and comps[item] and random_() < f.complement_after_cart:
                item = comps[item][int(random_() * len(comps[item]))]
                complement_of_cart = True
            elif subs[item] and random_() < f.substitute:
                item = subs[item][int(random_() * len(subs[item]))]
            elif random_() < f.same_category:
                item = self.popular_in(self.cat[item])
            else:
                item = self.popular_in(cat) if random_() < 0.5 else self.popular()
            ts += int((1000 + expo(1 / mean_gap_ms)) * scale)
        if cart and random_() < f.purchase:
            ts += int((20_000 + expo(1 / 60_000.0)) * scale)
            for j in cart:
                yield self._ev("purchase", uid, sid, ts, ids[j], ctx_cart, value=price[j])
                ts += 1
        self.active.discard(u)

    def widget(self, item: int) -> list[int]:
        """What a "similar items" widget shows on ``item``'s page: substitutes, complements and
        a couple of popular items."""
        shown: list[int] = []
        for j in (*self.subs[item][:4], *self.comps[item][:2], self.popular(), self.popular()):
            if j != item and j not in shown:
                shown.append(j)
        return shown or [self.popular()]

    def _ev(self, etype: str, uid: str, sid: str, ts: int, item_id: str,
            context: dict[str, Any], rec_id: str | None = None, variant: str | None = None,
            value: float | None = None) -> Interaction:
        self.counter += 1
        return Interaction(f"{self.prefix}{self.counter}", etype, uid, sid, ts, item_id, (),
                           value, context, rec_id, variant)

    def _impression(self, uid: str, sid: str, ts: int, item_ids: list[str],
                    context: dict[str, Any], rec_id: str, variant: str) -> Interaction:
        self.counter += 1
        return Interaction(f"{self.prefix}{self.counter}", "impression", uid, sid, ts, None,
                           tuple(item_ids), None, context, rec_id, variant)


# --- malformed input ------------------------------------------------------------------------------

class Malformed(NamedTuple):
    """One bad input: the raw bytes, the field the decoder must blame, and the kind of fault."""

    raw: bytes
    field: str
    kind: str


_YEAR_3000_MS: Final = 32_503_680_000_000


def _mutations(doc: dict[str, Any], rnd: random.Random) -> list[tuple[str, str, Any]]:
    """(kind, field, bad document or raw bytes) for every fault class, built from a valid doc."""

    def with_(**changes: Any) -> dict[str, Any]:
        return {**doc, **changes}

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k != name}

    raw = orjson.dumps(doc)
    cut = rnd.randint(1, len(raw) - 1)
    return [
        ("bad_json", "<document>", raw[:cut]),
        ("bad_json_trailing_comma", "<document>", raw[:-1] + b",}"),
        ("bad_utf8", "<document>", b'{"event_id":"\xff\xfe"}'),
        ("empty_payload", "<document>", b""),
        ("non_object_array", "<document>", [doc]),
        ("non_object_string", "<document>", "view"),
        ("non_object_null", "<document>", None),
        ("oversize", "<document>",
         with_(context={"blob": "x" * (MAX_EVENT_BYTES + rnd.randint(1, 4096))})),
        ("missing_event_id", "event_id", without("event_id")),
        ("missing_type", "type", without("type")),
        ("missing_user_id", "user_id", without("user_id")),
        ("missing_session_id", "session_id", without("session_id")),
        ("missing_ts", "ts", without("ts")),
        ("missing_item_id", "item_id", without("item_id")),
        ("null_user_id", "user_id", with_(user_id=None)),
        ("empty_session_id", "session_id", with_(session_id="")),
        ("long_event_id", "event_id", with_(event_id="e" * 200)),
        ("wrong_type_user_id", "user_id", with_(user_id=rnd.randint(1, 10**6))),
        ("wrong_type_item_id", "item_id", with_(item_id=[doc["item_id"]])),
        ("wrong_type_ts_string", "ts", with_(ts=str(doc["ts"]))),
        ("wrong_type_ts_float", "ts", with_(ts=doc["ts"] + 0.5)),
        ("wrong_type_ts_bool", "ts", with_(ts=True)),
        ("wrong_type_value", "value", with_(value="12.5 EUR")),
        ("wrong_type_context", "context", with_(context=["mobile"])),
        ("nested_context", "context.device", with_(context={"device": {"os": "ios"}})),
        ("unknown_type", "type", with_(type=rnd.choice(["like", "VIEW", "purchased", ""]))),
        ("ts_in_seconds", "ts", with_(ts=doc["ts"] // 1000)),
        ("ts_year_3000", "ts", with_(ts=_YEAR_3000_MS + rnd.randint(0, 10**9))),
        ("ts_negative", "ts", with_(ts=-doc["ts"])),
        ("unknown_field", "colour", with_(colour="red")),
        ("unknown_field_typo", "userId", {**without("user_id"), "userId": doc["user_id"]}),
        ("schema_version_2", "schema_version", with_(schema_version=2)),
        ("rating_without_value", "value", {**without("value"), "type": "rating"}),
        ("rating_out_of_range", "value", with_(type="rating", value=11.0)),
        ("impression_without_items", "item_ids",
         {**without("item_id"), "type": "impression"}),
        ("impression_items_not_list", "item_ids",
         {**without("item_id"), "type": "impression", "item_ids": doc["item_id"]}),
        ("impression_empty_item", "item_ids[1]",
         {**without("item_id"), "type": "impression", "item_ids": [doc["item_id"], ""]}),
    ]


MALFORMED_KINDS: Final = tuple(
    kind for kind, _, _ in _mutations(
        {"event_id": "e", "type": "view", "user_id": "u", "session_id": "s",
         "ts": DEFAULT_START_TS, "item_id": "i"}, random.Random(0)))


def malformed_events(seed: int, n: int) -> Iterator[Malformed]:
    """``n`` bad interaction payloads, cycling through every fault kind, each built by breaking
    one thing in a valid synthetic event. ``field`` is what :class:`SchemaError` must name.

    >>> bad = list(malformed_events(3, 2 * len(MALFORMED_KINDS)))
    >>> {b.kind for b in bad} == set(MALFORMED_KINDS)
    True
    >>> bad[0].kind, bad[0].field
    ('bad_json', '<document>')
    """
    rnd = random.Random(f"malformed:{seed}")
    shop = Storefront(seed=seed, n_items=50, n_users=20, n_categories=5)
    valid = (e for e in shop.events(10 * n + 100) if e.type in ("view", "click"))
    for i, event in zip(range(n), valid, strict=False):
        kinds = _mutations(event.to_dict(), rnd)
        kind, field_name, bad = kinds[i % len(kinds)]
        raw = bad if isinstance(bad, bytes) else orjson.dumps(bad)
        yield Malformed(raw, field_name, kind)


def check_malformed(bad: Malformed) -> SchemaError | None:
    """The decoder's error for ``bad``, or None when it was (wrongly) accepted."""
    try:
        decode_interaction(bad.raw)
    except SchemaError as exc:
        return exc
    return None
