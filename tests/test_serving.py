"""The HTTP server against a real Redis: every endpoint, in process through ASGI, plus one
``recs serve`` (granian) subprocess over real HTTP.

Redis is the ``redis_server`` of ``tests/conftest.py``; data goes in through its ``redis_store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from recs.settings import Settings
from serving.app import App, create_app
from serving.router import Router
from state.keys import (
    FRESHNESS_KEY,
    bought_key,
    item_key,
    session_key,
    similar_key,
    trending_key,
)
from state.records import Envelope, Update
from state.redis_store import AsyncReader, RedisStore

REPO = Path(__file__).resolve().parents[1]
NOW = 1_700_000_000_000  # the injected clock, ms
HOUR_S = 3600.0
T_TREND = NOW - 60_000
T_SIM = NOW - 120_000
T_SESSION = NOW - 5_000


# ---- Redis: the conftest's server, read on the db its ``redis_store`` flushed --------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def store(redis_store: RedisStore) -> RedisStore:
    return redis_store


@pytest.fixture
def redis_url(redis_server: Any, redis_store: RedisStore) -> str:
    db = int(redis_store.client.connection_pool.connection_kwargs.get("db", 0))
    return str(redis_server.url_for(db))


# ---- a minimal in-process ASGI client ------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[bytes, bytes]
    json: Any


class AsgiClient:
    """Sends GETs straight into an ASGI app; runs its lifespan on request."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def get(self, url: str) -> Reply:
        path, _, query = url.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": unquote(path),
                 "raw_path": path.encode(), "query_string": query.encode(), "headers": [],
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}
        return await self.request(scope)

    async def request(self, scope: MutableMapping[str, Any]) -> Reply:
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        assert start["type"] == "http.response.start"
        headers = dict(start["headers"])
        assert headers[b"content-length"] == str(len(body)).encode()
        return Reply(start["status"], headers, orjson.loads(body))

    async def lifespan(self, event: str) -> str:
        queue: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        await queue.put({"type": f"lifespan.{event}"})
        replies: list[str] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            replies.append(message["type"])

        task = asyncio.ensure_future(self.app({"type": "lifespan"}, queue.get, send))
        while not replies:
            await asyncio.sleep(0.001)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return replies[0]


def _run(redis_url: str, body: Callable[[AsgiClient], Awaitable[Any]], *,
         now: int = NOW, reader_url: str | None = None) -> Any:
    """Build an app on a fresh reader inside one event loop, run ``body``, close the reader."""
    async def go() -> Any:
        reader = AsyncReader.from_url(reader_url or redis_url, socket_connect_timeout=0.5,
                                      socket_timeout=0.5)
        try:
            app = create_app(Settings(redis_url=redis_url), reader, now_ms=lambda: now)
            return await body(AsgiClient(app))
        finally:
            await reader.close()
    return asyncio.run(go())


def get(redis_url: str, *urls: str, **kwargs: Any) -> list[Reply]:
    async def body(client: AsgiClient) -> list[Reply]:
        return [await client.get(u) for u in urls]
    return list(_run(redis_url, body, **kwargs))


def one(redis_url: str, url: str, **kwargs: Any) -> Reply:
    return get(redis_url, url, **kwargs)[0]


# ---- data ----------------------------------------------------------------------------------

def log_score(weight: float, ts_ms: int, half_life_s: float = HOUR_S) -> float:
    """What the stream writes: log(w) + λ·t_s (forward decay)."""
    return math.log(weight) + math.log(2) / half_life_s * ts_ms / 1000.0


def decayed(weight: float, ts_ms: int, now: int = NOW, half_life_s: float = HOUR_S) -> float:
    return weight * math.pow(2.0, -(now - ts_ms) / 1000.0 / half_life_s)


def ranked(*pairs: tuple[str, float, int]) -> dict[str, Any]:
    return {"items": [[i, log_score(w, ts)] for i, w, ts in pairs], "half_life_s": HOUR_S}


CATALOGUE: dict[str, dict[str, Any]] = {
    "i1": {"title": "Red Mug", "category": "kitchen", "price": 9.5},
    "i2": {"title": "Blue Mug", "category": "kitchen", "price": 8.0},
    "i3": {"title": "Teapot", "category": "kitchen", "price": 25.0},
    "i4": {"title": "Coasters", "category": "kitchen", "price": 4.0},
    "i5": {"title": "Running Shoe", "category": "shoes", "price": 80.0},
    "i6": {"title": "Socks", "category": "shoes", "price": 5.0},
    "i7": {"title": "Old Lamp", "category": "home", "price": 30.0, "deleted": True},
    "lonely": {"title": "Lonely Item", "category": "shoes", "price": 1.0},
    "nocat": {"title": "No Category"},
}


