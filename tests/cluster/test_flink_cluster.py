"""The job on a Flink standalone cluster (one JobManager, two TaskManagers of one slot each),
submitted with ``flink run`` (``stream/submit.py``) at parallelism 2, the JVM topology writing
to Redis from the job (``RECS_WRITER=jvm``):

- parity: the generated log (malformed records mixed in) gives the reference runner's Redis
  state, every malformed record reaches the DLQ, and both TaskManagers ran the job's subtasks;
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


def _settings(kafka: Any, store: RedisStore, run_dir: Path, **kw: Any) -> Settings:
    url = store.client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    return streamkit.settings_for(kafka.bootstrap, redis_url, run_dir, stream_runtime=JVM,
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


def test_cluster_job_matches_reference_at_parallelism_2(
        flink_cluster: FlinkCluster, kafka: Any, redis_store: RedisStore, tmp_path: Path,
        log: streamkit.Log, ref: Any) -> None:
    settings = _settings(kafka, redis_store, tmp_path)
    bad = [raw for raw, _ in streamkit.MALFORMED]
    streamkit.publish(settings, log, bad)
    job_id = _submit(flink_cluster, settings, bounded=True, checkpoint_dir=tmp_path / "ck")
    flink_cluster.api.wait_for_job(job_id, ("FINISHED",), timeout_s=240)
    diffs = streamkit.differences(ref, redis_store)
    assert diffs == [], f"{len(diffs)} differences, first: {diffs[:10]}"
    assert redis_store.freshness()["stream"] == max(e.ts for e in log.events)
    dead = streamkit.drain(settings, settings.topics.dlq, expect=len(bad))
    assert sorted(orjson.loads(d)["raw"].encode() for d in dead) == sorted(bad)
    # the work was spread over the cluster, not run in one place
    assert _taskmanagers_used(flink_cluster, job_id) == {
        f"{tm.name}-{flink_cluster.ports[tm.name + '.rpc']}"
        for tm in flink_cluster.taskmanagers}


def test_taskmanager_killed_mid_stream_recovers_from_its_checkpoint(
        flink_cluster: FlinkCluster, kafka: Any, redis_store: RedisStore, tmp_path: Path,
        log: streamkit.Log, ref: Any) -> None:
    settings = _settings(kafka, redis_store, tmp_path, checkpoint_interval_ms=1_000)
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
        diffs = ["not converged"]
        while diffs and time.monotonic() < deadline + 120:
            assert flink_cluster.api.job_state(job_id) != "FAILED", \
                flink_cluster.api.exceptions(job_id)
            time.sleep(2)
            if redis_store.freshness().get("stream", 0) == final_ts:
                diffs = streamkit.differences(ref, redis_store)
        assert diffs == [], f"{len(diffs)} differences, first: {diffs[:10]}"
        assert flink_cluster.api.restarts(job_id) >= 1  # it failed over, not merely slowed
        assert flink_cluster.api.job_state(job_id) == "RUNNING"
    finally:
        flink_cluster.api.cancel(job_id)
        flink_cluster.api.wait_for_job(job_id, ("CANCELED", "FINISHED"), timeout_s=60)
        if flink_cluster.overview() and not flink_cluster.taskmanagers[1].alive():
            flink_cluster.start_taskmanager(1)
