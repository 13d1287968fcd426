"""``GET /dashboard`` and ``GET /dashboard/data`` through the in-process ASGI client, reading
the server's own registry and real metric endpoints over HTTP: a tiny ``prometheus_client``
exporter with known values on a free loopback port (a real scrape target, standing in for the
monitor and the loader), and a port nobody listens on (a target that is down)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from infra.procs import free_port
from serving.dashboard import MIN_REFRESH_S
from tests.serving.kit import AsgiClient, run

pytestmark = pytest.mark.integration

GROUP, TOPIC = "recs-stream-interactions", "interactions"
POLL_TIMEOUT_S = 10.0


@dataclass
class Exporter:
    """A real /metrics endpoint with the monitor's and the loader's metric names."""

    registry: CollectorRegistry
    url: str
    lag_records: Gauge
    lag_seconds: Gauge
    end_offset: Gauge
    committed: Gauge
    dlq: Counter
    checkpoint_age: Gauge
    freshness: Histogram
    data_age: Gauge


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    r = CollectorRegistry()
    part = ["group", "topic", "partition"]
    exp = Exporter(
        r, "",
        Gauge("recs_kafka_consumer_lag_records", "lag", part, registry=r),
        Gauge("recs_kafka_consumer_lag_seconds", "lag", part, registry=r),
        Gauge("recs_kafka_end_offset", "end", part, registry=r),
        Gauge("recs_kafka_committed_offset", "committed", part, registry=r),
        Counter("recs_dlq_events", "dlq", ["reason"], registry=r),
        Gauge("recs_checkpoint_age_seconds", "age", registry=r),
        Histogram("recs_freshness_seconds", "freshness", ["kind"],
                  buckets=(0.1, 0.25, 0.5, 1.0, 2.5), registry=r),
        Gauge("recs_redis_data_age_seconds", "age", ["writer"], registry=r),
    )
    for p, lag in (("0", 1000), ("1", 500)):
        exp.lag_records.labels(GROUP, TOPIC, p).set(lag)
        exp.lag_seconds.labels(GROUP, TOPIC, p).set(4.0 if p == "0" else 2.0)
        exp.end_offset.labels(GROUP, TOPIC, p).set(10_000)
        exp.committed.labels(GROUP, TOPIC, p).set(10_000 - lag)
    exp.dlq.labels("invalid_json").inc(3)
    exp.freshness.labels("session")  # exported from the start: a series first seen at the
    # second scrape has no increase yet (as in Prometheus)
    exp.checkpoint_age.set(3.5)
    exp.data_age.labels("stream").set(1.25)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=r)
    exp.url = f"http://127.0.0.1:{port}/metrics"
    try:
        yield exp
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def charts(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for row in doc["rows"] for c in row["charts"]}


def series(doc: dict[str, Any], chart: str) -> dict[str, Any]:
    return {s["name"]: s["value"] for s in charts(doc)[chart]["series"]}


async def poll_until(client: AsgiClient, done: Callable[[dict[str, Any]], bool]) -> Any:
    """Poll as the page does until ``done`` (a refresh runs beside the request)."""
    deadline = asyncio.get_running_loop().time() + POLL_TIMEOUT_S
    while True:
        reply = await client.get("/dashboard/data")
        assert reply.status == 200
        if done(reply.json):
            return reply.json
        assert asyncio.get_running_loop().time() < deadline, reply.json
        await asyncio.sleep(0.05)


def test_dashboard_data_reads_own_metrics_and_real_targets(
        filled: str, exporter: Exporter) -> None:
    gone = f"http://127.0.0.1:{free_port()}/metrics"
    targets = f"monitor={exporter.url},gone={gone}"

    async def body(client: AsgiClient) -> tuple[Any, Any, int]:
        for _ in range(3):
            assert (await client.get("/v1/trending?k=3")).status == 200
        first = await poll_until(client, lambda d: d["polls"] >= 1)
        # between the two snapshots: known increments on the target, known traffic here
        exporter.dlq.labels("invalid_json").inc(30)
        for p in ("0", "1"):
            exporter.end_offset.labels(GROUP, TOPIC, p).inc(300)
            exporter.committed.labels(GROUP, TOPIC, p).inc(250)
        for _ in range(100):
            exporter.freshness.labels("session").observe(0.2)
        served = 12
        for _ in range(served):
            assert (await client.get("/v1/trending?k=3")).status == 200
        await asyncio.sleep(MIN_REFRESH_S + 0.1)
        second = await poll_until(client, lambda d: d["polls"] >= 2)
        return first, second, served

    first, second, served = run(filled, body, metrics_targets=targets)

    targets = {t["name"]: t for t in second["targets"]}
    assert targets["monitor"]["up"] and targets["server"]["up"]
    assert not targets["gone"]["up"] and "refused" in targets["gone"]["error"].lower()
    assert [r["id"] for r in second["rows"]] == ["ingest", "stream", "freshness", "models",
                                                 "serving"]
    window = second["window_s"]
    assert window >= MIN_REFRESH_S

    # gauges: as exported, at both polls
    for doc in (first, second):
        assert series(doc, "lag_records") == {f"{GROUP}/{TOPIC}": 1500}
        assert series(doc, "lag_seconds") == {f"{GROUP}/{TOPIC}": 4.0}
        assert charts(doc)["checkpoint_age"]["value"] == 3.5
        assert series(doc, "redis_age") == {"stream": 1.25}
    # rates need two snapshots: none at the first poll, then increment / window
    assert charts(first)["dlq"]["value"] is None and charts(first)["dlq"]["note"] == "no data"
    assert charts(second)["dlq"]["value"] == pytest.approx(30 / window, rel=1e-3)
    assert series(second, "topic_rates") == {TOPIC: pytest.approx(600 / window, rel=1e-3)}
    assert series(second, "group_rates") == {GROUP: pytest.approx(500 / window, rel=1e-3)}
    # freshness quantiles from the loader's buckets, over the window (0.1 < 0.2 <= 0.25)
    assert series(second, "freshness")["p50"] == pytest.approx(0.175, rel=1e-3)
    assert series(second, "freshness")["p99"] == pytest.approx(0.2485, rel=1e-3)
    # no model exported yet
    assert charts(second)["model_age"]["note"] == "no model yet"
    assert charts(second)["ranker_auc"]["value"] is None
    # serving, from the server's own registry: the API only, not the dashboard's own polls
    requests = series(second, "requests")
    assert requests == {"trending": pytest.approx(served / window, rel=1e-3)}
    p99 = series(second, "latency_p99")
    assert set(p99) == {"all", "trending"} and 0 < p99["all"] < 1.0
    assert series(second, "sources") == {"trending": 1.0}
    assert series(second, "degraded")["degraded"] == 0.0
    # every series has one point per poll
    assert {len(s["points"]) for s in charts(second)["lag_records"]["series"]} == {2}
    assert [p[1] for p in charts(second)["dlq"]["series"][0]["points"]] == \
        [None, pytest.approx(30 / window, rel=1e-3)]


def test_targets_that_are_down_are_reported_never_an_error(
        filled: str) -> None:
    dead = ",".join(f"t{i}=http://127.0.0.1:{free_port()}/metrics" for i in range(2))
    targets = dead + ",blackhole=http://192.0.2.1:9/metrics"

    async def body(client: AsgiClient) -> Any:
        return await poll_until(client, lambda d: d["polls"] >= 1)

    doc = run(filled, body, metrics_targets=targets)
    up = {t["name"]: t["up"] for t in doc["targets"]}
    assert up == {"server": True, "t0": False, "t1": False, "blackhole": False}
    assert charts(doc)["lag_records"]["series"] == []
    assert charts(doc)["lag_records"]["note"] == "no data"


def test_a_poll_never_waits_for_a_slow_target(
        filled: str) -> None:
    """A target that accepts and never answers costs the refresh its timeout, not the poll."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        targets = f"silent=http://127.0.0.1:{silent.getsockname()[1]}/m"

        async def body(client: AsgiClient) -> tuple[Any, Any]:
            first = await client.get("/dashboard/data")
            assert first.status == 200
            return first.json, await poll_until(client, lambda d: d["polls"] >= 1)

        first, doc = run(filled, body, metrics_targets=targets)
    # causal, not timed (a loaded machine stretches any bound): the first poll answered while
    # the refresh it started was still waiting for the silent target (SCRAPE_TIMEOUT_S), so
    # it holds no poll yet; a poll that waited for its refresh would hold one
    assert first["polls"] == 0, first
    assert {t["name"]: t["up"] for t in doc["targets"]} == {"server": True, "silent": False}
    assert "timed out" in next(t["error"] for t in doc["targets"] if t["name"] == "silent")


def test_dashboard_page_and_assets_are_served_with_their_csp(filled: str) -> None:
    async def body(client: AsgiClient) -> list[Any]:
        return [await client.get(p) for p in ("/dashboard", "/static/dashboard.js",
                                              "/static/dashboard.css")]

    page, js, css = run(filled, body)
    assert page.status == 200 and page.headers[b"content-type"].startswith(b"text/html")
    assert b"script-src 'self'" in page.headers[b"content-security-policy"]
    assert b'src="/static/dashboard.js"' in page.json and b"<script>" not in page.json
    assert js.status == 200 and b"/dashboard/data" in js.json
    assert css.status == 200
    assert b"http" not in page.headers[b"content-security-policy"]  # nothing from elsewhere