def fill(store: RedisStore) -> None:
    ups = [Update(item_key(i), 1, NOW - 86_400_000, {"item_id": i, **m})
           for i, m in CATALOGUE.items()]
    ups += [
        Update(trending_key(), 3, T_TREND,
               ranked(("i3", 8.0, T_TREND), ("i1", 4.0, T_TREND), ("i7", 3.0, T_TREND),
                      ("i2", 2.0, T_TREND - 3_600_000), ("i5", 1.0, T_TREND))),
        Update(trending_key("shoes"), 2, T_TREND - 1000,
               ranked(("i6", 5.0, T_TREND), ("i5", 4.0, T_TREND), ("lonely", 1.0, T_TREND))),
        Update(similar_key("i1"), 4, T_SIM,
               ranked(("i2", 6.0, T_SIM), ("i7", 5.0, T_SIM), ("i3", 3.0, T_SIM),
                      ("i1", 2.0, T_SIM), ("i4", 1.0, T_SIM))),
        Update(bought_key("i1"), 2, T_SIM - 500,
               ranked(("i4", 2.0, T_SIM), ("i3", 1.0, T_SIM))),
        Update(similar_key("i5"), 1, T_SIM - 9_000,
               ranked(("i6", 4.0, T_SIM), ("i2", 1.0, T_SIM))),
        # neighbours with no catalogue entry, and an item with neighbours but no metadata
        Update(similar_key("ghost"), 1, T_SIM, ranked(("i3", 1.0, T_SIM), ("x9", 1.0, T_SIM))),
        Update(similar_key("a/b"), 1, T_SIM, ranked(("i4", 1.0, T_SIM))),
        Update(session_key("u1"), 7, T_SESSION, {
            "session_id": "s1", "start": NOW - 600_000, "last_ts": T_SESSION,
            "events": [["i1", "view", NOW - 60_000], ["i5", "view", T_SESSION]],
            "basket": [], "purchased": []}),
        Update(session_key("u_dead_end"), 1, T_SESSION, {
            "session_id": "s2", "start": NOW - 600_000, "last_ts": T_SESSION,
            "events": [["lonely", "view", T_SESSION]], "basket": [], "purchased": ["i3"]}),
        Update(session_key("u_empty"), 1, T_SESSION, {
            "session_id": "s3", "start": T_SESSION, "last_ts": T_SESSION, "events": [],
            "basket": [], "purchased": []}),
    ]
    store.apply(ups)


@pytest.fixture
def filled(store: RedisStore, redis_url: str) -> str:
    fill(store)
    return redis_url


def ids(reply: Reply) -> list[str]:
    return [i["item_id"] for i in reply.json["items"]]


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
        inner = reader.get_many

        async def counting(keys: Sequence[str]) -> list[Envelope | None]:
            calls.append(list(keys))
            return await inner(keys)

        reader.get_many = counting  # type: ignore[method-assign]
        return await client.get("/v1/users/u1/session-recommendations?k=3")

    r = _run(filled, body)
    assert r.status == 200
    assert calls[0] == [session_key("u1")]
    assert calls[1] == [similar_key("i5"), similar_key("i1"), item_key("i5"), item_key("i1")]
    # candidates (k + slack of them) enriched in one MGET; deleted i7 dropped afterwards
    assert calls[2] == [item_key(i) for i in ["i6", "i2", "i7", "i3", "i4"]]
    assert len(calls) == 3


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
    dead = f"redis://127.0.0.1:{_free_port()}/0"
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
    dead = f"redis://127.0.0.1:{_free_port()}/0"

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

    warm, trending, session, similar = _run(filled, body)
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
            async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
                raise RuntimeError("boom")

        live = client.app.handlers.reader
        client.app.handlers.reader = Broken()  # type: ignore[assignment]
        try:
            crash = await client.get("/v1/trending")
        finally:
            client.app.handlers.reader = live
        return [missing, post, long_id, crash]

    with caplog.at_level(logging.ERROR, logger="serving"):
        missing, post, long_id, crash = _run(filled, body)
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
        app = create_app(Settings(redis_url=filled), now_ms=lambda: NOW)
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
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, orjson.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.integration
def test_recs_serve_runs_granian_over_http(filled: str) -> None:
    port = _free_port()
    env = {**os.environ, "REDIS_URL": filled}
    proc = subprocess.Popen(
        [sys.executable, "-m", "recs.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = _http_get(port, "/healthz")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode() if proc.stdout else ""
                    pytest.fail(f"recs serve did not come up (rc={proc.poll()}):\n{out}")
                time.sleep(0.1)
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
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
