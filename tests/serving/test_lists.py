"""Trending, similar items and bought together through ASGI against a real Redis."""

from __future__ import annotations

import pytest

from tests.serving.kit import HOUR_S, NOW, T_SIM, T_TREND, decayed, get, ids, one

# ---- trending ------------------------------------------------------------------------------

@pytest.mark.integration
def test_trending_global_order_scores_metadata_and_freshness(filled: str) -> None:
    r = one(filled, "/v1/trending?k=3")
    assert r.status == 200
    assert r.headers[b"content-type"] == b"application/json"
    doc = r.json
    # i7 is deleted in the catalogue: dropped, the next one moves up
    assert ids(r) == ["i3", "i1", "i2"]
    assert doc["source"] == "trending"
    assert doc["degraded"] is False
    assert "fallback" not in doc
    first = doc["items"][0]
    assert first == {"item_id": "i3", "score": pytest.approx(decayed(8.0, T_TREND), rel=1e-6),
                     "source": "trending", "reason": "trending", "title": "Teapot",
                     "category": "kitchen", "price": 25.0}
    # an hour older at equal weight halves the score
    assert doc["items"][2]["score"] == pytest.approx(decayed(2.0, T_TREND - 3_600_000), rel=1e-6)
    assert doc["freshness"] == {"as_of_ms": T_TREND, "newest_ms": T_TREND,
                                "age_ms": NOW - T_TREND}


@pytest.mark.integration
def test_trending_scores_decay_with_the_injected_clock(filled: str) -> None:
    later = NOW + int(HOUR_S * 1000)
    r0, = get(filled, "/v1/trending?k=1")
    r1, = get(filled, "/v1/trending?k=1", now=later)
    assert r1.json["items"][0]["score"] == pytest.approx(r0.json["items"][0]["score"] / 2)
    assert r1.json["freshness"]["age_ms"] == later - T_TREND


@pytest.mark.integration
def test_trending_in_category_and_unknown_category(filled: str) -> None:
    r, missing = get(filled, "/v1/trending?category=shoes", "/v1/trending?category=garden")
    assert ids(r) == ["i6", "i5", "lonely"]
    assert {i["reason"] for i in r.json["items"]} == {"trending in shoes"}
    assert r.json["freshness"]["as_of_ms"] == T_TREND - 1000
    assert missing.status == 200
    assert missing.json["items"] == []
    assert missing.json["freshness"] == {"as_of_ms": None, "newest_ms": None, "age_ms": None}


@pytest.mark.integration
@pytest.mark.parametrize(("query", "param", "value"), [
    ("k=0", "k", "0"), ("k=101", "k", "101"), ("k=abc", "k", "abc"), ("k=-1", "k", "-1"),
    ("k=", "k", ""), ("k=1.5", "k", "1.5"), ("category=", "category", ""),
])
def test_trending_rejects_bad_parameters_with_422(filled: str, query: str, param: str,
                                                 value: str) -> None:
    r = one(filled, f"/v1/trending?{query}")
    assert r.status == 422
    err = r.json["error"]
    assert err["code"] == "invalid_parameter"
    assert (err["parameter"], err["value"]) == (param, value)
    assert param in err["message"]


# ---- similar / bought together -------------------------------------------------------------

@pytest.mark.integration
def test_similar_items_order_reason_and_self_and_deleted_removed(filled: str) -> None:
    r = one(filled, "/v1/items/i1/similar?k=10")
    assert r.status == 200
    assert ids(r) == ["i2", "i3", "i4"]  # i7 deleted, i1 itself removed
    assert r.json["source"] == "similar"
    item = r.json["items"][0]
    assert item["reason"] == "often viewed with Red Mug"
    assert item["source"] == "similar"
    assert item["title"] == "Blue Mug"
    assert item["score"] == pytest.approx(decayed(6.0, T_SIM), rel=1e-6)
    assert r.json["freshness"] == {"as_of_ms": T_SIM, "newest_ms": T_SIM, "age_ms": NOW - T_SIM}


@pytest.mark.integration
def test_similar_k_and_exclude(filled: str) -> None:
    r1, r2 = get(filled, "/v1/items/i1/similar?k=1", "/v1/items/i1/similar?exclude=i2,,i4")
    assert ids(r1) == ["i2"]
    assert ids(r2) == ["i3"]


@pytest.mark.integration
def test_bought_together(filled: str) -> None:
    r = one(filled, "/v1/items/i1/bought-together")
    assert r.status == 200
    assert ids(r) == ["i4", "i3"]
    assert r.json["source"] == "bought_together"
    assert r.json["items"][0]["reason"] == "often bought with Red Mug"
    assert r.json["items"][0]["source"] == "bought_together"


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/v1/items/nope/similar", "/v1/items/nope/bought-together",
                                  "/v1/items/i7/similar"])
def test_unknown_or_deleted_item_is_404(filled: str, path: str) -> None:
    r = one(filled, path)
    assert r.status == 404
    assert r.json["error"]["code"] == "not_found"
    assert r.json["error"]["item_id"] in {"nope", "i7"}


@pytest.mark.integration
def test_item_without_neighbours_falls_back_to_trending_in_its_category(filled: str) -> None:
    r = one(filled, "/v1/items/lonely/bought-together")
    assert r.status == 200
    assert r.json["fallback"] == "no_neighbours"
    assert r.json["source"] == "trending"
    assert ids(r) == ["i6", "i5"]  # the item itself is not recommended
    assert {i["reason"] for i in r.json["items"]} == {"trending in shoes"}
    assert r.json["freshness"]["as_of_ms"] == T_TREND - 1000


@pytest.mark.integration
def test_item_without_category_or_category_list_falls_back_to_global(filled: str) -> None:
    r1, r2 = get(filled, "/v1/items/nocat/similar?k=2", "/v1/items/i3/bought-together?k=2")
    assert r1.json["fallback"] == "no_neighbours"
    assert ids(r1) == ["i3", "i1"]
    assert {i["reason"] for i in r1.json["items"]} == {"trending"}
    # i3 is in "kitchen", which has no trending list: global, without i3 itself
    assert ids(r2) == ["i1", "i2"]


@pytest.mark.integration
def test_item_with_neighbours_but_no_metadata_and_encoded_ids(filled: str) -> None:
    r1, r2 = get(filled, "/v1/items/ghost/similar", "/v1/items/a%2Fb/similar")
    assert ids(r1) == ["i3", "x9"]
    assert r1.json["items"][0]["reason"] == "often viewed with ghost"
    assert "title" not in r1.json["items"][1]  # no catalogue entry for x9
    assert ids(r2) == ["i4"]
    assert r2.json["items"][0]["reason"] == "often viewed with a/b"


