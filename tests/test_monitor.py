"""``recs monitor`` and the loader's metrics against a real Kafka and Redis.

- the monitor: committed vs end offsets, lag in records and seconds (from the first uncommitted
  record's timestamp), dead letters by reason read incrementally, Redis freshness and the
  catalogue count, and Flink marked down when no job answers; the exported names are the
  catalogue's (docs/observability.md);
- the Flink side of the monitor on REST documents shaped like Flink's (the live job is checked
  in tests/test_stream_e2e.py);
- the blend learner's group: "not running" and no lag series before it commits, its lag once
  it has (tests/test_blend_learner_live.py scrapes the learner's own /metrics);
- the loader: a batch through ``recs.updates`` shows up in ``recs_freshness_seconds`` and the
  loader's counters on its ``/metrics`` endpoint.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from infra.procs import free_port
from recs.settings import Settings
from schemas.events import SchemaError
from state import keys
from state.records import Update
from state.redis_store import RedisStore
from stream import loader
from stream.blend_learner_run import GROUP, LearnerOptions, Shell
from stream.dlq import dead_letter
from stream.job import observability_options
from stream.monitor import (
    BLEND_GROUP,
    Monitor,
    OperatorReading,
    Snapshot,
    SnapshotCollector,
    _read_operators,
)
from tests.streamkit import generated_log

# record timestamps are checked by the broker (not too far from its clock): use the real time
NOW_S = float(int(time.time()))
NOW_MS = int(NOW_S * 1000)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Exposition text -> {(sample name, labels): value}."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def rendered(snapshot: Snapshot, now_s: float) -> dict[tuple[str, frozenset[tuple[str, str]]],
                                                        float]:
    collector = SnapshotCollector(clock=lambda: now_s)
    collector.snapshot = snapshot
    registry = CollectorRegistry()
    registry.register(collector)
    return samples(generate_latest(registry).decode())


def lab(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


@pytest.fixture
def settings(live_settings: Settings) -> Settings:
    # nothing listens on this REST port: the monitor must report Flink down, not fail
    return dataclasses.replace(live_settings, flink_rest_port=free_port())


def _commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                             enable_auto_commit=False)
    consumer.assign(list(offsets))
    consumer.commit({tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items()})
    consumer.close()


def _dead_letters(n: int, field: str, contract: str = "interaction") -> list[bytes]:
    exc = SchemaError(contract, field, "is required", None)
    return [dead_letter(f'{{"n": {i}}}', exc).encode() for i in range(n)]


@pytest.mark.integration
def test_monitor_reads_lag_dlq_and_redis(settings: Settings, redis_store: RedisStore) -> None:
    topics = settings.topics
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    stamps = [NOW_MS - 100_000 + 1_000 * i for i in range(10)]
    for ts in stamps:  # ten records on partition 0 of interactions
        producer.send(topics.interactions, value=b"{}", partition=0, timestamp_ms=ts)
    producer.send(topics.interactions, value=b"{}", partition=1, timestamp_ms=NOW_MS - 7_000)
    for raw in (*_dead_letters(3, "ts"), *_dead_letters(2, "item_ids[1]"),
                *_dead_letters(1, "price", "item"), b"garbage"):
        producer.send(topics.dlq, value=raw)
    producer.flush()
    _commit(settings, "recs-stream-interactions", {TopicPartition(topics.interactions, 0): 4})
    redis_store.mark_fresh("stream", NOW_MS - 3_000)
    redis_store.apply([Update(keys.item_key(f"i{n}"), 1, 1, {"title": "t"}) for n in range(3)]
                      + [Update(keys.session_key("u"), 1, 1, {"events": []})])

    monitor = Monitor(settings)
    try:
        snap = monitor.collect()
        assert snap.up == {"kafka": True, "dlq": True, "flink": False, "redis": True}
        lags = {(p.group, p.topic, p.partition): p for p in snap.lags}
        assert len(lags) == 4 + 4 + 1  # interactions, items, updates
        p0 = lags[("recs-stream-interactions", topics.interactions, 0)]
        assert (p0.end, p0.committed, p0.lag_records) == (10, 4, 6)
        assert p0.first_uncommitted_ms == stamps[4]
        p1 = lags[("recs-stream-interactions", topics.interactions, 1)]
        assert (p1.end, p1.committed, p1.lag_records) == (1, None, 1)  # nothing committed yet
        assert p1.first_uncommitted_ms == NOW_MS - 7_000
        idle = lags[("recs-loader", topics.updates, 0)]
        assert (idle.end, idle.lag_records, idle.first_uncommitted_ms) == (0, 0, None)
        assert snap.dlq == {"interaction.ts": 3, "interaction.item_ids": 2, "item.price": 1,
                            "unreadable": 1}
        assert snap.freshness_ms == {"stream": NOW_MS - 3_000}
        assert snap.catalogue_items == 3

        got = rendered(snap, NOW_S)
        part0 = lab(group="recs-stream-interactions", topic=topics.interactions, partition="0")
        part1 = lab(group="recs-stream-interactions", topic=topics.interactions, partition="1")
        assert got[("recs_kafka_consumer_lag_records", part0)] == 6
        assert got[("recs_kafka_consumer_lag_seconds", part0)] == pytest.approx(96.0)
        assert got[("recs_kafka_end_offset", part0)] == 10
        assert got[("recs_kafka_committed_offset", part0)] == 4
        assert ("recs_kafka_committed_offset", part1) not in got
        assert got[("recs_kafka_consumer_lag_seconds", part1)] == pytest.approx(7.0)
        updates = lab(group="recs-loader", topic=topics.updates, partition="0")
        assert got[("recs_kafka_consumer_lag_seconds", updates)] == 0
        assert got[("recs_dlq_events_total", lab(reason="interaction.ts"))] == 3
        assert got[("recs_redis_data_age_seconds", lab(writer="stream"))] == pytest.approx(3.0)
        assert got[("recs_catalogue_items", lab())] == 3
        assert got[("recs_monitor_up", lab(source="flink"))] == 0
        assert got[("recs_monitor_up", lab(source="kafka"))] == 1
        assert not any(name.startswith("recs_checkpoint") for name, _ in got)

        # the group catches up on partition 0, two more dead letters: read incrementally
        _commit(settings, "recs-stream-interactions", {TopicPartition(topics.interactions, 0): 10})
        for raw in _dead_letters(2, "ts"):
            producer.send(topics.dlq, value=raw)
        producer.flush()
        again = monitor.collect()
        p0 = next(p for p in again.lags if p.topic == topics.interactions and p.partition == 0)
        assert (p0.committed, p0.lag_records, p0.first_uncommitted_ms) == (10, 0, None)
        assert again.dlq["interaction.ts"] == 5 and sum(again.dlq.values()) == 9
    finally:
        monitor.close()
        producer.close()


def test_flink_rest_readings_become_operator_metrics() -> None:
    """Metric ids as Flink's REST API names them: subtask, Flink operator name (fused Python
    operators are joined), the project's ``operator`` group, the counter."""
    values = {
        "0.sessions.operator.sessions.direction.in.recs_stream_events_total": "10",
        "1.sessions.operator.sessions.direction.in.recs_stream_events_total": "5",
        "0.sessions.operator.sessions.direction.out.recs_stream_events_total": "30",
        "0.sessions.operator.sessions.recs_stream_late_events_total": "2",
        "0.sessions.currentInputWatermark": str(NOW_MS - 4_000),
        "1.sessions.currentInputWatermark": str(NOW_MS - 9_000),
        "0.parse__items-touched.operator.parse.direction.in.recs_stream_events_total": "7",
        "0.parse__items-touched.currentInputWatermark": str(-(2**63)),
        "0.Sink__updates-sink.currentInputWatermark": str(NOW_MS),
    }
    readings: dict[str, OperatorReading] = {}
    _read_operators(values, readings)
    assert readings["sessions"] == OperatorReading(15, 30, 2, NOW_MS - 9_000)
    assert readings["parse"] == OperatorReading(7, 0, 0, -(2**63))
    got = rendered(Snapshot(NOW_S, 0.1, {"flink": True}, operators=readings), NOW_S)
    assert got[("recs_stream_events_total", lab(operator="sessions", direction="in"))] == 15
    assert got[("recs_stream_late_events_total", lab(operator="sessions"))] == 2
    assert got[("recs_stream_watermark_lag_seconds", lab(operator="sessions"))] == 9.0
    # no watermark yet: no lag is better than a lag of 300 million years
    assert ("recs_stream_watermark_lag_seconds", lab(operator="parse")) not in got


