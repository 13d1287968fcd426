"""recs.abtest.attribution: hand-made cases, a brute-force reference and order/duplicate
invariance (Hypothesis)."""

from __future__ import annotations

import dataclasses
import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from recs.abtest.attribution import (
    CLICK_TYPES,
    OUTCOME_TYPES,
    Attribution,
    Tallies,
    attribute,
    split_variant,
)
from schemas.events import Interaction

T0 = 1_800_000_000_000
_ids = itertools.count()


def imp(rec: str, items: tuple[str, ...], variant: str | None = "home/a", user: str = "u1",
        ts: int = T0, eid: str | None = None) -> Interaction:
    return Interaction(eid or f"e{next(_ids)}", "impression", user, f"{user}-s", ts,
                       item_ids=items, rec_id=rec, variant=variant)


def out(etype: str, rec: str | None, item: str, variant: str | None = "home/a",
        user: str = "u1", eid: str | None = None, value: float | None = None) -> Interaction:
    return Interaction(eid or f"e{next(_ids)}", etype, user, f"{user}-s", T0 + 1_000,
                       item_id=item, rec_id=rec, variant=variant, value=value)


def test_a_response_with_clicks_carts_and_a_purchase() -> None:
    t = attribute([
        imp("r1", ("i1", "i2", "i3")), imp("r2", ("i1", "i4"), user="u2"),
        imp("r3", ("i5",), user="u1"),
        out("click", "r1", "i1"), out("click", "r1", "i2"), out("add_to_cart", "r1", "i2"),
        out("purchase", "r1", "i2"), out("view", "r2", "i4", user="u2"),
    ])
    v = t.variants["home"]["a"]
    assert (v.responses, v.shown_items, v.users) == (3, 6, 2)
    assert (v.clicked_responses, v.clicked_items) == (1, 2)  # the view of r2 is no click
    assert (v.carted_responses, v.purchased_responses, v.purchased_items) == (1, 1, 1)
    assert v.viewed_items == 1
    assert t.unattributed.total == 0


def test_redelivery_and_repeated_clicks_count_once() -> None:
    click = out("click", "r1", "i1", eid="c1")
    t = attribute([imp("r1", ("i1", "i2"), eid="m1"), imp("r1", ("i1", "i2"), eid="m1"),
                   click, click, out("click", "r1", "i1", eid="c2")])
    v = t.variants["home"]["a"]
    assert (v.responses, v.clicked_responses, v.clicked_items) == (1, 1, 1)
    assert t.duplicates == 2  # the same event_id again; c2 is a new event on the same item
    assert t.events == 3


def test_clicks_before_their_impression_are_attributed() -> None:
    t = attribute([out("click", "r1", "i2"), imp("r1", ("i1", "i2"))])
    assert t.variants["home"]["a"].clicked_responses == 1


def test_unattributed_outcomes_are_counted_by_reason() -> None:
    t = attribute([
        imp("r1", ("i1",)), imp("r2", ("i1",), variant=None), imp("r3", ("i1",), variant="bad"),
        out("click", "r404", "i1"), out("click", "r404", "i1"),  # one (type, rec, item)
        out("purchase", "r404", "i1"),
        out("click", "r1", "i9"),  # i9 was not shown in r1
        out("click", "r2", "i1"), out("click", "r3", "i1"),
    ])
    u = t.unattributed
    assert (u.no_impression, u.item_not_shown, u.no_variant, u.total) == (2, 1, 2, 5)
    assert t.impressions_without_variant == 2
    assert t.variants["home"]["a"].clicked_responses == 0


def test_the_impression_decides_the_variant() -> None:
    t = attribute([imp("r1", ("i1",), variant="home/b"), out("click", "r1", "i1", "home/a")])
    assert t.variant_mismatch == 1
    assert t.variants["home"]["b"].clicked_responses == 1
    assert "a" not in t.variants["home"]


def test_organic_ignored_and_duplicate_rec_ids() -> None:
    t = attribute([
        out("click", None, "i1"), imp("r1", ("i1",)), imp("r1", ("i2",)),
        out("rating", "r1", "i1", value=4.0), out("click", "r1", "i2"),
    ])
    assert (t.organic, t.ignored, t.duplicate_rec_ids) == (1, 1, 1)
    assert t.unattributed.item_not_shown == 1  # the first impression of r1 (i1 only) wins


def test_since_drops_earlier_responses_and_their_outcomes() -> None:
    t = attribute([imp("old", ("i1",), ts=T0 - 10), imp("new", ("i1",), ts=T0),
                   out("click", "old", "i1"), out("click", "new", "i1")], since_ms=T0)
    assert t.variants["home"]["a"].responses == 1
    assert (t.impressions_before_since, t.outcomes_before_since) == (1, 1)
    assert t.unattributed.total == 0


