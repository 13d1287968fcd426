"""Answers that use the learned models, through ASGI against a real Redis: the homepage's
``vector`` source (the user's vector against the FAISS index), similar items' ``vector_similar``
source, the ranker's order when warm (and the blend's when cold or absent), and the sources
and ranker state in the logged impression."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from operators import learned_blend
from operators.blend import BlendParams
from operators.ranker import Ranker
from state.keys import MODEL_BLEND, model_key
from state.records import Update
from state.redis_store import RedisStore
from tests.serving import learned as L
from tests.serving.kit import NOW, T_SIM, AsgiClient, Reply, decayed, ids, run

pytestmark = pytest.mark.integration
HOME = f"/v1/users/{L.USER}/recommendations?k=4&explain=true"


def test_homepage_vector_source_picks_up_new_vectors_and_drops_deleted(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)

    async def body(client: AsgiClient) -> list[Reply]:
        models = client.app.handlers.models
        before = await client.get(HOME)  # nothing loaded yet: today's answer
        assert await models.refresh()
        loaded = await client.get(HOME)
        L.publish_new_item(store)
        assert await models.refresh()
        added = await client.get(HOME)
        similar_added = await client.get("/v1/items/i2/similar?k=3")
        L.delete_item(store, L.NEW_ITEM, L.MF_VERSION + 2)
        assert await models.refresh()
        deleted = await client.get(HOME)
        similar_deleted = await client.get("/v1/items/i2/similar?k=3")
        unknown = await client.get("/v1/users/nobody/recommendations?k=4")
        return [before, loaded, added, deleted, unknown, similar_added, similar_deleted]

    before, loaded, added, deleted, unknown, similar_added, similar_deleted = run(filled, body)
    # similar items too: i2's learned neighbours gain the new item, then lose it
    assert ids(similar_added)[0] == L.NEW_ITEM
    assert L.NEW_ITEM not in ids(similar_deleted) and ids(similar_deleted)[0] == "i1"
    assert before.json["fallback"] == "no_session"
    assert "vector" not in L.sources(before.json["items"]).values()
    assert before.json["ranker"] == "absent"
    # the learned retrieval: i2 (1.0) > i1 (0.93) > i4 (0.65) for u_vec, personal, no fallback
    assert ids(loaded)[:3] == ["i2", "i1", "i4"]
    assert "fallback" not in loaded.json
    top = loaded.json["items"][0]
    assert (top["source"], top["reason"]) == ("vector", "picked for you by the learned model")
    (evidence,) = top["explanation"]["sources"]
    assert evidence["because"] == f"model v{L.MF_VERSION}"
    # vector_weight × the best share (1)
    assert evidence["score"] == pytest.approx(BlendParams().vector_weight)
    # the user vector's event time is part of the answer's freshness
    assert loaded.json["freshness"]["as_of_ms"] <= L.MF_AS_OF
    # a new item's vector is served after one refresh; a deletion removes it
    assert ids(added)[0] == L.NEW_ITEM and added.json["items"][0]["source"] == "vector"
    assert L.NEW_ITEM not in ids(deleted) and ids(deleted)[0] == "i2"
    # a user without a vector gets exactly the cold-start answer
    assert unknown.json["fallback"] == "no_session"
    assert all(i["source"] != "vector" for i in unknown.json["items"])


def test_similar_items_merge_learned_neighbours_after_co_visitation(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)
    L.publish_new_item(store)

    async def body(client: AsgiClient) -> list[Reply]:
        plain = await client.get("/v1/items/i1/similar?k=10&explain=true")
        assert await client.app.handlers.models.refresh()
        return [plain, await client.get("/v1/items/i1/similar?k=10&explain=true"),
                await client.get("/v1/items/vnew/similar?k=3&explain=true"),
                await client.get("/v1/items/i2/similar?k=3")]

    plain, merged, new, no_covis = run(filled, body)
    assert ids(plain) == ["i2", "i3", "i4"]
    # the co-visited items keep their order; the model's best neighbour of i1 (vnew: i1's
    # taste [0.9, 0.1] scores it 1.02, i2 0.9) comes in at half the best co-visitation score
    assert [i for i in ids(merged) if i in ids(plain)] == ids(plain)
    by_id = {i["item_id"]: i for i in merged.json["items"]}
    assert by_id[L.NEW_ITEM]["source"] == "vector_similar"
    assert by_id[L.NEW_ITEM]["reason"] == "similar by learned taste"
    assert by_id[L.NEW_ITEM]["score"] == pytest.approx(0.5 * decayed(6.0, T_SIM), rel=1e-6)
    i2 = {s["source"]: s for s in by_id["i2"]["explanation"]["sources"]}
    assert set(i2) == {"similar", "vector_similar"}
    assert i2["vector_similar"]["because"] == f"model v{L.MF_VERSION}"
    assert by_id["i2"]["source"] == "similar"  # co-visitation stays the stronger evidence
    # a brand-new item with only a content vector is answered by the model, not a fallback
    assert new.status == 200 and "fallback" not in new.json
    assert ids(new) == ["i2", "i1", "i4"]
    assert {i["source"] for i in new.json["items"]} == {"vector_similar"}
    # an item without a co-visitation list but with a vector: the model's neighbours
    assert no_covis.status == 200 and "fallback" not in no_covis.json
    assert ids(no_covis)[0] == L.NEW_ITEM


def test_similar_for_a_catalogue_item_unknown_to_everything_else_is_not_404(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)
    L.publish_new_item(store, catalogue=False)  # only its vector exists

    async def body(client: AsgiClient) -> list[Reply]:
        missing = await client.get("/v1/items/vnew/similar")
        assert await client.app.handlers.models.refresh()
        return [missing, await client.get("/v1/items/vnew/similar?k=2"),
                await client.get("/v1/items/nope/similar"),
                await client.get("/v1/items/vnew/bought-together")]

    missing, found, nope, bought = run(filled, body)
    assert missing.status == 404  # before the model knew it: nothing knows it
    assert found.status == 200 and ids(found) == ["i2", "i1"]
    assert nope.status == 404
    assert bought.status == 404  # bought-together has no learned source


def _homepage(filled: str, store: RedisStore, ranker: Ranker | None) -> list[Reply]:
    """u1's homepage (session i1, i5) without a ranker, then with ``ranker`` published."""
    async def body(client: AsgiClient) -> list[Reply]:
        url = "/v1/users/u1/recommendations?k=5&explain=true"
        models = client.app.handlers.models
        assert await models.refresh()
        without = await client.get(url)
        if ranker is not None:
            L.publish_ranker(store, ranker)
            assert await models.refresh()
        return [without, await client.get(url)]

    return list(run(filled, body))