def test_job_falls_back_when_observability_ports_are_taken() -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        options, jars = observability_options(
            dataclasses.replace(Settings(), flink_rest_port=taken, flink_metrics_port=taken))
    assert options["rest.bind-port"] == "0" and "metrics.reporter.prom.port" not in options
    assert jars == []
    rest, prom = free_port(), free_port()
    options, jars = observability_options(dataclasses.replace(
        Settings(), flink_rest_port=rest, flink_metrics_port=prom))
    assert options["rest.bind-port"] == str(rest)
    assert options["metrics.reporter.prom.port"] == str(prom)
    assert [j.name.startswith("flink-metrics-prometheus-") for j in jars] == [True]


@pytest.mark.integration
def test_loader_exports_freshness_and_counters(live_settings: Settings,
                                               redis_store: RedisStore) -> None:
    port = free_port()
    metrics = loader.serve_metrics("127.0.0.1", port, clock=lambda: NOW_S)
    assert metrics is not None
    producer = KafkaProducer(bootstrap_servers=live_settings.kafka_bootstrap)
    sent = [Update(keys.session_key(f"u{n}"), 1, NOW_MS - 400 * n, {"n": n}) for n in range(5)]
    sent += [Update(keys.key_for("similar", "i1"), 2, NOW_MS - 20_000, {"items": []}),
             Update(keys.key_for("similar", "i1"), 3, NOW_MS - 2_000, {"items": []})]
    for upd in sent:
        producer.send(live_settings.topics.updates, value=upd.to_wire())
    producer.send(live_settings.topics.updates, value=b"not an update")
    producer.flush()
    producer.close()
    stats = loader.run(live_settings, redis_store, group_id="t-loader", idle_exit_s=1.0,
                       max_seconds=60, metrics=metrics)
    assert (stats.records, stats.malformed) == (8, 1)

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        got = samples(resp.read().decode())
    session, similar = lab(kind="session"), lab(kind="similar")
    assert got[("recs_freshness_seconds_count", session)] == 5
    assert got[("recs_freshness_seconds_sum", session)] == pytest.approx(0.4 * (0 + 1 + 2 + 3 + 4))
    assert got[("recs_freshness_seconds_bucket", session | {("le", "0.5")})] == 2  # 0 s, 0.4 s
    assert got[("recs_freshness_seconds_bucket", session | {("le", "+Inf")})] == 5
    # the two updates of one key coalesce: only the newest is written and observed
    assert got[("recs_freshness_seconds_count", similar)] == 1
    assert got[("recs_freshness_seconds_sum", similar)] == pytest.approx(2.0)
    assert got[("recs_loader_records_total", lab())] == 8
    assert got[("recs_loader_malformed_total", lab())] == 1
    assert got[("recs_loader_updates_applied_total", lab())] == 6
    assert got[("recs_loader_lag_records", lab())] == 0


