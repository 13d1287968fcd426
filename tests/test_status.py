"""``recs status``: exit 0 when healthy, 1 when an alert condition holds, 2 when nothing answers;
its conditions are the alert rules' (``infra/prometheus/alerts.yml``) with the thresholds of
``infra.alerting.thresholds()``.

The command runs as a subprocess against real metric endpoints: small ``prometheus_client``
exporters on loopback with chosen values, a real server (``recs serve``), and, in the stall test,
the real engine: a Kafka broker, the Flink job, ``recs monitor``; the job is paused with SIGSTOP on
its process group while traffic keeps coming, and status must report the lag alert.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from infra.alerting import thresholds
from infra.procs import free_port
from recs import engine
from recs.readings import Sample, Scrape, Snapshot, Target, read
from recs.settings import Settings
from recs.status import Check, checks
from schemas.events import Interaction
from state.redis_store import RedisStore
from stream.monitor_kafka import BLEND_GROUP
from tests.serving.kit import creds, fill, server_auth, serving_http

ROOT = Path(__file__).resolve().parent.parent
LIMITS = thresholds()
LAG_RULES = {"RecsConsumerLagGrowing", "RecsConsumerLagHigh"}
GROUP, TOPIC = "recs-stream-interactions", "interactions"


def status(*args: str, timeout: float = 60) -> tuple[int, dict[str, Any]]:
    """``recs status --json ARGS``: (exit code, the document)."""
    proc = subprocess.run([sys.executable, "-m", "recs.cli", "status", "--json", *args],
                          cwd=ROOT, capture_output=True, timeout=timeout, check=False)
    out = proc.stdout.decode()
    assert out.strip(), proc.stderr.decode()
    return proc.returncode, orjson.loads(out.strip().splitlines()[-1])


@contextlib.contextmanager
def exporting(registry: CollectorRegistry,
              tick: Callable[[], None] | None = None) -> Iterator[str]:
    """A real /metrics endpoint for ``registry``; ``tick`` runs every 100 ms meanwhile."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()

    def ticking() -> None:
        while tick is not None and not stop.wait(0.1):
            tick()

    ticker = threading.Thread(target=ticking, daemon=True)
    ticker.start()
    try:
        yield f"http://127.0.0.1:{port}/metrics"
    finally:
        stop.set()
        ticker.join(timeout=5)
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def monitor_registry(lag_records: float = 10, lag_seconds: float = 0.5,
                     checkpoint_age: float = 2.0) -> tuple[CollectorRegistry, dict[str, Any]]:
    r = CollectorRegistry()
    part = ["group", "topic", "partition"]
    m: dict[str, Any] = {
        "lag": Gauge("recs_kafka_consumer_lag_records", "", part, registry=r),
        "lag_s": Gauge("recs_kafka_consumer_lag_seconds", "", part, registry=r),
        "age": Gauge("recs_checkpoint_age_seconds", "", registry=r),
        "dlq": Counter("recs_dlq_events", "", ["reason"], registry=r)}
    m["lag"].labels(GROUP, TOPIC, "0").set(lag_records)
    m["lag_s"].labels(GROUP, TOPIC, "0").set(lag_seconds)
    m["age"].set(checkpoint_age)
    m["dlq"].labels("invalid_json").inc(5)
    return r, m


# ---- exit codes against real endpoints ----------------------------------------------------

