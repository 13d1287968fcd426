"""A real Prometheus scrapes the whole running engine (the Flink job's reporter, ``recs
monitor``, the loader and the server) during a short run, and the key series exist with sane
values: lag >= 0, freshness finite, counters increasing, every target up."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from infra.procs import free_port
from infra.prometheus_server import PrometheusServer, value_of
from recs import engine
from recs.settings import Settings
from tests.serving.kit import creds, server_auth
from tests.test_prometheus import promtool  # noqa: F401 (fixture: installs Prometheus if needed)
from tests.test_status import Traffic

pytestmark = pytest.mark.integration
# Each step below waits for its own series, in causal order (targets up -> the job consumes ->
# the loader writes -> freshness is observed), with its own budget, so a slow step is named in
# the failure instead of silently eating the budget of the steps after it. The job's first
# records need the most: a cold JVM, the job graph, the Python operators and the model stack's
# imports; on a loaded 2-core machine that has taken well over a minute.
STEP_S = 150.0
JOB_START_S = 300.0


def _poll_server(port: int, stop: threading.Event) -> None:
    while not stop.wait(0.05):
        with contextlib.suppress(OSError):
            urllib.request.urlopen(urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/trending?k=5", headers=server_auth()),
                timeout=2).read()


def test_prometheus_scrapes_job_monitor_loader_and_server(
        live_settings: Settings, tmp_path: Path, promtool: str) -> None:  # noqa: F811
    settings = dataclasses.replace(
        live_settings, http_port=free_port(), monitor_port=free_port(),
        loader_metrics_port=free_port(), flink_metrics_port=free_port(),
        flink_rest_port=free_port(), checkpoint_interval_ms=2000,
        # the test's keys; Prometheus scrapes /metrics from loopback, as on one machine
        keys_file=creds().keys_file, private_loopback=True)
    logs = tmp_path / "logs"
    with contextlib.ExitStack() as owned:
        procs = [engine.start_job(settings, logs, checkpoint_dir=tmp_path / "checkpoints"),
                 engine.start_loader(settings, logs),
                 engine.start_monitor(settings, logs, interval_s=1.0),
                 engine.start_server(settings, logs)]
        for proc in procs:
            owned.callback(proc.stop)
        prom = PrometheusServer(tmp_path / "prometheus", {
            "flink": [f"127.0.0.1:{settings.flink_metrics_port}"],
            "recs-monitor": [f"127.0.0.1:{settings.monitor_port}"],
            "recs-loader": [f"127.0.0.1:{settings.loader_metrics_port}"],
            "recs-serve": [f"127.0.0.1:{settings.http_port}"],
        }, scrape_interval="1s").start(bind_to_parent=True)
        owned.callback(prom.stop)
        traffic = Traffic(settings)
        # well inside the job's capacity even on a slowed machine: at 300 events/s a job slowed
        # by other load fell behind and freshness never came under a minute
        traffic.rate = 100.0
        traffic.start()
        owned.callback(traffic.join, 10)
        owned.callback(traffic.stop.set)
        stop = threading.Event()
        poller = threading.Thread(target=_poll_server, args=(settings.http_port, stop),
                                  daemon=True)
        poller.start()
        owned.callback(poller.join, 10)
        owned.callback(stop.set)

        def alive() -> None:
            for proc in procs:
                assert proc.alive(), f"{proc.name} exited:\n{proc.tail()}"

        waited: list[tuple[str, float]] = []  # (step, seconds), shown when a step fails

        def wait(expr: str, ok: Any, budget_s: float = STEP_S) -> list[Any]:
            start = time.monotonic()
            while True:
                alive()
                samples = prom.query(expr)
                if ok(samples):
                    waited.append((expr, round(time.monotonic() - start, 1)))
                    return samples
                assert time.monotonic() - start < budget_s, (
                    f"no sample satisfied {expr!r} within {budget_s:.0f} s", samples,
                    "steps before it (s):", waited, *(p.tail(15) for p in procs))
                time.sleep(1)

        # every target is scraped
        up = wait("up", lambda s: len(s) == 4 and all(value_of(x) == 1 for x in s))
        assert {x["metric"]["job"] for x in up} == {"flink", "recs-monitor", "recs-loader",
                                                   "recs-serve"}
        # lag of the job's group, per partition, never negative
        lag = wait('recs_kafka_consumer_lag_records{group="recs-stream-interactions"}',
                   lambda s: len(s) == settings.partitions)
        assert all(value_of(x) >= 0 for x in lag)
        seconds = prom.query("recs_kafka_consumer_lag_seconds")
        assert seconds and all(value_of(x) >= 0 for x in seconds)
        # the job consumes (its operators' counter, from Flink's reporter), then the loader
        # writes what it emits: counters that start and keep increasing
        job_in = ('sum(flink_taskmanager_job_task_operator_operator_direction_'
                  'recs_stream_events_total{direction="in"})')
        first = wait(job_in, lambda s: bool(s) and value_of(s[0]) > 0, JOB_START_S)
        wait(job_in, lambda s: value_of(s[0]) > value_of(first[0]))
        loaded = wait("sum(recs_loader_records_total)", lambda s: bool(s) and value_of(s[0]) > 0)
        wait("sum(recs_loader_records_total)", lambda s: value_of(s[0]) > value_of(loaded[0]))
        # freshness: event time -> Redis, positive and under a minute once the job has caught
        # up (the events sent while it started wait for it, so the first window can be older)
        wait("histogram_quantile(0.99, sum by (le) (rate(recs_freshness_seconds_bucket[30s])))",
             lambda s: bool(s) and math.isfinite(value_of(s[0])) and 0 < value_of(s[0]) < 60)
        # the server's counter increases too
        served = wait('sum(recs_http_requests_total{endpoint="trending"})',
                      lambda s: bool(s) and value_of(s[0]) > 0)
        wait('sum(recs_http_requests_total{endpoint="trending"})',
             lambda s: value_of(s[0]) > value_of(served[0]))
        # checkpoints complete and are young; the data in Redis is fresh
        wait("recs_checkpoint_age_seconds", lambda s: bool(s) and 0 <= value_of(s[0]) < 60)
        age = wait("recs_redis_data_age_seconds", lambda s: bool(s))
        assert all(0 <= value_of(x) < 120 for x in age)
