"""Probes, routing, errors, degraded answers, the lifespan, and ``recs serve`` over real HTTP."""

from __future__ import annotations

import asyncio
import http.client
import logging
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from infra.procs import free_port
from recs.settings import Settings
from serving.app import create_app
from serving.router import Router
from state.keys import (
    FRESHNESS_KEY,
)
from state.redis_store import AsyncReader, RedisStore
from tests.serving.kit import (
    NOW,
    T_TREND,
    AsgiClient,
    Reply,
    creds,
    get,
    ids,
    one,
    run,
    server_auth,
    serving_http,
)

# ---- probes, routing, errors ---------------------------------------------------------------

@pytest.mark.integration
def test_healthz_and_readyz(filled: str, store: RedisStore) -> None:
    store.mark_fresh("loader", NOW - 1_500)
    health, ready = get(filled, "/healthz", "/readyz")
    assert (health.status, health.json) == (200, {"status": "ok"})
    assert ready.status == 200
    assert ready.json == {"status": "ready",
                          "freshness": {"loader": {"as_of_ms": NOW - 1_500, "age_ms": 1_500}}}


@pytest.mark.integration
def test_readyz_when_freshness_hash_is_unreadable(filled: str, store: RedisStore) -> None:
    store.client.set(FRESHNESS_KEY, "not a hash")
    r = one(filled, "/readyz")
    assert r.status == 503
    assert r.json["status"] == "unavailable"


@pytest.mark.integration
def test_redis_down_readyz_503_and_data_endpoints_degraded(redis_url: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    ready, trending, similar, session, health = get(
        redis_url, "/readyz", "/v1/trending", "/v1/items/i1/similar",
        "/v1/users/u1/session-recommendations", "/healthz", reader_url=dead)
    assert time.monotonic() - started < 2.0
    assert ready.status == 503
    assert ready.json["status"] == "unavailable"
    assert health.status == 200
    for r in (trending, similar, session):
        assert r.status == 200
        assert r.json["degraded"] is True
        assert r.json["items"] == []
    assert session.json["fallback"] == "redis_unavailable"


@pytest.mark.integration
def test_redis_down_serves_cached_trending(filled: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"

    async def body(client: AsgiClient) -> list[Reply]:
        warm = await client.get("/v1/trending?k=5")
        live = client.app.handlers.reader
        client.app.handlers.reader = AsyncReader.from_url(dead, socket_connect_timeout=0.5)
        try:
            return [warm,
                    await client.get("/v1/trending?k=2"),
                    await client.get("/v1/users/u1/session-recommendations?k=3&exclude=i3"),
                    await client.get("/v1/items/i1/similar?k=3")]
        finally:
            assert client.app.handlers.reader is not None
            await client.app.handlers.reader.close()
            client.app.handlers.reader = live

    warm, trending, session, similar = run(filled, body, cache_ttl_ms=0)
    assert not warm.json["degraded"]
    assert trending.json["degraded"] is True
    assert ids(trending) == ["i3", "i1"]
    assert trending.json["items"][0]["title"] == "Teapot"
    assert trending.json["freshness"]["as_of_ms"] == T_TREND
    assert "fallback" not in trending.json
    assert session.json["degraded"] is True
    assert session.json["fallback"] == "redis_unavailable"
    assert ids(session) == ["i1", "i2", "i5"]  # i3 excluded, i7 deleted (cached metadata)
    assert "i1" not in ids(similar)


@pytest.mark.integration
def test_routing_errors_and_internal_errors(filled: str,
                                            caplog: pytest.LogCaptureFixture) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        missing = await client.get("/v1/nothing")
        post = await client.request({"type": "http", "method": "POST", "path": "/v1/trending",
                                     "raw_path": b"/v1/trending", "query_string": b"",
                                     "headers": []})
        long_id = await client.get("/v1/items/" + "x" * 300 + "/similar")

        class Broken:
            async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
                raise RuntimeError("boom")

        live = client.app.handlers.reader
        client.app.handlers.reader = Broken()  # type: ignore[assignment]
        try:
            crash = await client.get("/v1/trending")
        finally:
            client.app.handlers.reader = live
        return [missing, post, long_id, crash]

    with caplog.at_level(logging.ERROR, logger="serving"):
        missing, post, long_id, crash = run(filled, body)
    assert (missing.status, missing.json["error"]["code"]) == (404, "not_found")
    assert (post.status, post.json["error"]["code"]) == (405, "method_not_allowed")
    assert post.headers[b"allow"] == b"GET"
    assert (long_id.status, long_id.json["error"]["parameter"]) == (422, "item_id")
    assert crash.status == 500
    assert crash.json == {"error": {"code": "internal", "message": "internal server error"}}
    assert "boom" not in orjson.dumps(crash.json).decode()
    assert any("unhandled error" in rec.getMessage() and rec.exc_info for rec in caplog.records)


@pytest.mark.integration
def test_lifespan_opens_and_closes_its_own_reader(filled: str) -> None:
    async def go() -> tuple[str, Reply, str, bool]:
        app = create_app(Settings(redis_url=filled, keys_file=creds().keys_file),
                         now_ms=lambda: NOW)
        client = AsgiClient(app)
        assert app.handlers.reader is None
        started = await client.lifespan("startup")
        reply = await client.get("/v1/trending?k=1")
        stopped = await client.lifespan("shutdown")
        return started, reply, stopped, app.handlers.reader is None

    started, reply, stopped, closed = asyncio.run(go())
    assert started == "lifespan.startup.complete"
    assert ids(reply) == ["i3"]
    assert stopped == "lifespan.shutdown.complete"
    assert closed


def test_router_matches_templates_and_rejects_others() -> None:
    r: Router[str] = Router()
    r.add("GET", "/v1/users/{user_id}/session-recommendations", "session")
    r.add("GET", "/v1/trending", "trending")
    assert r.match("GET", "/v1/users/u%20x/session-recommendations") == ("session",
                                                                          {"user_id": "u x"})
    assert r.match("GET", "/v1/trending/") == ("trending", {})
    for path in ["/v1/users//session-recommendations", "/v1/users/a/b/session-recommendations",
                 "/", "/v1"]:
        with pytest.raises(Exception, match="no route"):
            r.match("GET", path)


# ---- the real server -----------------------------------------------------------------------

def _http_get(port: int, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=server_auth())
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.integration
def test_recs_serve_runs_granian_over_http(filled: str) -> None:
    with serving_http(filled) as port:
        status, body = _http_get(port, "/healthz")
        assert (status, body) == (200, {"status": "ok"})
        status, body = _http_get(port, "/v1/trending?k=2")
        assert status == 200
        assert [i["item_id"] for i in body["items"]] == ["i3", "i1"]
        assert body["degraded"] is False
        status, body = _http_get(port, "/v1/users/u1/session-recommendations?k=1")
        assert (status, [i["item_id"] for i in body["items"]]) == (200, ["i6"])
        status, body = _http_get(port, "/v1/items/a%2Fb/similar")  # raw path kept by granian
        assert (status, [i["item_id"] for i in body["items"]]) == (200, ["i4"])
        status, body = _http_get(port, "/v1/trending?k=0")
        assert (status, body["error"]["parameter"]) == (422, "k")
        status, _ = _http_get(port, "/readyz")
        assert status == 200

