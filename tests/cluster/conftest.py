"""Fixtures of the cluster topology's tests (see the ``cluster`` marker).

``redis_cluster``  a running :class:`infra.redis_cluster.RedisCluster` (3 masters, 1 replica
                   each) for the tests of this package, bound to the test process; ``.url`` is its
                   ``redis+cluster://`` URL. Emptied before each test that asks for it through
                   ``redis_cluster_clean``, whose teardown restarts any node the test killed.
``kafka_cluster``  a running :class:`infra.kafka_cluster.KafkaCluster` (3 KRaft brokers, the
                   engine's topics at replication factor 3, min ISR 2) for this package's tests,
                   bound to the test process; ``.bootstrap`` lists every broker. Through
                   ``kafka_cluster_whole`` a test gets it with every broker running, and any
                   broker it killed is restarted afterwards.
``flink_cluster``  a running :class:`infra.flink_cluster.FlinkCluster` (one JobManager, two
                   TaskManagers of one slot each) for the tests of this package, bound to the test
                   process; ``.rest_address``, ``.api`` (its REST API),
                   ``.kill_taskmanager(i)`` (SIGKILL) and ``.start_taskmanager(i)``.

Package-scoped: the three clusters (7 JVMs, 6 Redis processes) stop once the last test of
``tests/cluster`` ran, not at the end of the whole run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from infra.flink_cluster import FlinkCluster
from infra.kafka_cluster import KafkaCluster
from infra.redis_cluster import RedisCluster
from tests.conftest import _started


@pytest.fixture(scope="package")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start(bind_to_parent=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def redis_cluster_clean(redis_cluster: RedisCluster) -> Iterator[RedisCluster]:
    redis_cluster.restart_dead()
    redis_cluster.flushall()
    yield redis_cluster
    redis_cluster.restart_dead()


@pytest.fixture(scope="package")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka-cluster")).start(bind_to_parent=True)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture()
def kafka_cluster_whole(kafka_cluster: KafkaCluster) -> Iterator[KafkaCluster]:
    kafka_cluster.start(bind_to_parent=True)  # relaunches any broker an earlier test killed
    yield kafka_cluster
    kafka_cluster.start(bind_to_parent=True)


@pytest.fixture(scope="package")
def flink_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlinkCluster]:
    began = time.monotonic()
    cluster = FlinkCluster(tmp_path_factory.mktemp("flink-cluster"), taskmanagers=2)
    cluster.start(bind_to_parent=True)
    _started["flink cluster"] = time.monotonic() - began
    try:
        yield cluster
    finally:
        cluster.stop()
