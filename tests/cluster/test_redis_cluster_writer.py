"""The writers on a Redis Cluster: the Python loader's store (``RedisStore``, batches split by
slot) and the JVM writer (``RedisApply`` through ``ClusterApply``, run by ``WriterMain``) write
into the cluster exactly the state the loader writes into one Redis for the same update records
(every key, value, TTL, the item-vector changelog and the freshness stamp); and when a master is
SIGKILLed while they write, its replica takes over, the writers retry, and the state they end
with is that same state."""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from typing import Any

import orjson
import pytest

from infra.paths import java_binary
from infra.redis_cluster import RedisCluster
from state.cluster_writes import Backoff
from state.redis_store import RedisStore
from stream import jvm
from stream.loader import LoaderStats, apply_batch
from tests.test_jvm_writer import BATCH, dump, edge_records, python_side, storefront_updates
from tests.test_jvm_writer import assert_same_state as assert_same_state_within

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
SINGLE_DB = 11


@pytest.fixture(scope="module")
def records() -> list[bytes]:
    """The storefront's updates with the edge cases mixed in and a replayed tail."""
    rng = random.Random(15)
    out = [u.to_wire() for u in storefront_updates(3_000, seed=5)]
    *edges, tie_first, tie_second = edge_records(rng)
    out = rng.sample(out + edges, len(out) + len(edges))
    return [*out, tie_first, tie_second, *out[-500:]]


def batches_of(records: list[bytes]) -> list[list[bytes]]:
    return [records[i:i + BATCH] for i in range(0, len(records), BATCH)]


@pytest.fixture(scope="module")
def single_state(redis_server: Any, records: list[bytes]) -> tuple[dict[str, Any], LoaderStats]:
    """What the loader writes into one Redis: the reference state."""
    url = redis_server.url_for(SINGLE_DB)
    stats = python_side(url, batches_of(records))
    return dump(url), stats


def assert_same_state(got: dict[str, Any], want: dict[str, Any]) -> None:
    # TTLs count from each write: the two states were written up to a minute apart
    assert_same_state_within(got, want, ttl_slack_s=120)


def test_the_loader_writes_into_the_cluster_what_it_writes_into_one_redis(
        redis_cluster_clean: RedisCluster, records: list[bytes],
        single_state: tuple[dict[str, Any], LoaderStats]) -> None:
    want, want_stats = single_state
    store = RedisStore.from_url(redis_cluster_clean.url)
    stats = LoaderStats()
    for batch in batches_of(records):
        apply_batch(store, batch, stats)
    assert (stats.applied, stats.malformed) == (want_stats.applied, want_stats.malformed)
    assert store.retries == 0
    assert_same_state(dump(redis_cluster_clean.url), want)


def test_the_loader_survives_a_master_killed_between_its_batches(
        redis_cluster_clean: RedisCluster, records: list[bytes],
        single_state: tuple[dict[str, Any], LoaderStats]) -> None:
    cluster = redis_cluster_clean
    store = RedisStore.from_url(cluster.url, backoff=Backoff(deadline_s=45.0))
    stats = LoaderStats()
    batches = batches_of(records)
    half = len(batches) // 2
    for batch in batches[:half]:
        apply_batch(store, batch, stats)
    cluster.wait_replicated()  # what was acknowledged survives the failover
    killed = cluster.kill_master(1)
    began = time.monotonic()
    for batch in batches[half:]:  # the next write meets the dead master: retried until served
        apply_batch(store, batch, stats)
    assert store.retries > 0, "no write met the failover: the test did not test it"
    successor = cluster.wait_for_failover(killed)
    assert successor is not None and successor.port != killed.port
    assert time.monotonic() - began < 45.0
    assert_same_state(dump(cluster.url), single_state[0])


def run_writer_main(url: str, records: list[bytes],
                    batch: int = BATCH) -> subprocess.Popen[bytes]:
    with tempfile.TemporaryFile() as stdin:
        stdin.write(b"\n".join(records) + b"\n")
        stdin.seek(0)
        return subprocess.Popen(
            [java_binary(), "-cp", jvm.tool_classpath(), "recs.stream.WriterMain",
             "--redis-url", url, "--batch", str(batch), "--session-ttl-s", str(30 * 86_400)],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes], timeout_s: float = 90.0) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout_s)
    assert proc.returncode == 0, err.decode()[-3000:]
    return dict(orjson.loads(out.splitlines()[-1]))


def test_the_jvm_writer_writes_into_the_cluster_what_the_loader_writes_into_one_redis(
        redis_cluster_clean: RedisCluster, records: list[bytes],
        single_state: tuple[dict[str, Any], LoaderStats]) -> None:
    want, want_stats = single_state
    result = finish(run_writer_main(redis_cluster_clean.url, records))
    assert (result["applied"], result["malformed"]) == (want_stats.applied,
                                                         want_stats.malformed)
    assert result["retries"] == 0
    assert_same_state(dump(redis_cluster_clean.url), want)


def test_the_jvm_writer_survives_a_master_killed_while_it_writes(
        redis_cluster_clean: RedisCluster, records: list[bytes],
        single_state: tuple[dict[str, Any], LoaderStats]) -> None:
    cluster = redis_cluster_clean
    # the same records, the whole log written three times over in small flushes (a replay
    # rewrites nothing newer), so the writer is still writing when the master dies
    proc = run_writer_main(cluster.url, records * 3, batch=200)
    deadline = time.monotonic() + 60
    while not any(n.call("DBSIZE") for n in cluster.masters()):  # it has started writing
        assert proc.poll() is None and time.monotonic() < deadline, "WriterMain wrote nothing"
        time.sleep(0.02)
    killed = cluster.kill_master(2)
    result = finish(proc)
    assert result["retries"] > 0, "the writer finished before the kill: nothing was tested"
    cluster.wait_for_failover(killed)
    assert_same_state(dump(cluster.url), single_state[0])
