"""New arrivals: the newest items of the catalogue, globally and per category.

**First seen.** An item's first-seen time is the event time of its first catalogue upsert: the
smallest upsert ``ts`` ever applied to it (deleted or not). A minimum does not depend on the order
upserts arrive in, so the Flink job and the reference runner agree; a late upsert older than every
one seen so far lowers it. :func:`operators.trending.item_upsert_step` keeps it in the item state
(``first_seen_ts``) and the item value ``recs:v1:item:{item}`` carries it as ``first_seen_ms``.
That value keeps its version, the newest upsert's ``ts``: a late older upsert leaves the metadata
alone and only lowers ``first_seen_ms``, so the value is republished at the *same* version, which
the store's version check (``>=``) accepts. (On a replay from scratch of a compacted ``items``
topic, first seen is the oldest upsert that survived compaction; checkpointed state keeps it.)

**Lists.** ``recs:v1:trending:new:global`` and ``recs:v1:trending:new:cat:{category}`` hold the
``new_top_k`` live (not deleted) items with the newest first-seen times, by the category of the
item's newest upsert. They are the trending lists' exact streaming top-K
(:func:`operators.trending.topk_step`, keyed by scope) with the same payload,
``{"items": [[item, log_score], ...], "half_life_s": ...}``, where

    log_score = λ·first_seen_s,   λ = ln 2 / half_life_s (the trending half-life)

the forward-decayed log score of one event of weight 1 at the item's arrival: newer is higher,
``exp(log_score − λ·now_s) = 2^(−age / half_life)`` is its freshness now (1 on arrival), and
``first_seen_s = log_score / λ`` (to float precision; ``first_seen_ms`` in the item value is exact).
Ties (items first seen in the same millisecond) rank by item id, as in every trending list.

**When.** Every upsert applied as the item's newest re-offers its score to the lists it belongs to
at that upsert's ``ts``, so a list's version is the newest upsert it reflects. An item leaves a
list (a retraction) when it is deleted or moves to another category, and also just before a late
older upsert re-offers its lowered score (a top-K ignores a lower score); retractions carry the
time of the item's previous offer and the lowered score that of its newest upsert, which the list
already reflects, so neither moves a version.

**Exactness.** While each item's upserts arrive in event-time order an item's score never
changes, and the lists are the exact top-K of the live items whatever the interleaving of items.
A retraction can leave a full list one short until a newer item arrives (as in trending lists).
A late correction is exact when the item still ranks in the top-K with its lowered score or did
not rank there before; otherwise the list keeps it in place of the newer item it had evicted,
which no list remembers, until the next arrival pushes it out.

>>> hl = 3_600.0
>>> round(score(3_600_000, hl), 6)  # first seen one half-life after the epoch: ln 2
0.693147
>>> score(1_700_000_000_001, hl) > score(1_700_000_000_000, hl)
True
>>> placement({"item_id": "i1", "ts": 9, "category": "mugs"}, 0, hl)
{'new:global': 0.0, 'new:cat:mugs': 0.0}
>>> placement({"item_id": "i1", "ts": 9, "deleted": True}, 0, hl), placement(None, 0, hl)
({}, {})
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from operators.decay import log_term, rate
from state.keys import new_arrivals_scope


def score(first_seen_ms: int, half_life_s: float) -> float:
    """The log score of an item first seen at ``first_seen_ms``: ``λ·first_seen_s``. Strictly
    increasing in ``first_seen_ms``: with a 6 h half-life one millisecond moves it by
    ~4,000 float ulps at today's times (by more than one for half-lives up to ~2 years)."""
    return log_term(1.0, first_seen_ms, half_life_s)


def first_seen_s(log_score: float, half_life_s: float) -> float:
    """Inverse of :func:`score`, in seconds since the epoch (to float precision).

    >>> round(first_seen_s(score(1_700_000_000_000, 21_600.0), 21_600.0), 3)
    1700000000.0
    """
    return log_score / rate(half_life_s)


def placement(meta: Mapping[str, Any] | None, first_seen_ms: int,
              half_life_s: float) -> dict[str, float]:
    """``scope -> log score`` of an item in the new-arrival lists: none without a catalogue
    value or once deleted, else ``new:global`` and, when it has a category, ``new:cat:{cat}``."""
    if meta is None or meta.get("deleted"):
        return {}
    value = score(first_seen_ms, half_life_s)
    out = {new_arrivals_scope(): value}
    cat = meta.get("category")
    if isinstance(cat, str):
        out[new_arrivals_scope(cat)] = value
    return out


def retracted(old: Mapping[str, float], new: Mapping[str, float]) -> list[str]:
    """Scopes the item must leave before its ``new`` scores are offered: those it is no longer
    in, and those where its score went down (a late older upsert), in ``old``'s order.

    >>> retracted({"new:global": 2.0, "new:cat:a": 2.0}, {"new:global": 1.0, "new:cat:b": 1.0})
    ['new:global', 'new:cat:a']
    >>> retracted({"new:global": 2.0}, {"new:global": 2.0, "new:cat:b": 2.0})
    []
    """
    return [s for s, v in old.items() if s not in new or new[s] < v]
