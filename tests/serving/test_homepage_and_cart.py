"""The homepage and cart endpoints through a real Redis: merged sources with provenance,
rules, explanations, cold start by context, A/B variant and rec_id on every answer."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from serving.experiments import DEFAULT_VARIANT, load_experiments
from state.keys import (
    item_key,
    itemstats_key,
    new_arrivals_key,
    session_key,
    trending_context_key,
)
from state.records import Update
from state.redis_store import RedisStore
from tests.serving.kit import NOW, T_TREND, AsgiClient, Reply, get, ids, one, ranked, run

pytestmark = pytest.mark.integration


def by_id(reply: Reply) -> dict[str, dict[str, Any]]:
    return {i["item_id"]: i for i in reply.json["items"]}


def test_homepage_merges_sources_with_provenance(filled: str) -> None:
    r = one(filled, "/v1/users/u1/recommendations?k=6&explain=true")
    assert r.status == 200
    doc = r.json
    items = by_id(r)
    assert "i7" not in items  # deleted in the catalogue
    # the session's neighbours, the bought-together list and the reminders all contribute
    sources = {s["source"] for i in doc["items"] for s in i["explanation"]["sources"]}
    assert {"session", "bought_together", "recently_viewed"} <= sources
    assert items["i6"]["reason"] == "viewed Running Shoe"
    assert items["i5"]["source"] == "recently_viewed"
    assert items["i5"]["reason"] == "you viewed this recently"
    # i4 is both a similar and a bought-together item of i1: both pieces of evidence are kept
    i4 = {s["source"]: s for s in items["i4"]["explanation"]["sources"]}
    assert i4["bought_together"]["because"] == "i1"
    assert i4["bought_together"]["reason"] == "often bought with Red Mug"
    # every answer is identified and assigned
    assert len(doc["rec_id"]) == 24
    exp = load_experiments().experiments[0]
    assert doc["variant"] == exp.assign("u1").label
    assert doc["freshness"]["as_of_ms"] is not None and doc["degraded"] is False
    assert "fallback" not in doc
    # scores are ranked and the explanation says where each item stood before the rules
    ranks = [i["explanation"]["rank"] for i in doc["items"]]
    assert ranks == list(range(1, len(ranks) + 1))


def test_homepage_without_explain_is_compact_and_rec_ids_differ(filled: str) -> None:
    a, b = get(filled, "/v1/users/u1/recommendations?k=3", "/v1/users/u1/recommendations?k=3")
    assert all("explanation" not in i for i in a.json["items"])
    assert ids(a) == ids(b)  # deterministic for the same data and clock
    assert a.json["rec_id"] != b.json["rec_id"]
    assert a.json["variant"] == b.json["variant"]  # sticky assignment


def test_homepage_cold_start_uses_context_trending(filled: str, store: RedisStore) -> None:
    store.apply([
        Update(trending_context_key("device", "mobile"), 1, T_TREND,
               ranked(("i6", 9.0, T_TREND), ("i4", 1.0, T_TREND))),
        Update(trending_context_key("country", "DE"), 1, T_TREND,
               ranked(("i4", 5.0, T_TREND))),
    ])
    r = one(filled, "/v1/users/nobody/recommendations?k=4&context=device:mobile,country:DE")
    assert r.status == 200
    assert r.json["fallback"] == "no_session"
    assert ids(r)[:2] == ["i4", "i6"]  # i4 leads in DE and is on the mobile list too
    reasons = {i["item_id"]: i["reason"] for i in r.json["items"]}
    assert reasons["i4"] == "trending in DE"
    assert reasons["i6"] == "trending on mobile"
    # no context: global trending, diversified (the shoe i5 passes the kitchen items i1, i2)
    plain = one(filled, "/v1/users/nobody/recommendations?k=2")
    assert ids(plain) == ["i3", "i5"]
    assert plain.json["items"][1]["rules"] == ["moved by diversity (MMR)"]


def test_homepage_rules_filter_sold_out_and_excluded(filled: str, store: RedisStore) -> None:
    store.apply([Update(item_key("i6"), 9, NOW, {"item_id": "i6", "title": "Socks",
                                                 "category": "shoes", "stock": 0})])
    r = one(filled, "/v1/users/u1/recommendations?k=10&exclude=i2")
    assert "i6" not in ids(r) and "i2" not in ids(r)
    assert len(ids(r)) == len(set(ids(r)))


def test_cart_recommendations(filled: str) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        return [await client.post("/v1/cart/recommendations?k=3&explain=1",
                                  {"items": ["i1"], "user_id": "u9"}),
                await client.post("/v1/cart/recommendations", {"items": ["lonely"]}),
                await client.post("/v1/cart/recommendations", {"items": []}),
                await client.post("/v1/cart/recommendations", raw=b"{not json"),
                await client.post("/v1/cart/recommendations", {"items": ["i1"], "user_id": 5})]

    good, fallback, empty, broken, bad_user = run(filled, body)
    assert good.status == 200
    assert ids(good) == ["i4", "i3", "i2"]
    assert good.json["items"][0]["reason"] == "often bought with Red Mug"
    i3 = {s["source"] for s in good.json["items"][1]["explanation"]["sources"]}
    assert i3 == {"bought_together", "similar"}
    # no bought-together data for the cart: trending in the cart's category, never the cart
    assert fallback.json["fallback"] == "no_neighbours"
    assert "lonely" not in ids(fallback) and ids(fallback)[0] == "i6"
    assert (empty.status, empty.json["error"]["parameter"]) == (422, "items")
    assert (broken.status, broken.json["error"]["code"]) == (422, "invalid_body")
    assert (bad_user.status, bad_user.json["error"]["parameter"]) == (422, "user_id")


def test_every_recommendation_endpoint_carries_rec_id_and_variant(filled: str) -> None:
    urls = ["/v1/trending", "/v1/trending?category=shoes", "/v1/items/i1/similar",
            "/v1/items/i1/bought-together", "/v1/users/u1/session-recommendations",
            "/v1/users/u1/recommendations"]
    for reply in get(filled, *urls):
        assert reply.status == 200
        assert reply.json["rec_id"] and reply.json["variant"]
    # placements no experiment covers are served by the default variant
    assert get(filled, "/v1/trending")[0].json["variant"] == DEFAULT_VARIANT


def test_bad_query_options_are_422_naming_the_parameter(filled: str) -> None:
    for url, param in [("/v1/users/u1/recommendations?context=device", "context"),
                       ("/v1/users/u1/recommendations?context=color:red", "context"),
                       ("/v1/users/u1/recommendations?explain=maybe", "explain"),
                       ("/v1/items/i1/similar?user_id=", "user_id")]:
        r = one(filled, url)
        assert (r.status, r.json["error"]["parameter"]) == (422, param), url


def _explore_everything(tmp_path: Path) -> str:
    rules = tmp_path / "rules.toml"
    rules.write_text("[exploration]\nslot = 2\nepsilon = 1.0\n[diversity]\nmethod = \"none\"\n")
    return str(rules)


def _new_items(store: RedisStore) -> None:
    """Two new items: n1 never interacted with, n2 already popular."""
    store.apply([
        Update(item_key("n1"), 1, NOW - 1000, {"item_id": "n1", "title": "Brand New",
                                               "category": "kitchen", "first_seen_ms": NOW - 1000}),
        Update(item_key("n2"), 1, NOW - 2000, {"item_id": "n2", "title": "Newish",
                                               "category": "kitchen", "first_seen_ms": NOW - 2000}),
        Update(itemstats_key("n2"), 3, NOW, {"counts": {"view": 3}, "log_pop": 1.0}),
        Update(new_arrivals_key("kitchen"), 2, NOW - 1000,
               ranked(("n1", 2.0, NOW - 1000), ("n2", 1.0, NOW - 2000))),
        Update(new_arrivals_key(None), 2, NOW - 1000,
               ranked(("n1", 2.0, NOW - 1000), ("n2", 1.0, NOW - 2000))),
    ])


def test_exploration_slot_shows_a_cold_new_item_with_its_propensity(
        filled: str, store: RedisStore, tmp_path: Path) -> None:
    _new_items(store)
    r = one(filled, "/v1/users/u1/recommendations?k=4&explain=true",
            rules_file=_explore_everything(tmp_path))
    doc = r.json
    # only n1 is cold (n2 has interactions): with epsilon 1 it takes slot 2 with propensity 1/1
    assert doc["exploration"] == {"item_id": "n1", "slot": 2, "propensity": 1.0}
    item = doc["items"][1]
    assert item["item_id"] == "n1" and item["reason"] == "new arrival"
    assert item["rules"] == ["exploration slot 2"]
    assert len(doc["items"]) == 4
    # the default rules explore one answer in ten, decided by the answer's id
    answers = get(filled, *["/v1/users/u1/recommendations?k=3"] * 60)
    explored = sum("exploration" in a.json for a in answers)
    assert 0 < explored < 20


def test_new_arrivals_fill_in_when_nothing_else_is_left(filled: str, store: RedisStore) -> None:
    _new_items(store)
    r = one(filled, "/v1/users/u_dead_end/recommendations?k=20&category=kitchen&explain=1")
    reasons = {i["item_id"]: i["reason"] for i in r.json["items"]}
    assert reasons.get("n1") == "new in kitchen"


def test_two_identical_requests_on_a_stale_cached_answer_both_get_it(
        filled: str, store: RedisStore) -> None:
    # both find the cached answer, both await the check of its data, both see it changed and
    # compute; each must leave the in-flight register as it found it (once a KeyError: a 500)
    url = "/v1/users/u1/recommendations?k=4"

    async def body(client: AsgiClient) -> tuple[Reply, list[Reply]]:
        first = await client.get(url)
        # the session moves on to an item whose lists were not read yet: the rebuild waits
        store.apply([Update(session_key("u1"), 8, NOW - 1000, {
            "session_id": "s1", "start": NOW - 600_000, "last_ts": NOW - 1000,
            "events": [["i1", "view", NOW - 60_000], ["i5", "view", NOW - 5_000],
                       ["i3", "view", NOW - 1000]], "basket": [], "purchased": []})])
        return first, list(await asyncio.gather(client.get(url), client.get(url)))

    first, twins = run(filled, body)
    assert first.status == 200 and [r.status for r in twins] == [200, 200]
    assert ids(twins[0]) == ids(twins[1]) != ids(first)