@pytest.mark.integration
def test_a_healthy_engine_exits_0(redis_server: Any, redis_store: RedisStore,
                                  tmp_path: Path) -> None:
    fill(redis_store)
    db = redis_store.db
    registry, _ = monitor_registry()
    key_file = tmp_path / "server.key"  # /metrics is on the private side: a server key
    key_file.write_text(creds().server + "\n")
    with exporting(registry) as monitor, serving_http(redis_server.url_for(db)) as port:
        base = f"http://127.0.0.1:{port}"
        stop = threading.Event()

        def traffic() -> None:
            while not stop.wait(0.02):
                with urllib.request.urlopen(urllib.request.Request(
                        base + "/v1/trending?k=3", headers=server_auth()), timeout=2) as resp:
                    resp.read()

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()
        try:
            code, doc = status("--targets", f"monitor={monitor}", "--server",
                               f"{base}/metrics", "--key-file", str(key_file), "--window", "2")
            _, keyless = status("--server", f"{base}/metrics", "--window", "0")
        finally:
            stop.set()
            worker.join(timeout=5)
    assert [(t["up"], t["error"]) for t in keyless["targets"] if t["name"] == "server"] == \
        [(False, "HTTP 401")]
    assert (code, doc["status"], doc["alerts"]) == (0, "ok", []), doc
    assert {t["name"]: t["up"] for t in doc["targets"]} == {"monitor": True, "server": True}
    found = {c["rule"]: c for c in doc["checks"]}
    assert found["RecsServingLatencyP99OverBudget"]["subject"] == "serving p99 trending"
    assert 0 < found["RecsServingLatencyP99OverBudget"]["value"] < LIMITS["serving"]["p99_seconds"]
    assert found["RecsRedisDown"]["value"] == 0
    assert not found["RecsAnswersDegraded"]["alert"]  # no degraded answer: no series (no data)
    assert doc["lag"] == [{"group": GROUP, "topic": TOPIC, "records": 10, "seconds": 0.5}]


def _lag_grows(m: dict[str, Any]) -> Callable[[], None]:
    return lambda: m["lag"].labels(GROUP, TOPIC, "0").inc(50)


def _dlq_spikes(m: dict[str, Any]) -> Callable[[], None]:
    return lambda: m["dlq"].labels("invalid_json").inc(5)  # 50/s


ALERTS = {  # rule: (monitor registry values, what keeps changing meanwhile)
    "RecsConsumerLagHigh": ({"lag_seconds": LIMITS["consumer_lag"]["seconds"] + 1}, None),
    "RecsConsumerLagGrowing": ({"lag_records": LIMITS["consumer_lag"]["records"] + 1},
                               _lag_grows),
    "RecsCheckpointStale": ({"checkpoint_age": LIMITS["checkpoints"]["max_age_seconds"] + 1},
                            None),
    "RecsDlqSpike": ({}, _dlq_spikes),
}


@pytest.mark.parametrize("rule", sorted(ALERTS))
def test_an_alert_condition_exits_1(rule: str) -> None:
    values, tick = ALERTS[rule]
    registry, m = monitor_registry(**values)
    with exporting(registry, tick(m) if tick else None) as monitor:
        code, doc = status("--targets", f"monitor={monitor}", "--server", "", "--window", "1")
    assert (code, doc["status"], doc["alerts"]) == (1, "alert", [rule]), doc
    (hit,) = [c for c in doc["checks"] if c["alert"]]
    assert hit["rule"] == rule and hit["value"] > hit["threshold"]


def test_a_down_target_is_an_alert_and_the_text_says_which() -> None:
    registry, _ = monitor_registry()
    gone = f"http://127.0.0.1:{free_port()}/metrics"
    with exporting(registry) as monitor:
        code, doc = status("--targets", f"monitor={monitor},loader={gone}", "--server", "",
                           "--window", "0.5")
        text = subprocess.run([sys.executable, "-m", "recs.cli", "status", "--targets",
                               f"monitor={monitor},loader={gone}", "--server", "",
                               "--window", "0.5"], cwd=ROOT, capture_output=True, text=True,
                              timeout=60, check=False)
    assert (code, doc["alerts"]) == (1, ["RecsTargetDown"])
    assert text.returncode == 1
    assert "loader     DOWN" in text.stdout and "monitor    up" in text.stdout
    assert "ALERT  targets down loader" in text.stdout
    assert text.stdout.rstrip().endswith("status: ALERT  RecsTargetDown")


