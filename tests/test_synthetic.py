"""The synthetic storefront: determinism, validity, and the structure planted in it."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator

import pytest

from recs.synthetic import (
    DEFAULT_START_TS,
    MALFORMED_KINDS,
    Storefront,
    check_malformed,
    malformed_events,
)
from schemas.events import Interaction, ItemUpsert, decode_interaction, decode_item

N_ITEMS = 2000
N_EVENTS = 60_000


@pytest.fixture(scope="module")
def shop() -> Storefront:
    return Storefront(seed=11, n_items=N_ITEMS, n_users=3000, n_categories=20)


@pytest.fixture(scope="module")
def stream(shop: Storefront) -> list[Interaction | ItemUpsert]:
    return list(shop.stream(N_EVENTS))


@pytest.fixture(scope="module")
def events(stream: list[Interaction | ItemUpsert]) -> list[Interaction]:
    return [e for e in stream if isinstance(e, Interaction)]


def by_session(events: list[Interaction]) -> dict[str, list[Interaction]]:
    out: dict[str, list[Interaction]] = defaultdict(list)
    for e in events:
        out[e.session_id].append(e)
    return out


def test_same_seed_same_data(shop: Storefront, events: list[Interaction]) -> None:
    again = Storefront(seed=11, n_items=N_ITEMS, n_users=3000, n_categories=20)
    assert again.catalogue() == shop.catalogue()
    assert list(again.events(5000)) == events[:5000]
    assert list(shop.events(5000)) == events[:5000]  # a second call replays from the start
    other = Storefront(seed=12, n_items=N_ITEMS, n_users=3000, n_categories=20)
    assert list(other.events(100)) != events[:100]


def test_everything_passes_the_contract(shop: Storefront,
                                        stream: list[Interaction | ItemUpsert]) -> None:
    for item in shop.catalogue():
        assert decode_item(item.to_json()) == item
    for rec in stream:
        if isinstance(rec, Interaction):
            assert decode_interaction(rec.to_json()) == rec
        else:
            assert decode_item(rec.to_json()) == rec
    assert len({e.event_id for e in stream if isinstance(e, Interaction)}) == N_EVENTS


def test_catalogue_structure(shop: Storefront) -> None:
    items = shop.catalogue()
    assert len(items) == N_ITEMS and len({i.item_id for i in items}) == N_ITEMS
    assert len({i.category for i in items}) == 20
    assert all(i.title and i.brand and i.price and i.price > 0 for i in items)
    out_of_stock = sum(i.stock == 0 for i in items) / N_ITEMS
    assert 0.01 < out_of_stock < 0.15
    for i in items[:200]:
        subs = shop.substitutes(i.item_id)
        assert 2 <= len(subs) <= 4 and i.item_id not in subs
        assert all(shop.category_of(s) == i.category for s in subs)
        assert all(shop.category_of(c) != i.category for c in shop.complements(i.item_id))


def test_time_order_start_and_event_time_rate() -> None:
    start = 1_750_000_000_000
    fast = Storefront(seed=3, n_items=500, n_users=500, n_categories=10, rate=200.0)
    evs = list(fast.events(40_000, start_ts=start))
    assert evs[0].ts == start
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(evs))
    late = evs[len(evs) // 2:]  # past the warm-up, when sessions overlap as in steady state
    rate = len(late) / ((late[-1].ts - late[0].ts) / 1000)
    assert 170 < rate < 230  # events per second of event time, target 200


def test_sessions_have_seconds_between_events(events: list[Interaction]) -> None:
    gaps = []
    for sess in by_session(events).values():
        assert len({e.user_id for e in sess}) == 1
        gaps += [(b.ts - a.ts) / 1000 for a, b in itertools.pairwise(sess)
                 if b.type == "view"]
    assert 2 < statistics.median(gaps) < 60


def test_zipf_head(events: list[Interaction]) -> None:
    views = Counter(e.item_id for e in events if e.type == "view")
    counts = sorted(views.values(), reverse=True)
    head = sum(counts[: N_ITEMS // 10]) / sum(counts)
    assert head > 0.4  # the top 10 % of items draw a large share of the views
    assert len(views) > N_ITEMS / 2  # and the long tail is still visited


def test_funnel_rates_are_plausible(events: list[Interaction]) -> None:
    types = Counter(e.type for e in events)
    assert 0.2 < types["click"] / types["view"] < 0.5
    assert 0.01 < types["add_to_cart"] / types["view"] < 0.08
    assert 0 < types["purchase"] < types["add_to_cart"]
    sessions = by_session(events)
    converted = sum(any(e.type == "purchase" for e in s) for s in sessions.values())
    assert 0.01 < converted / len(sessions) < 0.10
    for sess in sessions.values():
        carted = {e.item_id for e in sess if e.type == "add_to_cart"}
        assert {e.item_id for e in sess if e.type == "purchase"} <= carted


def test_out_of_stock_items_are_never_carted(shop: Storefront,
                                             stream: list[Interaction | ItemUpsert]) -> None:
    stock = {i.item_id: i.stock for i in shop.catalogue()}
    for rec in stream:
        if isinstance(rec, ItemUpsert):
            stock[rec.item_id] = rec.stock
        elif rec.type == "add_to_cart":
            assert stock[rec.item_id or ""] != 0, rec


def test_substitutes_detectable_by_co_visitation(shop: Storefront,
                                                 events: list[Interaction]) -> None:
    follows: dict[str, Counter[str]] = defaultdict(Counter)
    for sess in by_session(events).values():
        views = [e.item_id or "" for e in sess if e.type == "view"]
        for a, b in itertools.pairwise(views):
            if a != b:
                follows[a][b] += 1
    hits = total = 0
    for item, nxt in follows.items():
        if sum(nxt.values()) >= 10 and int(item[1:]) < N_ITEMS:
            total += 1
            hits += nxt.most_common(1)[0][0] in shop.substitutes(item)
    assert total > 50 and hits / total > 0.6


def test_complements_detectable_in_purchases(shop: Storefront,
                                             events: list[Interaction]) -> None:
    pairs = complement_pairs = 0
    for sess in by_session(events).values():
        bought = sorted({e.item_id or "" for e in sess if e.type == "purchase"})
        for i, a in enumerate(bought):
            for b in bought[i + 1:]:
                pairs += 1
                complement_pairs += b in shop.complements(a) or a in shop.complements(b)
    assert pairs > 30 and complement_pairs / pairs > 0.4


def test_new_items_are_announced_before_first_use(stream: list[Interaction | ItemUpsert]
                                                  ) -> None:
    announced: dict[str, int] = {}
    used: set[str] = set()
    for pos, rec in enumerate(stream):
        if isinstance(rec, ItemUpsert) and "new" in rec.tags:
            announced[rec.item_id] = pos
        elif isinstance(rec, Interaction):
            for item in (rec.item_id, *rec.item_ids):
                if item and int(item[1:]) >= N_ITEMS:
                    assert item in announced, f"{item} used before its upsert"
                    used.add(item)
    assert len(announced) >= N_EVENTS // 2000 - 1
    assert min(announced.values()) > 0  # launched mid-stream, not up front
    assert len(used) > len(announced) / 2  # and they do get traffic


def test_impressions_and_attributed_clicks(events: list[Interaction]) -> None:
    shown: dict[str, tuple[str, tuple[str, ...]]] = {}
    attributed = 0
    for e in events:
        if e.type == "impression":
            assert e.rec_id and e.variant in ("A", "B") and len(e.item_ids) >= 1
            shown[e.rec_id] = (e.user_id, e.item_ids)
        elif e.rec_id is not None:
            assert e.type == "click"
            user, items = shown[e.rec_id]
            assert user == e.user_id and e.item_id in items
            attributed += 1
    assert len(shown) > 1000 and attributed > 0.2 * len(shown)


def test_shards_split_users(shop: Storefront) -> None:
    odd = Storefront(seed=2, n_items=100, n_users=7, n_categories=4)
    for i in range(3):
        assert {int(e.user_id[1:]) % 3 for e in odd.events(300, shard=(i, 3))} == {i}
    parts = [list(shop.events(3000, shard=(i, 3))) for i in range(3)]
    users = [{e.user_id for e in p} for p in parts]
    assert not (users[0] & users[1]) and not (users[1] & users[2])
    assert all(int(u[1:]) % 3 == i for i, us in enumerate(users) for u in us)
    ids = [e.event_id for p in parts for e in p]
    assert len(set(ids)) == len(ids)


def test_rejects_impossible_shapes() -> None:
    with pytest.raises(ValueError, match="5 items per category"):
        Storefront(n_items=20, n_categories=10)
    with pytest.raises(ValueError, match="shard"):
        list(Storefront(n_items=50, n_categories=2).events(1, shard=(2, 2)))


def test_default_start(shop: Storefront) -> None:
    assert next(iter(shop.events(1))).ts == DEFAULT_START_TS


# --- malformed input ------------------------------------------------------------------------------

def malformed(n: int) -> Iterator[tuple[str, str, bytes]]:
    for bad in malformed_events(5, n):
        yield bad.kind, bad.field, bad.raw


def test_every_malformed_event_fails_on_its_labelled_field() -> None:
    seen = set()
    for bad in malformed_events(5, 3 * len(MALFORMED_KINDS)):
        exc = check_malformed(bad)
        assert exc is not None, f"{bad.kind} was accepted: {bad.raw[:80]!r}"
        assert exc.field == bad.field, (bad.kind, str(exc))
        seen.add(bad.kind)
    assert seen == set(MALFORMED_KINDS)


def test_malformed_covers_the_required_fault_classes() -> None:
    kinds = set(MALFORMED_KINDS)
    for needed in ("bad_json", "missing_user_id", "wrong_type_ts_string", "unknown_type",
                   "ts_in_seconds", "ts_year_3000", "oversize", "non_object_array",
                   "unknown_field"):
        assert needed in kinds
    oversize = next(b for b in malformed_events(1, len(MALFORMED_KINDS)) if b.kind == "oversize")
    assert len(oversize.raw) > 16 * 1024


def test_malformed_is_deterministic() -> None:
    assert list(malformed(50)) == list(malformed(50))
    assert list(malformed(50)) != [m for m in (
        (b.kind, b.field, b.raw) for b in malformed_events(6, 50))]