def test_a_warm_ranker_reorders_the_candidates(filled: str, store: RedisStore) -> None:
    without, warm = _homepage(filled, store, L.planted_ranker("i4", ["i2", "i3", "i6", "i1"]))
    assert without.json["ranker"] == "absent"
    assert ids(without)[0] != "i4" and "i4" in ids(without)
    assert warm.json["ranker"] == "warm"
    assert ids(warm)[0] == "i4"  # the planted click signal
    assert ids(warm) != ids(without)
    i4 = warm.json["items"][0]
    assert "moved up by ranker" in i4["rules"]
    # the items taught as never clicked went down
    assert any("moved down by ranker" in i.get("rules", ()) for i in warm.json["items"])
    ranker = i4["explanation"]["ranker"]
    assert ranker["state"] == "warm" and ranker["probability"] > 0.8
    before = next(i for i in without.json["items"] if i["item_id"] == "i4")["explanation"]
    assert ranker["blend_rank"] == before["rank_before_rules"] > 1
    assert i4["explanation"]["blend_score"] == pytest.approx(before["blend_score"])
    assert i4["explanation"]["rank_before_rules"] == 1  # the ranker's order goes to the rules
    for item in warm.json["items"]:
        assert 0 < item["explanation"]["ranker"]["probability"] < 1


def test_trending_is_never_ranked(filled: str, store: RedisStore) -> None:
    L.publish_ranker(store, L.planted_ranker("i2", ["i3", "i1"]))

    async def body(client: AsgiClient) -> list[Reply]:
        assert await client.app.handlers.models.refresh()
        assert client.app.handlers.models.ranker_state == "warm"
        return [await client.get("/v1/trending?k=3&explain=true"),
                await client.get("/v1/items/i5/similar?k=3")]

    trending, similar = run(filled, body)
    assert trending.json["ranker"] == "off"
    assert ids(trending) == ["i3", "i1", "i2"]  # popularity order, i2 not pulled up
    assert all("ranker" not in i["explanation"] for i in trending.json["items"])
    # the other placements are ranked: i5's co-visitation list is i6, i2
    assert similar.json["ranker"] == "warm" and ids(similar) == ["i2", "i6"]


def test_a_cold_ranker_leaves_the_blend_order(filled: str, store: RedisStore) -> None:
    without, cold = _homepage(filled, store, Ranker())
    assert cold.json["ranker"] == "cold"
    assert ids(cold) == ids(without)
    assert [i["score"] for i in cold.json["items"]] == [i["score"] for i in without.json["items"]]
    assert not any("ranker" in r for i in cold.json["items"] for r in i.get("rules", ()))
    # explain still shows what the cold ranker thinks
    assert all(i["explanation"]["ranker"]["state"] == "cold" for i in cold.json["items"])


