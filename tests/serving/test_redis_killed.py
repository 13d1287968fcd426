"""Redis killed (SIGKILL) while the real server answers a stream of requests: every request
still gets a 200 inside the time budget, flagged ``degraded`` once Redis is gone, and the server
recovers when Redis is back."""

from __future__ import annotations

import http.client
import time
from typing import Any

import orjson
import pytest

from state.redis_store import RedisStore
from tests.serving.kit import fill, server_auth, serving_http

pytestmark = pytest.mark.integration
URLS = ("/v1/users/u1/recommendations?k=4", "/v1/users/u1/session-recommendations?k=3",
        "/v1/trending?k=3", "/v1/items/i1/similar?k=3")
CACHE_TTL_S = 0.2  # RECS_SERVE_CACHE_TTL_MS below: answers from fresh cache need no Redis


def test_answers_keep_coming_flagged_degraded_while_redis_is_dead(
        filled: str, redis_killable: Any) -> None:
    # a tight loop from one client: the key's rate limit is not what this test is about
    with serving_http(filled, RECS_SERVE_CACHE_TTL_MS=str(int(CACHE_TTL_S * 1000)),
                      RECS_RATE_KEY_RPS="1e6", RECS_RATE_KEY_BURST="1e6") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        # phase, status, degraded, n, secs, started (monotonic)
        log: list[tuple[str, int, bool, int, float, float]] = []

        def burst(phase: str, seconds: float) -> None:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                for url in URLS:
                    start, began = time.perf_counter(), time.monotonic()
                    conn.request("GET", url, headers=server_auth())
                    resp = conn.getresponse()
                    doc = orjson.loads(resp.read())
                    log.append((phase, resp.status, bool(doc.get("degraded")),
                                len(doc.get("items", ())), time.perf_counter() - start,
                                began))

        try:
            burst("before", 1.0)
            redis_killable.kill()
            killed = time.monotonic()
            burst("dead", 2.0)
            redis_killable.restart()  # empty: the data is filled again
            fill(RedisStore.from_url(filled))
            time.sleep(0.5)
            burst("after", 1.0)
        finally:
            conn.close()

    phases = {p: [e for e in log if e[0] == p] for p in ("before", "dead", "after")}
    assert all(e[1] == 200 for e in log), {e[1] for e in log}
    assert not any(e[2] for e in phases["before"])
    dead = phases["dead"]
    # once the cache bound has passed (lists and metadata are then re-read): all degraded
    stale = [e for e in dead if e[5] > killed + CACHE_TTL_S + 0.05]
    assert dead and stale and all(e[2] for e in stale), [e for e in stale if not e[2]][:4]
    # trending and the homepage still show the last trending lists this process read
    assert any(e[3] > 0 for e in dead)
    # inside the budget: no request waited on a dead socket for long
    assert max(e[4] for e in dead) < 1.0
    assert phases["after"] and not phases["after"][-1][2]  # recovered
