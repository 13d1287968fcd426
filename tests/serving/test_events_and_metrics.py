"""POST /v1/events and impression logging through a real Kafka broker; /metrics; the OpenAPI
document and the docs page."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from schemas.events import decode_interaction
from serving.publish import Publisher
from tests.serving.kit import NOW, AsgiClient, Reply, get, ids, run

pytestmark = pytest.mark.integration


def read_all(bootstrap: str, topic: str, want: int, timeout_s: float = 20.0) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=500)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out += [(m.key, orjson.loads(m.value)) for m in batch]
        return out
    finally:
        consumer.close()


def event(i: int, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"e{i}", "type": "view", "user_id": f"u{i % 3}", "session_id": "s",
            "item_id": f"i{i}", "ts": NOW + i, **extra}


def test_events_are_validated_then_published_keyed_by_user(filled: str, kafka: Any,
                                                           fresh_topics: Any) -> None:
    (topic,) = fresh_topics("interactions")
    batch = [event(i, context={"device": "mobile"}, rec_id="r1", variant="hp/a")
             for i in range(5)]

    async def body(client: AsgiClient) -> list[Reply]:
        pub = client.app.handlers.publisher
        try:
            return [await client.post("/v1/events", batch),
                    await client.post("/v1/events", event(9)),
                    await client.post("/v1/events", [event(1), {"event_id": "", "type": "wave",
                                                                "user_id": "u", "ts": "x",
                                                                "surprise": 1}, 7]),
                    await client.post("/v1/events", raw=b"[{"),
                    await client.post("/v1/events", [])]
        finally:
            if pub is not None:
                await pub.close()

    ok, single, bad, broken, empty = run(filled, body,
                                         publisher=Publisher(kafka.bootstrap, topic))
    assert (ok.status, ok.json) == (202, {"accepted": 5})
    assert (single.status, single.json) == (202, {"accepted": 1})
    # one 422 lists every bad field of every event; nothing of that batch is published
    assert bad.status == 422
    errors = bad.json["error"]["errors"]
    fields = {(e["index"], e["field"]) for e in errors}
    assert {(1, "event_id"), (1, "type"), (1, "ts"), (1, "session_id"), (1, "surprise"),
            (2, "<event>")} <= fields
    assert all(e["index"] != 0 for e in errors)
    assert next(e for e in errors if e["field"] == "type")["value"] == "wave"
    assert (broken.status, broken.json["error"]["errors"][0]["field"]) == (422, "<body>")
    assert empty.status == 422
    records = read_all(kafka.bootstrap, topic, want=6)
    assert len(records) == 6
    assert {k.decode() for k, v in records} == {"u0", "u1", "u2"}
    assert all(k.decode() == v["user_id"] for k, v in records)
    for _, doc in records:  # what was published decodes with the stream's decoder
        decode_interaction(orjson.dumps(doc))


def test_events_without_kafka_are_503_not_500(filled: str) -> None:
    async def body(client: AsgiClient) -> Reply:
        return await client.post("/v1/events", [event(1)])

    r = run(filled, body)  # the kit's settings have no Kafka
    assert (r.status, r.json["error"]["code"]) == (503, "unavailable")


def test_answers_log_impressions_once_per_distinct_list(filled: str, kafka: Any,
                                                        fresh_topics: Any) -> None:
    (topic,) = fresh_topics("interactions")

    async def body(client: AsgiClient) -> list[Reply]:
        pub = client.app.handlers.publisher
        assert pub is not None
        await pub.publish([], wait=True)  # connect first: impressions never wait for Kafka
        try:
            return [await client.get("/v1/users/u1/recommendations?k=4&context=device:mobile"),
                    await client.get("/v1/users/u1/recommendations?k=4&context=device:mobile"),
                    await client.get("/v1/users/u1/session-recommendations?k=2"),
                    await client.get("/v1/trending?k=2")]  # anonymous: nothing to log
        finally:
            await pub.close()

    home, again, session, _anon = run(filled, body, publisher=Publisher(kafka.bootstrap, topic))
    records = read_all(kafka.bootstrap, topic, want=3, timeout_s=10)
    docs = {v["rec_id"]: v for _, v in records}
    assert set(docs) == {home.json["rec_id"], session.json["rec_id"]}  # the repeat is not logged
    imp = docs[home.json["rec_id"]]
    assert imp["type"] == "impression" and imp["user_id"] == "u1"
    assert imp["item_ids"] == ids(home)
    assert imp["variant"] == home.json["variant"]
    assert imp["context"] == {"device": "mobile", "placement": "homepage",
                              "sources": ",".join(i["source"] for i in home.json["items"])}
    assert imp["session_id"] == "s1"
    decode_interaction(orjson.dumps(imp))
    assert docs[session.json["rec_id"]]["context"]["placement"] == "session"
    assert again.json["rec_id"] != home.json["rec_id"]


def test_metrics_count_requests_latency_sources_and_cache(filled: str) -> None:
    async def body(client: AsgiClient) -> Reply:
        for url in ["/v1/users/u1/recommendations", "/v1/users/u1/recommendations",
                    "/v1/trending?k=0", "/v1/items/nope/similar"]:
            await client.get(url)
        return await client.get("/metrics")

    r = run(filled, body)
    assert r.status == 200
    assert r.headers[b"content-type"].startswith(b"text/plain")
    text = r.json.decode()
    samples = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
               for line in text.splitlines() if line and not line.startswith("#")}
    assert samples['recs_http_requests_total{endpoint="homepage",status="200"}'] == 2
    assert samples['recs_http_request_duration_seconds_count{endpoint="homepage"}'] == 2
    assert samples['recs_served_items_total{source="session"}'] > 0
    # the second homepage is the first one's answer, checked against the shared lists
    assert samples["recs_answer_cache_hits_total"] == 1
    assert samples["recs_cache_hits_total"] > 0
    assert 0 < samples["recs_cache_hit_ratio"] < 1
    assert samples["recs_redis_up"] == 1
    assert samples["recs_served_distinct_items"] >= 5
    # a 404 for an unknown item is counted under its endpoint
    assert samples['recs_http_requests_total{endpoint="similar",status="404"}'] == 1


def test_openapi_document_and_docs_page(filled: str) -> None:
    spec, docs = get(filled, "/openapi.json", "/docs")
    assert spec.status == 200 and spec.json["openapi"].startswith("3.1")
    paths = spec.json["paths"]
    for path in ["/v1/users/{user_id}/recommendations", "/v1/items/{item_id}/similar",
                 "/v1/items/{item_id}/bought-together", "/v1/cart/recommendations",
                 "/v1/users/{user_id}/session-recommendations", "/v1/trending", "/v1/events",
                 "/metrics", "/healthz", "/readyz"]:
        assert path in paths, path
    params = {p["name"] for p in paths["/v1/users/{user_id}/recommendations"]["get"]["parameters"]}
    assert {"k", "category", "exclude", "context", "explain"} <= params
    event_schema = spec.json["components"]["schemas"]["Interaction"]
    assert "rec_id" in event_schema["properties"]
    assert docs.status == 200 and b"/v1/cart/recommendations" in docs.json


def test_exploration_impressions_log_their_propensity(filled: str, store: Any, kafka: Any,
                                                      fresh_topics: Any, tmp_path: Any) -> None:
    from tests.serving.test_homepage_and_cart import _explore_everything, _new_items

    _new_items(store)
    (topic,) = fresh_topics("interactions")

    async def body(client: AsgiClient) -> Reply:
        pub = client.app.handlers.publisher
        assert pub is not None
        await pub.publish([], wait=True)
        try:
            return await client.get("/v1/users/u1/recommendations?k=4")
        finally:
            await pub.close()

    home = run(filled, body, publisher=Publisher(kafka.bootstrap, topic),
               rules_file=_explore_everything(tmp_path))
    ((_, imp),) = read_all(kafka.bootstrap, topic, want=1, timeout_s=10)
    assert imp["rec_id"] == home.json["rec_id"]
    assert imp["context"]["explore_item"] == "n1"
    assert imp["context"]["explore_slot"] == 2
    assert imp["context"]["explore_propensity"] == 1.0
    assert imp["item_ids"][1] == "n1"
