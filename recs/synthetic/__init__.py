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

Modules, one concept each (every public name is importable from ``recs.synthetic``):

* :mod:`recs.synthetic.catalogue`: categories and items, substitutes, complements, launches;
* :mod:`recs.synthetic.users`: the shoppers and their activity;
* :mod:`recs.synthetic.sessions`: the :class:`Funnel` and the stream run that plays sessions;
* :mod:`recs.synthetic.storefront`: :class:`Storefront`, tying them together;
* :mod:`recs.synthetic.malformed`: bad payloads, one per fault kind, for the decoder and the DLQ.

>>> shop = Storefront(seed=7, n_items=200, n_users=50, n_categories=5)
>>> events = list(shop.events(1000))
>>> events == list(shop.events(1000)), len(shop.catalogue())
(True, 200)
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

from recs.synthetic.catalogue import ADJECTIVES, CATEGORY_NAMES, DEFAULT_START_TS
from recs.synthetic.malformed import (
    MALFORMED_KINDS,
    Malformed,
    check_malformed,
    malformed_events,
)
from recs.synthetic.sessions import REFERRERS, Funnel
from recs.synthetic.storefront import CALIBRATION_SESSIONS, DEFAULT_MAX_SESSIONS, Storefront
from recs.synthetic.users import COUNTRIES, DEVICES, VARIANTS

__all__ = [
    "ADJECTIVES",
    "CALIBRATION_SESSIONS",
    "CATEGORY_NAMES",
    "COUNTRIES",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_START_TS",
    "DEVICES",
    "MALFORMED_KINDS",
    "REFERRERS",
    "VARIANTS",
    "Funnel",
    "Malformed",
    "Storefront",
    "check_malformed",
    "malformed_events",
]
