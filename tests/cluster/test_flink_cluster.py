"""The job on a Flink standalone cluster (one JobManager, two TaskManagers of one slot each),
submitted with ``flink run`` (``stream/submit.py``) at parallelism 2, reading the three-broker
Kafka, the JVM topology writing to the Redis Cluster from the job (``RECS_WRITER=jvm``):

- parity: the generated log (malformed records mixed in) gives the reference runner's Redis
  state, every malformed record reaches the DLQ, and both TaskManagers ran the job's subtasks
  (the job runs unbounded, as in production, and is cancelled once Redis converged);
- a TaskManager SIGKILLed mid-stream: the job restarts from its last checkpoint once the
  TaskManager is back, and the final state equals the reference (nothing lost, nothing counted
  twice).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.flink_cluster import FlinkCluster
from infra.kafka_cluster import KafkaCluster
from infra.redis_cluster import RedisCluster
from recs.settings import Settings
from state.redis_store import RedisStore
from stream.job import JVM_WRITER, JobOptions, latest_checkpoint
from stream.submit import submit
from stream.topology import JVM
from tests import streamkit

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

N_EVENTS = 20_000
PARALLELISM = 2


@pytest.fixture(scope="module")
def log() -> streamkit.Log:
    return streamkit.generated_log(N_EVENTS)


@pytest.fixture(scope="module")
def ref(log: streamkit.Log) -> Any:
    return streamkit.reference(log)


def _settings(kafka: KafkaCluster, redis: RedisCluster, run_dir: Path, **kw: Any) -> Settings:
    return streamkit.settings_for(kafka.bootstrap, redis.url, run_dir, stream_runtime=JVM,
                                  writer=JVM_WRITER, **kw)


def _submit(cluster: FlinkCluster, settings: Settings, **kw: Any) -> str:
    opts = JobOptions(parallelism=PARALLELISM, remote=True, group_id=settings.topics.interactions,
                      **kw)
    return submit(settings, cluster.rest_address, opts, home=cluster.dir)


def _taskmanagers_used(cluster: FlinkCluster, job_id: str) -> set[str]:
    used: set[str] = set()
    for vertex in cluster.api.call(f"/jobs/{job_id}")["vertices"]:
        doc = cluster.api.call(f"/jobs/{job_id}/vertices/{vertex['id']}/taskmanagers")
        used |= {tm["taskmanager-id"] for tm in doc["taskmanagers"]}
    return used


def _records_read(cluster: FlinkCluster, job_id: str) -> dict[str, int]:
    """Records each source vertex emitted (summed over subtasks), by vertex name."""
    out = {}
    for vertex in cluster.api.call(f"/jobs/{job_id}")["vertices"]:
        if vertex["name"].startswith("Source"):
            out[vertex["name"][:30]] = int(vertex["metrics"]["write-records"])
    return out


def _cancel(cluster: FlinkCluster, job_id: str) -> None:
    """Cancel the test's job so the next test has both slots (a failed job has none)."""
    if cluster.api.job_state(job_id) not in ("FAILED", "CANCELED", "FINISHED"):
        cluster.api.cancel(job_id)
        cluster.api.wait_for_job(job_id, ("CANCELED",), timeout_s=60)


def _converge(cluster: FlinkCluster, job_id: str, store: RedisStore, ref: Any, final_ts: int,
              timeout_s: float) -> None:
    """Until Redis holds the reference's state (compared once the newest event is in)."""
    deadline = time.monotonic() + timeout_s
    diffs = ["the newest event never reached Redis"]
    while diffs and time.monotonic() < deadline:
        assert cluster.api.job_state(job_id) != "FAILED", cluster.api.exceptions(job_id)
        time.sleep(2)
        if store.freshness().get("stream", 0) == final_ts:
            diffs = streamkit.differences(ref, store)
    assert diffs == [], (f"{len(diffs)} differences, first: {diffs[:10]}; failures "
                         f"{cluster.api.failures(job_id)}, sources read "
                         f"{_records_read(cluster, job_id)}; failures: "
                         f"{cluster.api.exceptions(job_id)}")