def _until(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)


@pytest.mark.integration
def test_monitor_shows_the_blend_learners_group_lag_once_it_commits(
        settings: Settings, redis_server: Any, redis_store: RedisStore) -> None:
    topic, group, n, more = settings.topics.interactions, f"g-{uuid.uuid4().hex[:8]}", 40, 7
    events = generated_log(200, n_users=20, n_items=450, seed=3).events
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    for event in events[:n]:
        producer.send(topic, value=event.to_json(), partition=0)
    producer.flush()
    p0 = lab(group=group, topic=topic, partition="0")
    monitor = Monitor(settings, blend_group=group)
    opts = LearnerOptions(settings.kafka_bootstrap, topic, settings.redis_url, 1.0, 0.2,
                          group=group, reset="earliest")
    shell = Shell(opts, settings)
    learner = threading.Thread(target=lambda: asyncio.run(shell.run()))
    try:
        # no learner ever ran: "not running", no lag series (not the whole topic as lag)
        readings: list[Snapshot] = []  # a fresh broker finds no group coordinator at first

        def reads_kafka() -> bool:
            readings.append(monitor.collect())
            return readings[-1].up["kafka"]

        _until(reads_kafka, "the monitor reads Kafka")
        before = readings[-1]
        assert before.members == {group: 0}
        assert not [p for p in before.lags if p.group == group]
        got = rendered(before, NOW_S)
        assert got[("recs_kafka_group_members", lab(group=group))] == 0
        assert ("recs_kafka_consumer_lag_records", p0) not in got

        # running and committed: one member, the partition's end committed, no lag
        learner.start()
        _until(lambda: _committed(settings, group, topic) == n, "the learner commits")
        running = monitor.collect()
        assert running.members == {group: 1}
        got = rendered(running, NOW_S)
        assert (got[("recs_kafka_end_offset", p0)], got[("recs_kafka_committed_offset", p0)],
                got[("recs_kafka_consumer_lag_records", p0)]) == (n, n, 0)
        assert got[("recs_kafka_consumer_lag_seconds", p0)] == 0
        assert shell.learner.counts.seen == n

        # stopped, and the topic moves on: not running, and behind by what came after
        shell.stop()
        learner.join(timeout=20)
        assert not learner.is_alive()
        for event in events[n:n + more]:
            producer.send(topic, value=event.to_json(), partition=0)
        producer.flush()
        after = monitor.collect()
        assert after.members == {group: 0}
        got = rendered(after, time.time() + 5)  # the first record behind: sent under 5 s ago
        assert got[("recs_kafka_group_members", lab(group=group))] == 0
        assert (got[("recs_kafka_committed_offset", p0)],
                got[("recs_kafka_consumer_lag_records", p0)]) == (n, more)
        assert 5 < got[("recs_kafka_consumer_lag_seconds", p0)] < 30
    finally:
        shell.stop()
        if learner.is_alive():
            learner.join(timeout=20)
        monitor.close()
        producer.close()


def test_the_monitor_watches_the_learners_default_group() -> None:
    assert BLEND_GROUP == GROUP  # stream.monitor does not import the learner (faiss)


def _committed(settings: Settings, group: str, topic: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        consumer.close()
