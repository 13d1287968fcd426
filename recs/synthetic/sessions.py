"""Shopper sessions and the stream run that interleaves them in event time.

:class:`Funnel` holds the behaviour (conversion rates, how the next item is chosen).
:class:`StreamRun` is one pass over the stream: sessions arrive as a Poisson process, each a
generator of its events (views, clicks, carts, impressions, purchases), merged in time order with
the item upserts the run causes (launches, sell-outs, restocks).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from recs.synthetic._sampling import cumulative, pick
from schemas.events import Interaction, ItemUpsert

if TYPE_CHECKING:
    from recs.synthetic.storefront import Storefront

REFERRERS: Final = (("direct", 0.35), ("search", 0.35), ("social", 0.12), ("email", 0.1),
                    ("ads", 0.08))


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


class StreamRun:
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
        products = shop.products
        self.ids = list(products.ids)
        self.cat = list(products.cat)
        self.price = list(products.price)
        self.stock = list(products.stock)
        self.subs = list(products.subs)
        self.comps = list(products.comps)
        self.cum = cumulative(products.weight)
        self.cat_members = [list(m) for m in products.by_cat]
        self.cat_cum = [list(c) for c in products.cat_cum]
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
        cum, n_users = self.shop.shoppers.activity_cum, self.shop.n_users
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
        products = self.shop.products
        upsert, subs, comps, cat = products.new_item(i)
        self.ids.append(upsert.item_id)
        self.cat.append(cat)
        self.price.append(upsert.price or 1.0)
        self.stock.append(upsert.stock or 0)
        self.subs.append(subs)
        self.comps.append(comps)
        w = products.launch_weight
        self.cum.append(self.cum[-1] + w)
        self.cat_members[cat].append(i)
        self.cat_cum[cat].append(self.cat_cum[cat][-1] + w)
        return products.upsert(i, ts)

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
                yield shop.products.upsert(item, ts, self.stock[item])
            nxt = next(gen, None)
            if nxt is not None:
                push(heap, (nxt.ts, s, gen, nxt))

    def _sold(self, ev: Interaction, emitted: int) -> Iterator[ItemUpsert]:
        j = int((ev.item_id or "i0")[1:])
        if self.stock[j] > 0:
            self.stock[j] -= 1
            if self.stock[j] == 0:
                yield self.shop.products.upsert(j, ev.ts, 0)
                self.restocks.append((emitted + self.shop.restock_after, j))

    def session(self, u: int, start: int) -> Iterator[Interaction]:
        """One shopper's visit, as a generator of its events in time order."""
        shop, rnd = self.shop, self.rnd
        random_ = rnd.random
        expo = rnd.expovariate
        f = shop.funnel
        user = shop.shoppers.users[u]
        uid = user.user_id
        k = self.user_sessions.get(u, 0)
        self.user_sessions[u] = k + 1
        sid = f"{uid}-{k}"
        prefix = self.prefix
        base = {"device": user.device, "country": user.country}
        ctx_product = {**base, "page": "product"}
        ctx_cart = {**base, "page": "cart"}
        ctx_first = {**ctx_product, "referrer": pick(rnd, REFERRERS)}
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