def test_cluster_job_matches_reference_at_parallelism_2(
        flink_cluster: FlinkCluster, kafka_cluster_whole: KafkaCluster,
        redis_cluster_clean: RedisCluster, tmp_path: Path, log: streamkit.Log, ref: Any) -> None:
    # unbounded, as in production: one bounded run of eight here (load 21) finished with 3 %
    # of the events missing in Redis, cause not found (a bounded job stops at the end offsets
    # it reads at start)
    settings = _settings(kafka_cluster_whole, redis_cluster_clean, tmp_path)
    redis_store = RedisStore.from_url(redis_cluster_clean.url)
    bad = [raw for raw, _ in streamkit.MALFORMED]
    streamkit.publish(settings, log, bad)
    job_id = _submit(flink_cluster, settings, checkpoint_dir=tmp_path / "ck")
    try:
        _converge(flink_cluster, job_id, redis_store, ref, max(e.ts for e in log.events), 240)
        dead = streamkit.drain(settings, settings.topics.dlq, expect=len(bad))
        assert sorted(orjson.loads(d)["raw"].encode() for d in dead) == sorted(bad)
        # the work was spread over the cluster, not run in one place
        assert _taskmanagers_used(flink_cluster, job_id) == {
            f"{tm.name}-{flink_cluster.ports[tm.name + '.rpc']}"
            for tm in flink_cluster.taskmanagers}
    finally:
        _cancel(flink_cluster, job_id)


def test_taskmanager_killed_mid_stream_recovers_from_its_checkpoint(
        flink_cluster: FlinkCluster, kafka_cluster_whole: KafkaCluster,
        redis_cluster_clean: RedisCluster, tmp_path: Path, log: streamkit.Log, ref: Any) -> None:
    settings = _settings(kafka_cluster_whole, redis_cluster_clean, tmp_path,
                         checkpoint_interval_ms=1_000)
    redis_store = RedisStore.from_url(redis_cluster_clean.url)
    head = len(log.events) // 10  # the rest at 1,000 events/s while the job runs
    streamkit.publish(settings, log, stop=head)
    final_ts = max(e.ts for e in log.events)
    checkpoints = tmp_path / "ck"
    job_id = _submit(flink_cluster, settings, checkpoint_dir=checkpoints)
    rest = threading.Thread(target=streamkit.publish, args=(settings, log),
                            kwargs={"start": head, "rate": 1_000.0}, daemon=True)
    try:
        deadline = time.monotonic() + 180
        while latest_checkpoint(checkpoints) is None or not redis_store.freshness():
            assert flink_cluster.api.job_state(job_id) in ("INITIALIZING", "CREATED", "RUNNING")
            assert time.monotonic() < deadline, "no checkpoint completed in time"
            time.sleep(0.2)
        rest.start()
        first = latest_checkpoint(checkpoints)
        while latest_checkpoint(checkpoints) == first:  # one more, taken while events arrive
            assert time.monotonic() < deadline, "no second checkpoint in time"
            time.sleep(0.1)
        time.sleep(0.5)  # and some progress past it, which the recovery must not count twice
        flink_cluster.kill_taskmanager(1)
        seen = redis_store.freshness().get("stream", 0)
        assert seen < final_ts, "the job had finished the log before the kill; not mid-stream"
        flink_cluster.start_taskmanager(1)

        rest.join()
        _converge(flink_cluster, job_id, redis_store, ref, final_ts, 240)
        assert flink_cluster.api.failures(job_id) >= 1  # it failed over, not merely slowed
        assert flink_cluster.api.running(job_id)
    finally:
        _cancel(flink_cluster, job_id)
        if flink_cluster.overview() and not flink_cluster.taskmanagers[1].alive():
            flink_cluster.start_taskmanager(1)
