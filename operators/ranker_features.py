"""The online ranker's features: one ``dict[str, float]`` per (user, item, context, source).

Pure and deterministic: no clock (the hour comes from the event time passed in), no process-salted
``hash()`` (ids are hashed with BLAKE2b, so a snapshot restored in another process sees the same
buckets). Every categorical feature is one-hot with value 1.0; the two numeric ones are scaled to
about [0, 1].

=======================  ==========================================================================
feature                  meaning
=======================  ==========================================================================
``user#B``               the user id hashed into ``buckets`` (the user's click propensity)
``item#B``               the item id hashed into ``buckets`` (the item's click-through rate)
``device=V``             ``context["device"]``, stripped and lower-cased (``unknown`` if absent)
``country=V``            ``context["country"]``, likewise
``page=V``               ``context["page"]``, likewise
``placement=V``          ``context["placement"]`` (``homepage``, ``similar``, ...), likewise
``hour=H``               UTC hour of the event time, 0..23
``source=V``             the candidate source that put the item there (``session``, ``trending``,
                         ``explore``, ...; ``unknown`` when the impression did not say)
``category=V``           the item's catalogue category (``unknown`` without metadata)
``source|placement=S|P`` cross: a source is worth more in some placements than in others
``category|device=C|D``  cross: what people browse on a phone is not what they browse on a desktop
``category|daypart=C|T`` cross: category by part of the day (night, morning, afternoon, evening)
``user|category#B``      cross, hashed: the user's taste for the item's category
``item|placement#B``     cross, hashed: an item's click-through rate depends on where it is shown
``price``                ``log1p(price) / 10`` clipped to [0, 1.5] (1000 -> 0.69); absent if unknown
``age``                  ``log1p(days since first seen) / log1p(365)`` clipped to [0, 1.5]: how new
                         the item is; absent without ``first_seen_ms`` or when the event is older
=======================  ==========================================================================

A value that is not a string, is blank or longer than 64 characters reads as ``unknown`` (the
normalisation of the trending context scopes, :func:`state.keys.context_value`).

>>> x = features("u1", "i9", {"device": " Mobile", "placement": "homepage"}, "session",
...              {"category": "Shoes", "price": 59.0}, ts=1_700_000_000_000, buckets=1000)
>>> sorted(k for k in x if "#" not in k)  # doctest: +NORMALIZE_WHITESPACE
['category=shoes', 'category|daypart=shoes|evening', 'category|device=shoes|mobile',
 'country=unknown', 'device=mobile', 'hour=22', 'page=unknown', 'placement=homepage', 'price',
 'source=session', 'source|placement=session|homepage']
>>> round(x["price"], 3), len(x)
(0.409, 15)
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Mapping
from typing import Any, Final

from operators.trending import HOUR_MS, daypart
from state.keys import context_value

UNKNOWN: Final = "unknown"
CONTEXT_FIELDS: Final = ("device", "country", "page", "placement")  # read from the context
DEFAULT_BUCKETS: Final = 1 << 20  # hash space of each hashed feature
DAY_MS: Final = 86_400_000
PRICE_DIVISOR: Final = 10.0       # log1p(price) / 10: 0 -> 0, 1000 -> 0.69, 22k -> 1.0
AGE_DIVISOR: Final = math.log1p(365.0)
NUMERIC_CAP: Final = 1.5


def bucket(name: str, value: str, buckets: int) -> int:
    """A stable bucket in ``[0, buckets)`` for ``value`` of feature ``name``: BLAKE2b, the same in
    every process (Python's ``hash()`` of a string is salted per process).

    >>> bucket("user", "u1", 1 << 20) == bucket("user", "u1", 1 << 20)
    True
    >>> bucket("user", "u1", 1 << 20) != bucket("item", "u1", 1 << 20)
    True
    """
    digest = hashlib.blake2b(f"{name}\x00{value}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def norm(value: object) -> str:
    """A categorical value as a feature sees it: stripped, lower-cased, else ``unknown``."""
    v = context_value(value)
    return v if v is not None else UNKNOWN


def _pair(a: str, b: str) -> str:
    return f"{a}\x00{b}"


def _scaled(value: float) -> float:
    return min(max(value, 0.0), NUMERIC_CAP)


def features(user: str, item: str, context: Mapping[str, object], source: str,
             item_meta: Mapping[str, Any] | None = None, *, ts: int,
             buckets: int = DEFAULT_BUCKETS) -> dict[str, float]:
    """The features of showing ``item`` (put there by ``source``) to ``user`` at event time
    ``ts`` in ``context`` (the impression's context: device, country, page, placement).
    ``item_meta`` is the catalogue value of the item (``category``, ``price``,
    ``first_seen_ms``), or ``None``. See the module docstring for the list."""
    return RequestFeatures(user, context, ts=ts, buckets=buckets).item(item, source, item_meta)


class RequestFeatures:
    """The features of one request (user, context, time) computed once, completed per item by
    :meth:`item`: a ranking of many candidates does the shared work once, and the hashed ids
    come from a cache (:func:`_bucket`). ``features(...)`` is exactly ``RequestFeatures(...)
    .item(...)``, so learning and serving see the same features."""

    __slots__ = ("buckets", "common", "daypart", "device", "placement", "ts", "user")

    def __init__(self, user: str, context: Mapping[str, object], *, ts: int,
                 buckets: int = DEFAULT_BUCKETS) -> None:
        if buckets < 1:
            raise ValueError(f"operators.ranker_features.features: buckets must be >= 1, "
                             f"got {buckets!r}")
        device, country, page, placement = (norm(context.get(f)) for f in CONTEXT_FIELDS)
        self.user, self.ts, self.buckets = user, ts, buckets
        self.device, self.placement, self.daypart = device, placement, daypart(ts)
        self.common: dict[str, float] = {
            f"user#{_bucket('user', user, buckets)}": 1.0,
            f"device={device}": 1.0,
            f"country={country}": 1.0,
            f"page={page}": 1.0,
            f"placement={placement}": 1.0,
            f"hour={ts // HOUR_MS % 24}": 1.0,
        }

    def item(self, item: str, source: str,
             item_meta: Mapping[str, Any] | None = None) -> dict[str, float]:
        src, buckets, placement = norm(source), self.buckets, self.placement
        meta = item_meta or {}
        category = norm(meta.get("category"))
        x = dict(self.common)
        x[f"item#{_bucket('item', item, buckets)}"] = 1.0
        x[f"source={src}"] = 1.0
        x[f"category={category}"] = 1.0
        x[f"source|placement={src}|{placement}"] = 1.0
        x[f"category|device={category}|{self.device}"] = 1.0
        x[f"category|daypart={category}|{self.daypart}"] = 1.0
        x[f"user|category#{_bucket('user|category', _pair(self.user, category), buckets)}"] = 1.0
        x[f"item|placement#{_bucket('item|placement', _pair(item, placement), buckets)}"] = 1.0
        price = meta.get("price")
        if isinstance(price, int | float) and not isinstance(price, bool) and \
                math.isfinite(price):
            x["price"] = _scaled(math.log1p(max(float(price), 0.0)) / PRICE_DIVISOR)
        first_seen = meta.get("first_seen_ms")
        ts = self.ts
        if isinstance(first_seen, int) and not isinstance(first_seen, bool) and first_seen <= ts:
            x["age"] = _scaled(math.log1p((ts - first_seen) / DAY_MS) / AGE_DIVISOR)
        return x


@functools.lru_cache(maxsize=1 << 16)
def _bucket(name: str, value: str, buckets: int) -> int:
    """:func:`bucket`, cached: the same ids come back request after request."""
    return bucket(name, value, buckets)
