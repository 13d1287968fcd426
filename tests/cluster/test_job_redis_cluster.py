"""The job's JVM writer (``RedisUpdateSink`` inside Flink) on a Redis Cluster: the JVM topology
at parallelism 2 on the local mini-cluster, over a generated log, writes into the cluster the
state the reference runner computes (the same comparison as tests/test_stream_e2e.py's parity
test on one Redis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.redis_cluster import RedisCluster
from recs import engine
from state.redis_store import RedisStore
from stream.job import JVM_WRITER
from stream.topology import JVM
from tests import streamkit

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
N_EVENTS = 5_000


def test_the_jvm_writer_in_the_job_writes_the_reference_state_into_the_cluster(
        kafka: Any, redis_cluster_clean: RedisCluster, tmp_path: Path) -> None:
    log = streamkit.generated_log(N_EVENTS)
    ref = streamkit.reference(log)
    settings = streamkit.settings_for(kafka.bootstrap, redis_cluster_clean.url, tmp_path,
                                      stream_runtime=JVM, writer=JVM_WRITER)
    streamkit.publish(settings, log)
    job = engine.start_job(settings, tmp_path / "logs", parallelism=2, bounded=True)
    try:
        rc = job.wait(timeout=300)
    finally:
        job.stop()
    assert rc == 0, job.tail()
    store = RedisStore.from_url(redis_cluster_clean.url)
    assert store.is_cluster
    diffs = streamkit.differences(ref, store)
    assert diffs == [], f"{len(diffs)} differences, first: {diffs[:10]}"
    assert len(store.keys()) > 1_000
    assert store.freshness()["stream"] == max(e.ts for e in log.events)
    per_master = [n.call("DBSIZE") for n in redis_cluster_clean.masters()]
    assert all(per_master), per_master
