"""Browser end-to-end: ``/dashboard`` of a real server (granian, ``recs serve``) in headless
Chromium while a request stream runs. The other processes' metrics come from two live
``prometheus_client`` exporters on loopback (the monitor's and the loader's metric names, values
moving every 200 ms) and one target nobody listens on.

Checks that every row renders, that the serving charts change between two polls of the page, that
the page raised no error and that the down target shows as down. A screenshot lands in
``test-artifacts/dashboard.png``. Chromium is driven as in ``test_widget_e2e.py``.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from infra.procs import free_port
from recs.readings import TARGETS_ENV
from serving.dashboard import ROWS
from tests.serving.kit import server_auth, serving_http
from tests.serving.test_widget_e2e import CHROMIUM_ARGS, chromium  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "test-artifacts" / "dashboard.png"
PAGE_TIMEOUT_MS = 30_000
POLLS_BEFORE_SCREENSHOT = 6   # about 12 s of history on the charts
SERVING_CHARTS = ("requests", "latency_p50", "latency_p99")
CHART_STATE_JS = """ids => ids.map(id => {
  const c = document.querySelector(`[data-chart="${id}"]`);
  return c ? [c.dataset.points, c.dataset.value] : null;
})"""
PATHS = ("/v1/trending?k=5", "/v1/items/i1/similar?k=5", "/v1/users/u1/recommendations?k=5",
         "/v1/users/u1/session-recommendations?k=5", "/v1/items/i1/bought-together?k=3")


@contextlib.contextmanager
def live_exporters() -> Iterator[tuple[str, str]]:
    """Two real /metrics endpoints whose values move like a running engine's."""
    mon, load = CollectorRegistry(), CollectorRegistry()
    part = ["group", "topic", "partition"]
    lag = Gauge("recs_kafka_consumer_lag_records", "lag", part, registry=mon)
    lag_s = Gauge("recs_kafka_consumer_lag_seconds", "lag", part, registry=mon)
    end = Gauge("recs_kafka_end_offset", "end", part, registry=mon)
    committed = Gauge("recs_kafka_committed_offset", "committed", part, registry=mon)
    dlq = Counter("recs_dlq_events", "dlq", ["reason"], registry=mon)
    ck_age = Gauge("recs_checkpoint_age_seconds", "age", registry=mon)
    data_age = Gauge("recs_redis_data_age_seconds", "age", ["writer"], registry=mon)
    fresh = Histogram("recs_freshness_seconds", "freshness", ["kind"],
                      buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=load)
    groups = (("recs-stream-interactions", "interactions"), ("recs-loader", "recs.updates"))
    for kind in ("session", "similar", "trending"):
        fresh.labels(kind)
    dlq.labels("invalid_json")
    stop = threading.Event()

    def move() -> None:
        t0 = time.monotonic()
        offsets: dict[tuple[str, str, str], int] = {}
        while not stop.wait(0.2):
            t = time.monotonic() - t0
            for n, (group, topic) in enumerate(groups):
                for p in ("0", "1"):
                    backlog = 200 + 150 * math.sin(t / 3 + n) + 40 * int(p)
                    at = offsets[(group, topic, p)] = offsets.get((group, topic, p), 10_000) + \
                        (100 if n == 0 else 60)
                    end.labels(group, topic, p).set(at)
                    committed.labels(group, topic, p).set(at - backlog)
                    lag.labels(group, topic, p).set(backlog)
                    lag_s.labels(group, topic, p).set(backlog / 500)
            if int(t * 5) % 7 == 0:
                dlq.labels("invalid_json").inc()
            ck_age.set(t % 5)
            data_age.labels("stream").set(0.3 + 0.2 * math.sin(t))
            for i in range(20):
                fresh.labels(("session", "similar", "trending")[i % 3]).observe(
                    0.15 + 0.1 * math.sin(t + i) + (0.6 if i == 0 else 0))

    servers = []
    try:
        urls = []
        for registry in (mon, load):
            port = free_port()
            servers.append(start_http_server(port, addr="127.0.0.1", registry=registry))
            urls.append(f"http://127.0.0.1:{port}/metrics")
        mover = threading.Thread(target=move, daemon=True)
        mover.start()
        yield urls[0], urls[1]
    finally:
        stop.set()
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def request_stream(base: str, stop: threading.Event) -> None:
    n = 0
    while not stop.is_set():
        with contextlib.suppress(OSError), \
                urllib.request.urlopen(urllib.request.Request(
                    base + PATHS[n % len(PATHS)], headers=server_auth()), timeout=2) as resp:
            resp.read()
        n += 1
        stop.wait(0.01 if n % 50 else 0.3)  # bursts, so the request rate moves


