""""Because you viewed": session recommendations through ASGI against a real Redis."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from state.keys import (
    item_key,
    session_key,
    similar_key,
)
from tests.serving.kit import NOW, T_SESSION, T_SIM, AsgiClient, Reply, ids, one, run

# ---- session recommendations ---------------------------------------------------------------

@pytest.mark.integration
def test_session_recommendations_order_reasons_and_freshness(filled: str) -> None:
    r = one(filled, "/v1/users/u1/session-recommendations?k=10")
    assert r.status == 200
    doc = r.json
    assert doc["source"] == "session"
    assert "fallback" not in doc
    # recent: i5 (newest, weight 1), i1 (weight 0.7); votes relative to each list's best
    expected = {
        "i6": 1.0,
        "i2": 0.25 + 0.7 * 1.0,
        "i3": 0.7 * 0.5,
        "i4": 0.7 * (1 / 6),
    }
    assert ids(r) == ["i6", "i2", "i3", "i4"]  # i7 deleted; i1 and i5 already viewed
    for item in doc["items"]:
        assert item["score"] == pytest.approx(expected[item["item_id"]], rel=1e-6)
        assert item["source"] == "session"
    reasons = {i["item_id"]: i["reason"] for i in doc["items"]}
    assert reasons == {"i6": "viewed Running Shoe", "i2": "viewed Red Mug",
                       "i3": "viewed Red Mug", "i4": "viewed Red Mug"}
    assert doc["items"][0]["title"] == "Socks"
    assert doc["freshness"] == {"as_of_ms": T_SIM - 9_000, "newest_ms": T_SESSION,
                                "age_ms": NOW - (T_SIM - 9_000)}


@pytest.mark.integration
def test_session_recommendations_k_and_exclude(filled: str) -> None:
    r = one(filled, "/v1/users/u1/session-recommendations?k=2&exclude=i6,i3")
    assert ids(r) == ["i2", "i4"]


@pytest.mark.integration
@pytest.mark.parametrize("user", ["nobody", "u_empty"])
def test_unknown_or_empty_session_falls_back_to_trending(filled: str, user: str) -> None:
    r = one(filled, f"/v1/users/{user}/session-recommendations?k=2&exclude=i3")
    assert r.status == 200
    assert r.json["fallback"] == "no_session"
    assert r.json["source"] == "trending"
    assert ids(r) == ["i1", "i2"]
    assert r.json["items"][0]["reason"] == "trending"


@pytest.mark.integration
def test_session_without_candidates_falls_back_to_trending_minus_seen(filled: str) -> None:
    r = one(filled, "/v1/users/u_dead_end/session-recommendations?k=3")
    assert r.json["fallback"] == "no_candidates"
    assert ids(r) == ["i1", "i2", "i5"]  # i3 bought, i7 deleted
    assert r.json["freshness"]["newest_ms"] == T_SESSION


@pytest.mark.integration
def test_session_recommendations_use_three_round_trips(filled: str) -> None:
    calls: list[list[str]] = []

    async def body(client: AsgiClient) -> Reply:
        reader = client.app.handlers.reader
        assert reader is not None
        inner = reader.get_raw_many

        async def counting(keys: Sequence[str]) -> list[bytes | None]:
            calls.append(list(keys))
            return await inner(keys)

        reader.get_raw_many = counting  # type: ignore[method-assign]
        return await client.get("/v1/users/u1/session-recommendations?k=3")

    r = run(filled, body)
    assert r.status == 200
    assert calls[0] == [session_key("u1")]
    assert calls[1] == [similar_key("i5"), similar_key("i1")]
    # the candidates and the recent items named in the reasons, in one MGET (deleted i7
    # dropped afterwards)
    assert calls[2] == [item_key(i) for i in ["i6", "i2", "i7", "i3", "i4", "i5", "i1"]]
    assert len(calls) == 3