def test_users_seeing_several_variants_are_flagged() -> None:
    t = attribute([imp("r1", ("i1",), "home/a", user="u1"), imp("r2", ("i1",), "home/b", "u1"),
                   imp("r3", ("i1",), "home/b", user="u2"), imp("r4", ("i1",), "x/a", "u2")])
    assert t.users_in_several_variants == {"home": 1, "x": 0}
    assert t.observed() == {"home": {"a", "b"}, "x": {"a"}}


def test_split_variant() -> None:
    assert split_variant("e/v/w") == ("e", "v/w")
    assert split_variant(None) is None
    assert split_variant("e/") is None


def test_empty_log() -> None:
    assert attribute([]) == Tallies()


# --- generated logs: brute-force reference and invariance ----------------------------------

VARIANTS = ["home/a", "home/b", "pdp/control", None, "malformed"]
ITEMS = [f"i{n}" for n in range(6)]


@st.composite
def logs(draw: st.DrawFn) -> list[Interaction]:
    n_imp = draw(st.integers(0, 12))
    events: list[Interaction] = []
    for r in range(n_imp):
        items = tuple(draw(st.lists(st.sampled_from(ITEMS), min_size=1, max_size=4,
                                    unique=True)))
        events.append(imp(f"r{r}", items, draw(st.sampled_from(VARIANTS)),
                          user=f"u{draw(st.integers(0, 4))}"))
    for _ in range(draw(st.integers(0, 30))):
        etype = draw(st.sampled_from(["view", "click", "add_to_cart", "purchase", "rating"]))
        rec = draw(st.one_of(st.none(), st.integers(0, n_imp + 2).map(lambda r: f"r{r}")))
        events.append(out(etype, rec, draw(st.sampled_from(ITEMS)),
                          draw(st.sampled_from(VARIANTS)),
                          value=1.0 if etype == "rating" else None))
    return events


def reference(events: list[Interaction]) -> dict[str, object]:
    """Brute force: for every response, scan the whole log for its outcomes."""
    impressions = {e.rec_id: e for e in events if e.type == "impression" and e.rec_id}
    per_variant: dict[tuple[str, str], list[int]] = {}
    for rec, e in impressions.items():
        key = split_variant(e.variant)
        if key is None:
            continue
        row = per_variant.setdefault(key, [0, 0, 0, 0])
        mine = {(o.type, o.item_id) for o in events
                if o.rec_id == rec and o.type in OUTCOME_TYPES and o.item_id in e.item_ids}
        row[0] += 1
        row[1] += any(t in CLICK_TYPES for t, _ in mine)
        row[2] += len({i for t, i in mine if t in CLICK_TYPES})
        row[3] += any(t == "purchase" for t, _ in mine)
    outcomes = {(e.type, e.rec_id, e.item_id) for e in events
                if e.rec_id and e.type in OUTCOME_TYPES}
    no_imp = sum(1 for _, r, _ in outcomes if r not in impressions)
    not_shown = sum(1 for _, r, i in outcomes if r in impressions
                    and split_variant(impressions[r].variant) and i not in impressions[r].item_ids)
    return {"variants": per_variant, "no_impression": no_imp, "item_not_shown": not_shown}


def observed(t: Tallies) -> dict[str, object]:
    return {"variants": {(exp, var): [v.responses, v.clicked_responses, v.clicked_items,
                                      v.purchased_responses]
                         for exp, vs in t.variants.items() for var, v in vs.items()},
            "no_impression": t.unattributed.no_impression,
            "item_not_shown": t.unattributed.item_not_shown}


@settings(max_examples=200)
@given(logs())
def test_matches_the_brute_force_reference(events: list[Interaction]) -> None:
    assert observed(attribute(events)) == reference(events)


@settings(max_examples=200)
@given(logs(), st.randoms(use_true_random=False), st.data())
def test_order_and_redelivery_do_not_change_the_result(events: list[Interaction],
                                                       rng: random.Random,
                                                       data: st.DataObject) -> None:
    base = attribute(events)
    replayed = events + data.draw(st.lists(st.sampled_from(events), max_size=10)) \
        if events else []
    rng.shuffle(replayed)
    again = attribute(replayed)
    assert again == dataclasses.replace(base, duplicates=len(replayed) - len(events))


def test_the_accumulator_can_be_fed_one_by_one() -> None:
    events = [imp("r1", ("i1",)), out("click", "r1", "i1")]
    acc = Attribution()
    for e in events:
        acc.add(e)
    assert acc.result() == attribute(events)
