"""The seeded :class:`Storefront`: a catalogue, its shoppers, and their event stream on demand."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Final

from recs.synthetic.catalogue import DEFAULT_START_TS, Catalogue
from recs.synthetic.sessions import Funnel, StreamRun
from recs.synthetic.users import Shoppers
from schemas.events import Interaction, ItemUpsert

CALIBRATION_SESSIONS: Final = 500
DEFAULT_MAX_SESSIONS: Final = 2_000  # open sessions at once before session time is compressed


class Storefront:
    """A seeded storefront. See :mod:`recs.synthetic` for what is planted in the data.

    ``products`` (a :class:`Catalogue`) and ``shoppers`` (:class:`Shoppers`) are drawn from one
    random generator seeded by ``seed``, in that order; each call of :meth:`stream` is a fresh
    :class:`StreamRun` over them, so the same seed always gives the same events.
    """

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
        self.products = Catalogue(rnd, seed, n_items, n_categories, zipf_s)
        self.category_names: list[str] = self.products.category_names
        self.shoppers = Shoppers(rnd, n_users, user_zipf_s, self.products.cat_weight,
                                 n_categories)
        self._profile: tuple[float, float] | None = None

    # --- public views of the catalogue and the planted truth -------------------------------------

    def catalogue(self, ts: int = DEFAULT_START_TS) -> list[ItemUpsert]:
        """The initial catalogue, one upsert per item, stamped ``ts``."""
        return [self.products.upsert(i, ts) for i in range(self.n_items)]

    def item_index(self, item_id: str) -> int:
        if not item_id.startswith("i") or not item_id[1:].isdigit():
            raise KeyError(item_id)
        return int(item_id[1:])

    def substitutes(self, item_id: str) -> tuple[str, ...]:
        """Planted substitutes: price neighbours in the same category."""
        i, products = self.item_index(item_id), self.products
        subs = products.subs[i] if i < self.n_items else products.new_item(i).substitutes
        return tuple(f"i{j}" for j in subs)

    def complements(self, item_id: str) -> tuple[str, ...]:
        """Planted complements: popular items of the complementary categories."""
        i, products = self.item_index(item_id), self.products
        comps = products.comps[i] if i < self.n_items else products.new_item(i).complements
        return tuple(f"i{j}" for j in comps)

    def category_of(self, item_id: str) -> str:
        i, products = self.item_index(item_id), self.products
        if i >= self.n_items:
            return products.new_item(i).upsert.category or ""
        return products.cat_slug[products.cat[i]]

    def popularity(self) -> dict[str, float]:
        """Planted popularity weights of the initial catalogue (not normalised)."""
        return dict(zip(self.products.ids, self.products.weight, strict=True))

    # --- the event stream -----------------------------------------------------------------------

    def _calibrate(self) -> tuple[float, float]:
        """Mean events per session and mean session length in ms (unscaled), measured once on a
        throwaway run; they size session arrivals and the gap scale."""
        if self._profile is None:
            run = StreamRun(self, DEFAULT_START_TS, 0, 1, calibration=True)
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
        return StreamRun(self, start_ts, index, count).run(n)