def test_nothing_answering_or_bad_usage_exits_2() -> None:
    dead = ",".join(f"t{i}=http://127.0.0.1:{free_port()}/metrics" for i in range(2))
    code, doc = status("--targets", dead, "--server", "", "--window", "0.2")
    assert (code, doc["status"]) == (2, "unreachable")
    assert not any(t["up"] for t in doc["targets"])
    for bad in (["--targets", "monitor"], ["--window", "-1"], ["--targets", "", "--server", ""]):
        proc = subprocess.run([sys.executable, "-m", "recs.cli", "status", *bad], cwd=ROOT,
                              capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 2 and "recs status: error" in proc.stderr, (bad, proc.stderr)


# ---- the conditions are the rules' ---------------------------------------------------------

def snap(at: float, *samples: tuple[str, dict[str, str], float]) -> Snapshot:
    return Snapshot(at, (Scrape(Target("t", "u"), True,
                                tuple(Sample(n, labels, v) for n, labels, v in samples)),))


def judge(before: Snapshot, after: Snapshot) -> dict[str, list[Check]]:
    found: dict[str, list[Check]] = {}
    for c in checks(read(before, after), after, LIMITS):
        found.setdefault(c.rule, []).append(c)
    return found


def test_conditions_follow_the_alert_rules_at_their_thresholds() -> None:
    lag = {"group": GROUP, "topic": TOPIC, "partition": "0"}
    records = LIMITS["consumer_lag"]["records"]
    p99 = LIMITS["serving"]["p99_seconds"]

    def hist(endpoint: str, n: float, slow: float) -> list[tuple[str, dict[str, str], float]]:
        # n answers, `slow` of them above the p99 budget (all within the next bucket up)
        return [("recs_http_request_duration_seconds_bucket", {"endpoint": endpoint, "le": le}, c)
                for le, c in ((str(p99), n - slow), ("0.1", n), ("+Inf", n))]

    # lag above the records threshold but not growing: RecsConsumerLagGrowing does not fire
    flat = judge(snap(0, ("recs_kafka_consumer_lag_records", lag, records + 5)),
                 snap(5, ("recs_kafka_consumer_lag_records", lag, records + 5)))
    assert [c.alert for c in flat["RecsConsumerLagGrowing"]] == [False]
    grown = judge(snap(0, ("recs_kafka_consumer_lag_records", lag, records)),
                  snap(5, ("recs_kafka_consumer_lag_records", lag, records + 1)))
    assert [c.alert for c in grown["RecsConsumerLagGrowing"]] == [True]
    at_limit = judge(snap(0, ("recs_kafka_consumer_lag_records", lag, records - 1)),
                     snap(5, ("recs_kafka_consumer_lag_records", lag, records)))
    assert [c.alert for c in at_limit["RecsConsumerLagGrowing"]] == [False]  # ">" as the rule
    # serving p99 per endpoint, every endpoint: one slow endpoint is enough
    before = snap(0, *hist("trending", 0, 0), *hist("dashboard_data", 0, 0))
    after = snap(10, *hist("trending", 1000, 0), *hist("dashboard_data", 100, 5))
    slow = judge(before, after)["RecsServingLatencyP99OverBudget"]
    assert [(c.subject, c.alert) for c in slow] == [("serving p99 dashboard_data", True)]
    # degraded answers: any rate above 0 per endpoint
    degraded = judge(snap(0, ("recs_answers_degraded_total", {"endpoint": "homepage"}, 3)),
                     snap(10, ("recs_answers_degraded_total", {"endpoint": "homepage"}, 4)))
    assert [(c.subject, c.value, c.alert) for c in degraded["RecsAnswersDegraded"]] == \
        [("degraded answers homepage", 0.1, True)]
    # a counter that went down restarted: its increase counts from zero
    restarted = judge(snap(0, ("recs_checkpoints_failed_total", {}, 7)),
                      snap(10, ("recs_checkpoints_failed_total", {}, 1)))
    assert [(c.value, c.alert) for c in restarted["RecsCheckpointsFailing"]] == [(1, True)]
    # Redis down on a server
    down = judge(snap(0), snap(1, ("recs_redis_up", {}, 0)))
    assert [c.alert for c in down["RecsRedisDown"]] == [True]
    # no data is never an alert
    empty = judge(snap(0), snap(1))
    assert not any(c.alert for cs in empty.values() for c in cs)


def test_the_blend_learners_lag_is_judged_by_its_own_rule() -> None:
    """The learner's group lagging is RecsBlendLearnerBehind (warning, its threshold), never the
    job's lag rules; the job's group lagging as much is RecsConsumerLagHigh as before."""
    limit = LIMITS["blend_learner"]["lag_seconds"]
    records = LIMITS["consumer_lag"]["records"]
    assert LIMITS["consumer_lag"]["seconds"] < 700 and limit < 700  # both rules' conditions hold

    def lagging(group: str, seconds: float) -> tuple[Snapshot, Snapshot]:
        """``group`` ``seconds`` behind, its records above RecsConsumerLagGrowing's threshold
        and growing."""
        part = {"group": group, "topic": TOPIC, "partition": "0"}
        return (snap(0, ("recs_kafka_consumer_lag_records", part, records + 1)),
                snap(5, ("recs_kafka_consumer_lag_records", part, records + 500),
                     ("recs_kafka_consumer_lag_seconds", part, seconds)))

    def fired(group: str, seconds: float) -> list[tuple[str, str, float | None, float | None]]:
        return [(c.rule, c.subject, c.value, c.threshold)
                for cs in judge(*lagging(group, seconds)).values() for c in cs if c.alert]

    assert fired(BLEND_GROUP, 700) == [
        ("RecsBlendLearnerBehind", f"lag {BLEND_GROUP}/{TOPIC}", 700, limit)]
    assert fired(BLEND_GROUP, limit) == []  # ">" as the rule
    assert sorted(fired(GROUP, 700)) == [
        ("RecsConsumerLagGrowing", f"lag {GROUP}/{TOPIC}", records + 500, records),
        ("RecsConsumerLagHigh", f"lag {GROUP}/{TOPIC}", 700, LIMITS["consumer_lag"]["seconds"])]
    # the learner's records are shown, for information only
    before, after = lagging(BLEND_GROUP, 700)
    shown = [(c.rule, c.value, c.unit) for c in checks(read(before, after), after, LIMITS)
             if c.subject == f"lag {BLEND_GROUP}/{TOPIC}"]
    assert shown == [("", records + 500, "records"), ("RecsBlendLearnerBehind", 700, "s")]


def test_a_lagging_blend_learner_exits_1_with_its_own_alert() -> None:
    registry, m = monitor_registry()  # the job's group healthy
    m["lag_s"].labels(BLEND_GROUP, TOPIC, "0").set(700)
    m["lag"].labels(BLEND_GROUP, TOPIC, "0").set(LIMITS["consumer_lag"]["records"] * 2)
    with exporting(registry) as monitor:
        code, doc = status("--targets", f"monitor={monitor}", "--server", "", "--window", "0.5")
    assert (code, doc["status"], doc["alerts"]) == (1, "alert", ["RecsBlendLearnerBehind"]), doc
    assert [(c["subject"], c["value"]) for c in doc["checks"] if c["alert"]] == \
        [(f"lag {BLEND_GROUP}/{TOPIC}", 700)]


# ---- the injected stall ------------------------------------------------------------------

ENGINE_START_S = 90.0
STALL_ALERT_S = 45.0


def lag_alerts(doc: dict[str, Any], subject: str) -> list[dict[str, Any]]:
    return [c for c in doc["checks"]
            if c["alert"] and c["rule"] in LAG_RULES and c["subject"] == subject]


class Traffic(threading.Thread):
    """Valid interactions to the topic at ``rate`` events/s until stopped."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.settings = settings
        self.rate = 300.0
        self.sent = 0
        self.stop = threading.Event()

    def run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(bootstrap_servers=self.settings.kafka_bootstrap, linger_ms=20,
                                 batch_size=256 * 1024)
        last = time.monotonic()
        owed = 0.0
        while not self.stop.wait(0.01):
            now = time.monotonic()
            owed += (now - last) * self.rate
            last = now
            while owed >= 1:
                ts = int(time.time() * 1000)
                n = self.sent
                ev = Interaction(f"stall-{n}", "view", f"u{n % 500}", f"s{n % 500}", ts,
                                 item_id=f"i{n % 200}")
                producer.send(self.settings.topics.interactions,
                              key=ev.user_id.encode(), value=ev.to_json())
                self.sent += 1
                owed -= 1
        producer.flush()
        producer.close()


@pytest.mark.integration
def test_a_stalled_job_raises_the_lag_alert(live_settings: Settings, tmp_path: Path) -> None:
    settings = dataclasses.replace(
        live_settings, monitor_port=free_port(), loader_metrics_port=free_port(),
        flink_metrics_port=free_port(), flink_rest_port=free_port(), checkpoint_interval_ms=2000)
    logs = tmp_path / "logs"
    targets = f"monitor=http://127.0.0.1:{settings.monitor_port}/metrics"
    with contextlib.ExitStack() as owned:
        job = engine.start_job(settings, logs, checkpoint_dir=tmp_path / "checkpoints")
        owned.callback(job.stop)
        monitor = engine.start_monitor(settings, logs, interval_s=1.0)
        owned.callback(monitor.stop)
        traffic = Traffic(settings)
        traffic.start()
        owned.callback(traffic.join, 10)
        owned.callback(traffic.stop.set)

        # the job consumes and commits: its lag is known and below the alert
        deadline = time.monotonic() + ENGINE_START_S
        while True:
            for proc in (job, monitor):
                assert proc.alive(), f"{proc.name} exited:\n{proc.tail()}"
            code, doc = status("--targets", targets, "--server", "", "--window", "1")
            lags = {(e["group"], e["topic"]): e for e in doc["lag"]}
            ours = lags.get((GROUP, settings.topics.interactions))
            if ours is not None and ours["records"] is not None and \
                    ours["records"] < LIMITS["consumer_lag"]["records"] / 10:
                break
            assert time.monotonic() < deadline, f"no lag of the job's group yet: {doc}\n" \
                + job.tail(20) + "\n" + monitor.tail(20)
            time.sleep(1)
        ours_key = f"lag {GROUP}/{settings.topics.interactions}"
        assert lag_alerts(doc, ours_key) == [], doc  # (the loader's group is not consumed here)

        # stall: the job's process group stops; traffic keeps coming, faster
        os.killpg(job.pid, signal.SIGSTOP)
        try:
            traffic.rate = 4000.0
            deadline = time.monotonic() + STALL_ALERT_S
            while True:
                code, doc = status("--targets", targets, "--server", "", "--window", "3")
                if code == 1 and lag_alerts(doc, ours_key):
                    break
                assert time.monotonic() < deadline, f"no lag alert after the stall: {doc}"
        finally:
            os.killpg(job.pid, signal.SIGCONT)
        assert job.alive(), job.tail()

    fired = lag_alerts(doc, ours_key)
    assert {c["rule"] for c in fired} <= set(doc["alerts"])
    print(f"\nstall: {traffic.sent} events sent; status alerts {doc['alerts']}; "
          + "; ".join(f"{c['subject']} {c['value']:.0f} > {c['threshold']}" for c in fired))


def test_the_blend_learners_group_is_shown_running_or_not() -> None:
    from recs.status import render, summary

    members = "recs_kafka_group_members"
    stopped = snap(0, (members, {"group": "recs-blend-learner"}, 0))
    running = snap(1, (members, {"group": "recs-blend-learner"}, 1))
    assert [(c.subject, c.value, c.unit, c.alert) for c in judge(stopped, stopped)[""]
            if c.unit == "consumers"] == [("consumers recs-blend-learner", 0, "consumers", False)]
    assert "consumers recs-blend-learner" in render(summary(stopped, stopped, LIMITS))
    assert "not running" in render(summary(stopped, stopped, LIMITS))
    assert "1 running" in render(summary(running, running, LIMITS))