class _Impressions:
    """A publisher that keeps what it is given (impressions are sent without waiting)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def publish_nowait(self, records: list[tuple[bytes, bytes]]) -> bool:
        self.sent += [orjson.loads(value) for _, value in records]
        return True

    async def close(self) -> None:
        return None


def test_impressions_carry_the_learned_sources_and_the_ranker_state(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)
    L.publish_new_item(store)
    L.publish_ranker(store, Ranker())
    publisher = _Impressions()

    async def body(client: AsgiClient) -> list[Reply]:
        assert await client.app.handlers.models.refresh()
        return [await client.get(HOME), await client.get("/v1/items/i1/similar?user_id=u9")]

    home, similar = run(filled, body, publisher=publisher)
    by_rec = {e["rec_id"]: e for e in publisher.sent}
    for reply in (home, similar):
        imp = by_rec[reply.json["rec_id"]]
        assert imp["item_ids"] == ids(reply)
        assert imp["context"]["sources"].split(",") == [i["source"] for i in reply.json["items"]]
        assert imp["context"]["ranker"] == "cold"
        assert imp["ts"] == NOW
    assert "vector" in by_rec[home.json["rec_id"]]["context"]["sources"].split(",")
    assert "vector_similar" in by_rec[similar.json["rec_id"]]["context"]["sources"].split(",")


def test_homepage_follows_the_published_learned_blend_when_warm(
        filled: str, store: RedisStore) -> None:
    """The learned blend (``recs:v1:model:blend``): cold it changes nothing; warm, its weights
    order the candidates (here: trending first); deleted, the hand-tuned blend is back."""
    cfg = learned_blend.LearnedBlendConfig(min_labelled=10)
    warm = learned_blend.BlendModel({"trend": 4.0, "trend_rr": 4.0, "prior": 1.0}, events=50,
                                    labelled=40, prior_gain=0.4, learned_gain=0.6)
    cold = dataclasses.replace(warm, learned_gain=0.3)  # behind the prior: not served
    url = "/v1/users/u1/recommendations?k=5&explain=true"

    def publish(model: learned_blend.BlendModel | None, version: int) -> None:
        doc = learned_blend.published(model, cfg) if model is not None else None
        store.apply([Update(model_key(MODEL_BLEND), version, NOW - 1000, doc)])

    async def body(client: AsgiClient) -> list[Reply]:
        models = client.app.handlers.models
        assert await models.refresh()
        replies = [await client.get(url)]
        for model, version in ((cold, 1), (warm, 2), (None, 3)):
            publish(model, version)
            assert await models.refresh()
            replies.append(await client.get(url))
        return replies

    hand, with_cold, with_warm, deleted = run(filled, body)
    assert ids(with_cold) == ids(hand) and ids(deleted) == ids(hand)
    assert ids(hand)[0] != "i3"
    # warm: the global trending list's best item (i3) leads, with its hand-tuned evidence
    assert ids(with_warm)[0] == "i3"
    assert ids(with_warm) != ids(hand)
    top = with_warm.json["items"][0]
    assert {s["source"] for s in top["explanation"]["sources"]} & {"session", "trending",
                                                                  "bought_together"}


def test_homepage_computes_the_age_features_at_the_request_time(
        filled: str, store: RedisStore) -> None:
    """A warm learned blend published with ``ages`` on, whose weight is against ``simh`` (the
    similar votes of the recent items read within the hour): at the request time just after
    u1's session its order puts them last, unlike the same weights published with ``ages``
    off (no ``simh`` computed: the hand-tuned order); a day later the votes are stale and
    their weight vanishes, so the order is that of ``ages`` off again. The server computes
    the features at its ranking clock (the request's minute, rounded up: cacheable), on the
    compiled core and on the Python path alike."""
    warm = learned_blend.BlendModel({"simh": -100.0, "prior": 1.0}, events=50, labelled=40,
                                    prior_gain=0.4, learned_gain=0.6)
    url = "/v1/users/u1/recommendations?k=5"
    later = NOW + 86_400_000
    versions = iter(range(2, 100))

    def answers(ages: bool, now: int, native: bool) -> list[str]:
        cfg = learned_blend.LearnedBlendConfig(min_labelled=10, ages=ages)
        store.apply([Update(model_key(MODEL_BLEND), next(versions), NOW - 1000,
                            learned_blend.published(warm, cfg))])

        async def body(client: AsgiClient) -> Reply:
            assert await client.app.handlers.models.refresh()
            return await client.get(url)

        return ids(run(filled, body, now=now, native=native))

    for native in (True, False):
        off, on, on_later = (answers(False, NOW, native), answers(True, NOW, native),
                             answers(True, later, native))
        # u1's recent items i5 and i1, read 5 s and 60 s before: their similar votes (i6, i2,
        # i3) fall behind the reminder and the trending and bought-together candidates
        assert off[:2] == ["i6", "i2"] and on[:2] == ["i5", "lonely"], (off, on)
        assert on_later == answers(False, later, native)