def test_dashboard_renders_every_row_and_updates_while_traffic_runs(
        filled: str, chromium: Path, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import sync_playwright

    page_errors: list[str] = []
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with live_exporters() as (monitor, loader):
        down = f"http://127.0.0.1:{free_port()}/metrics"
        # the browser opens /dashboard from loopback, without a key (RECS_PRIVATE_LOOPBACK)
        env = {TARGETS_ENV: f"monitor={monitor},loader={loader},flink={down}",
               "RECS_PRIVATE_LOOPBACK": "1"}
        with serving_http(filled, **env) as port:
            base = f"http://127.0.0.1:{port}"
            stop = threading.Event()
            traffic = threading.Thread(target=request_stream, args=(base, stop), daemon=True)
            traffic.start()
            try:
                with sync_playwright() as pw:
                    browser = pw.chromium.launch_persistent_context(
                        str(tmp_path / "chromium-profile"), executable_path=str(chromium),
                        headless=True, args=CHROMIUM_ARGS, viewport={"width": 1400, "height": 900})
                    try:
                        page = browser.new_page()
                        page.set_default_timeout(PAGE_TIMEOUT_MS)
                        page.on("pageerror", lambda exc: page_errors.append(str(exc)))
                        page.goto(base + "/dashboard")
                        result = drive(page)
                    finally:
                        browser.close()
            finally:
                stop.set()
                traffic.join(timeout=5)

    rows, before, after, targets, charts_per_row = result
    print(f"\ndashboard e2e: rows {rows}; serving charts {before} -> {after}; "
          f"targets {targets}; screenshot {SCREENSHOT}")
    assert page_errors == []
    assert rows == [row_id for row_id, _ in ROWS]
    assert all(n >= 2 for n in charts_per_row), charts_per_row
    assert before != after  # a value or the point count of the serving charts changed
    assert all(state is not None for state in after)
    assert int(after[0][0]) > 0 and after[0][1] != ""  # requests/s has data
    assert targets == {"server": "true", "monitor": "true", "loader": "true", "flink": "false"}


def drive(page: Any) -> tuple[list[str], Any, Any, dict[str, str], list[int]]:
    page.wait_for_selector('#rows[data-polls="2"]')
    page.wait_for_function("() => document.querySelector('[data-chart=\"requests\"]')"
                           ".dataset.empty === 'false'")
    polls = int(page.get_attribute("#rows", "data-polls"))
    before = page.evaluate(CHART_STATE_JS, list(SERVING_CHARTS))
    page.wait_for_selector(f'#rows[data-polls="{polls + 1}"]')
    after = page.evaluate(CHART_STATE_JS, list(SERVING_CHARTS))
    page.wait_for_selector(f'#rows[data-polls="{max(POLLS_BEFORE_SCREENSHOT, polls + 1)}"]')
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    rows = page.eval_on_selector_all("section[data-row]", "els => els.map(e => e.dataset.row)")
    charts_per_row = page.eval_on_selector_all(
        "section[data-row]", "els => els.map(e => e.querySelectorAll('[data-chart]').length)")
    targets = dict(page.eval_on_selector_all(
        "#targets [data-target]", "els => els.map(e => [e.dataset.target, e.dataset.up])"))
    return rows, before, after, targets, charts_per_row
