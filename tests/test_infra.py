"""The infrastructure the project starts itself: Kafka broker, topics, Redis, ``recs infra``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import infra.procs
from infra.paths import flink_connector_jar
from infra.procs import command_line, ephemeral_range, free_port, port_open, read_json
from infra.topics import partition_counts, topic_configs
from recs.settings import Settings

pytestmark = pytest.mark.integration


def test_broker_has_the_engine_topics(kafka: Any) -> None:
    t = Settings().topics
    counts = partition_counts(kafka.bootstrap, [t.interactions, t.items, t.dlq, t.updates])
    assert counts == {t.interactions: 4, t.items: 4, t.dlq: 4, t.updates: 1}
    assert topic_configs(kafka.bootstrap, t.items).get("cleanup.policy") == "compact"
    assert topic_configs(kafka.bootstrap, t.interactions).get("cleanup.policy") is None


def test_produce_consume_round_trip(kafka: Any, fresh_topics: Any) -> None:
    (topic,) = fresh_topics("roundtrip", partitions=2)
    assert partition_counts(kafka.bootstrap, [topic]) == {topic: 2}
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all", linger_ms=0)
    try:
        meta = producer.send(topic, key=b"u1", value=b'{"hello": 1}').get(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    try:
        tp = TopicPartition(topic, meta.partition)
        consumer.assign([tp])
        consumer.seek(tp, meta.offset)
        record = next(iter(consumer))
    finally:
        consumer.close()
    assert (record.key, record.value, record.offset) == (b"u1", b'{"hello": 1}', meta.offset)


def test_consumer_group_reads_from_the_start(kafka: Any, fresh_topics: Any) -> None:
    (topic,) = fresh_topics("group")
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    try:
        for i in range(20):
            producer.send(topic, key=f"u{i % 5}".encode(), value=str(i).encode())
        producer.flush(timeout=30)
    finally:
        producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=kafka.bootstrap, group_id=topic,
                             auto_offset_reset="earliest", consumer_timeout_ms=15_000)
    try:
        seen = []
        for record in consumer:
            seen.append(int(record.value))
            if len(seen) == 20:
                break
    finally:
        consumer.close()
    assert sorted(seen) == list(range(20))


def test_redis_answers_and_survives_a_kill(redis_killable: Any) -> None:
    client = redis.Redis.from_url(redis_killable.url_for(3), socket_timeout=2)
    try:
        assert client.ping()
        client.set("k", "v")
        redis_killable.kill()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        redis_killable.restart()
        assert client.ping()  # same URL after a restart; the data is gone (no persistence)
        assert client.get("k") is None
    finally:
        client.close()


def test_flink_connector_jar_is_resolved() -> None:
    jar = flink_connector_jar()
    assert jar.name.startswith("flink-sql-connector-kafka-") and jar.suffix == ".jar"
    assert jar.stat().st_size > 1_000_000


def _recs_infra(run_dir: Path, *args: str,
                timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"KAFKA_BOOTSTRAP", "RECS_KAFKA_BOOTSTRAP", "REDIS_URL", "RECS_REDIS_URL"}}
    env["RECS_RUN_DIR"] = str(run_dir)
    env["RECS_INFRA"] = "local"
    return subprocess.run([sys.executable, "-m", "recs.cli", "infra", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if command_line(pid) is None:
            return True
        time.sleep(0.1)
    return False


def test_recs_infra_up_status_down(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    down = _recs_infra(run_dir, "status")
    assert down.returncode == 3, down.stdout + down.stderr

    up = _recs_infra(run_dir, "up")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        state = read_json(run_dir / "services.json")
        assert state is not None
        kafka_pid, redis_pid = state["kafka"]["pid"], state["redis"]["pid"]
        kafka_port, redis_port = state["kafka"]["port"], state["redis"]["port"]
        assert f"export KAFKA_BOOTSTRAP=127.0.0.1:{kafka_port}" in up.stdout
        assert f"export REDIS_URL=redis://127.0.0.1:{redis_port}/0" in up.stdout
        assert port_open(kafka_port) and port_open(redis_port)

        again = _recs_infra(run_dir, "up", "-q")  # idempotent: same processes, same ports
        assert again.returncode == 0, again.stdout + again.stderr
        assert again.stdout == (run_dir / "services.env").read_text()
        assert read_json(run_dir / "services.json") == state

        status = _recs_infra(run_dir, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"pid {kafka_pid}" in status.stdout and f"pid {redis_pid}" in status.stdout
    finally:
        stopped = _recs_infra(run_dir, "down")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert _gone(kafka_pid) and _gone(redis_pid)
    assert not port_open(kafka_port) and not port_open(redis_port)
    assert not (run_dir / "services.json").exists()
    assert _recs_infra(run_dir, "status").returncode == 3


def test_free_ports_lie_below_the_ephemeral_range_and_are_never_handed_out_twice(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    low, high = ephemeral_range()
    assert 0 < low <= high
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)  # outgoing connections never take these
    assert all(infra.procs.LOWEST_PICK <= p < low for p in ports)
    with socket.socket() as s:  # a port picked is one a server can listen on
        s.bind(("127.0.0.1", ports[0]))
        s.listen()
    # no room below the range (or an unreadable range file): the kernel's pick
    narrow = tmp_path / "range"
    narrow.write_text(f"{infra.procs.LOWEST_PICK + 10}\t60999\n")
    monkeypatch.setattr(infra.procs, "EPHEMERAL_RANGE_FILE", narrow)
    assert free_port() >= infra.procs.LOWEST_PICK + 10
    monkeypatch.setattr(infra.procs, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    assert ephemeral_range() == (32_768, 60_999)
