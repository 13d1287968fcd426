"""Fold interaction events into per-(experiment, variant) tallies; pure, no I/O.

An **impression** with a ``rec_id`` is one recommendation response, assigned to the variant in
its ``variant`` label (``"<experiment>/<variant>"``). A ``view``, ``click``, ``add_to_cart`` or
``purchase`` carrying a ``rec_id`` is an **outcome** of that response. Events without a
``rec_id`` are organic and only counted.

Rules:

* an ``event_id`` seen before is a duplicate (redelivery) and counted once;
* an outcome is keyed by ``(type, rec_id, item_id)``: a second click on the same item of the same
  response, even under a new ``event_id``, changes nothing;
* outcomes are matched to impressions when the result is taken, so a click that lands in the
  log before its impression (different producers, different partitions) still counts;
* an outcome whose ``rec_id`` matches no impression, or whose item was not among the
  impression's ``item_ids``, or whose impression had no usable variant label, is
  **unattributed** (counted by reason, never dropped silently);
* the impression's variant is the truth: an outcome carrying a different label is attributed
  to the impression's variant and counted in ``variant_mismatch``;
* with ``since_ms``, impressions before it are left out, and so are their outcomes
  (``outcomes_before_since``, not unattributed).

A click, add-to-cart or purchase of a shown item makes the response *clicked* (CTR numerator);
a purchase makes it *converted*. Views are tallied but are not clicks.

>>> from schemas.events import Interaction
>>> imp = Interaction("e1", "impression", "u1", "s1", 1_700_000_000_000,
...                   item_ids=("i1", "i2"), rec_id="r1", variant="home/blend")
>>> click = Interaction("e2", "click", "u1", "s1", 1_700_000_001_000, item_id="i2",
...                     rec_id="r1", variant="home/blend")
>>> stray = Interaction("e3", "click", "u2", "s2", 1_700_000_002_000, item_id="i9",
...                     rec_id="r404", variant="home/blend")
>>> t = attribute([click, imp, click, stray])
>>> v = t.variants["home"]["blend"]
>>> v.responses, v.shown_items, v.clicked_responses, v.clicked_items
(1, 2, 1, 1)
>>> t.duplicates, t.unattributed.no_impression, t.unattributed.total
(1, 1, 1)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from schemas.events import Interaction

OUTCOME_TYPES: Final = frozenset({"view", "click", "add_to_cart", "purchase"})
CLICK_TYPES: Final = frozenset({"click", "add_to_cart", "purchase"})


def split_variant(label: str | None) -> tuple[str, str] | None:
    """``"exp/variant"`` -> ``("exp", "variant")``; ``None`` for a missing or malformed label.

    >>> split_variant("homepage-ranking/diverse"), split_variant("diverse"), split_variant("/x")
    (('homepage-ranking', 'diverse'), None, None)
    """
    if label is None:
        return None
    experiment, sep, variant = label.partition("/")
    if not sep or not experiment or not variant:
        return None
    return experiment, variant


@dataclass(frozen=True, slots=True)
class VariantTally:
    responses: int = 0  # impressions (recommendation responses)
    shown_items: int = 0  # items over all responses
    users: int = 0  # distinct users who got at least one response
    clicked_responses: int = 0  # responses with >= 1 click / add_to_cart / purchase
    clicked_items: int = 0  # distinct (rec_id, item) clicked, carted or bought
    carted_responses: int = 0  # responses with >= 1 add_to_cart
    purchased_responses: int = 0  # responses with >= 1 purchase (conversion numerator)
    purchased_items: int = 0  # distinct (rec_id, item) bought
    viewed_items: int = 0  # distinct (rec_id, item) viewed


@dataclass(frozen=True, slots=True)
class Unattributed:
    """Outcomes that could not be given to a variant, by reason (distinct (type, rec, item))."""

    no_impression: int = 0  # the rec_id matches no impression in the log
    item_not_shown: int = 0  # the response did not show that item
    no_variant: int = 0  # the impression had no (or a malformed) variant label

    @property
    def total(self) -> int:
        return self.no_impression + self.item_not_shown + self.no_variant


@dataclass(frozen=True, slots=True)
class Tallies:
    variants: dict[str, dict[str, VariantTally]] = field(default_factory=dict)
    users_in_several_variants: dict[str, int] = field(default_factory=dict)
    events: int = 0  # distinct events folded
    duplicates: int = 0  # events whose event_id was seen before
    organic: int = 0  # events without rec_id
    ignored: int = 0  # events with a rec_id that are neither impression nor outcome (rating)
    duplicate_rec_ids: int = 0  # impressions reusing a rec_id (the first one is kept)
    impressions_without_variant: int = 0
    impressions_before_since: int = 0
    outcomes_before_since: int = 0
    variant_mismatch: int = 0  # outcomes whose label differs from their impression's
    unattributed: Unattributed = field(default_factory=Unattributed)

    def observed(self) -> dict[str, set[str]]:
        """Experiment name -> the variant names seen in the data."""
        return {exp: set(vs) for exp, vs in self.variants.items()}


@dataclass(frozen=True, slots=True)
class _Impression:
    key: tuple[str, str] | None
    label: str | None
    items: frozenset[str]
    user_id: str


@dataclass(slots=True)
class _Acc:
    responses: int = 0
    shown_items: int = 0
    users: set[str] = field(default_factory=set)
    clicked: set[str] = field(default_factory=set)
    clicked_items: set[tuple[str, str]] = field(default_factory=set)
    carted: set[str] = field(default_factory=set)
    purchased: set[str] = field(default_factory=set)
    purchased_items: set[tuple[str, str]] = field(default_factory=set)
    viewed_items: set[tuple[str, str]] = field(default_factory=set)

    def freeze(self) -> VariantTally:
        return VariantTally(
            responses=self.responses, shown_items=self.shown_items, users=len(self.users),
            clicked_responses=len(self.clicked), clicked_items=len(self.clicked_items),
            carted_responses=len(self.carted), purchased_responses=len(self.purchased),
            purchased_items=len(self.purchased_items), viewed_items=len(self.viewed_items))


class Attribution:
    """The accumulator: :meth:`add` events in log order, then take :meth:`result`.

    The result does not depend on the order of the events nor on repeated deliveries (as long
    as an ``event_id`` or a ``rec_id`` is not reused for different content, where the first one
    seen wins).
    """

    def __init__(self, since_ms: int | None = None) -> None:
        self._since_ms = since_ms
        self._event_ids: set[str] = set()
        self._impressions: dict[str, _Impression] = {}
        self._early: set[str] = set()  # rec_ids of impressions before since_ms
        # (type, rec_id, item) -> every variant label its events carried (a set: the same
        # outcome may be logged twice with different labels, and the count must not depend
        # on which arrived first)
        self._outcomes: dict[tuple[str, str, str], set[str | None]] = {}
        self._duplicates = 0
        self._organic = 0
        self._ignored = 0
        self._duplicate_rec_ids = 0

    def add(self, event: Interaction) -> None:
        if event.event_id in self._event_ids:
            self._duplicates += 1
            return
        self._event_ids.add(event.event_id)
        rec_id = event.rec_id
        if rec_id is None:
            self._organic += 1
        elif event.type == "impression":
            self._add_impression(rec_id, event)
        elif event.type in OUTCOME_TYPES and event.item_id is not None:
            self._outcomes.setdefault((event.type, rec_id, event.item_id), set()).add(
                event.variant)
        else:
            self._ignored += 1

    def add_all(self, events: Iterable[Interaction]) -> Attribution:
        for event in events:
            self.add(event)
        return self

    def _add_impression(self, rec_id: str, event: Interaction) -> None:
        if rec_id in self._impressions or rec_id in self._early:
            self._duplicate_rec_ids += 1
            return
        if self._since_ms is not None and event.ts < self._since_ms:
            self._early.add(rec_id)
            return
        self._impressions[rec_id] = _Impression(split_variant(event.variant), event.variant,
                                                frozenset(event.item_ids), event.user_id)

    def result(self) -> Tallies:
        accs: dict[tuple[str, str], _Acc] = {}
        without_variant = 0
        for imp in self._impressions.values():
            if imp.key is None:
                without_variant += 1
                continue
            acc = accs.setdefault(imp.key, _Acc())
            acc.responses += 1
            acc.shown_items += len(imp.items)
            acc.users.add(imp.user_id)
        no_impression = item_not_shown = no_variant = before_since = mismatch = 0
        for (etype, rec_id, item), labels in self._outcomes.items():
            found = self._impressions.get(rec_id)
            if found is None:
                if rec_id in self._early:
                    before_since += 1
                else:
                    no_impression += 1
                continue
            if found.key is None:
                no_variant += 1
                continue
            if item not in found.items:
                item_not_shown += 1
                continue
            if any(label is not None and label != found.label for label in labels):
                mismatch += 1
            acc = accs[found.key]
            if etype in CLICK_TYPES:
                acc.clicked.add(rec_id)
                acc.clicked_items.add((rec_id, item))
            if etype == "add_to_cart":
                acc.carted.add(rec_id)
            elif etype == "purchase":
                acc.purchased.add(rec_id)
                acc.purchased_items.add((rec_id, item))
            elif etype == "view":
                acc.viewed_items.add((rec_id, item))
        variants: dict[str, dict[str, VariantTally]] = {}
        for (exp, var), acc in sorted(accs.items()):
            variants.setdefault(exp, {})[var] = acc.freeze()
        return Tallies(
            variants=variants, users_in_several_variants=_users_in_several(accs),
            events=len(self._event_ids), duplicates=self._duplicates, organic=self._organic,
            ignored=self._ignored, duplicate_rec_ids=self._duplicate_rec_ids,
            impressions_without_variant=without_variant,
            impressions_before_since=len(self._early), outcomes_before_since=before_since,
            variant_mismatch=mismatch,
            unattributed=Unattributed(no_impression, item_not_shown, no_variant))


def _users_in_several(accs: dict[tuple[str, str], _Acc]) -> dict[str, int]:
    """Per experiment, the users who got responses from more than one of its variants (with
    per-user assignment this is 0; otherwise per-response rates are not independent)."""
    seen: dict[str, dict[str, int]] = {}
    for (exp, _var), acc in accs.items():
        counts = seen.setdefault(exp, {})
        for user in acc.users:
            counts[user] = counts.get(user, 0) + 1
    return {exp: sum(1 for n in counts.values() if n > 1) for exp, counts in sorted(seen.items())}


def attribute(events: Iterable[Interaction], since_ms: int | None = None) -> Tallies:
    """Fold all ``events`` and return the tallies."""
    return Attribution(since_ms).add_all(events).result()
