"""The local Redis Cluster (infra/redis_cluster.py) and the clients redis_connect gives for it."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio.cluster as aiocluster
import redis.cluster as synccluster
from redis.crc import key_slot

from infra.redis_cluster import RedisCluster
from state.redis_connect import async_client, cluster_seeds, mget, sync_client

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_cluster_is_up_with_three_masters_and_their_replicas(
        redis_cluster_clean: RedisCluster) -> None:
    cluster = redis_cluster_clean
    assert len(cluster.nodes) == 6
    assert len(cluster.masters()) == 3
    assert cluster.healthy() and cluster.replicas_attached()
    assert sorted(p for _, p in cluster_seeds(cluster.url)) == sorted(cluster.ports)


def test_sync_and_async_clients_write_and_read_across_slots(
        redis_cluster_clean: RedisCluster) -> None:
    client = sync_client(redis_cluster_clean.url)
    assert isinstance(client, synccluster.RedisCluster)
    keys = [f"recs:v1:session:u{i}" for i in range(60)]
    for i, key in enumerate(keys):
        client.set(key, str(i))
    owners = {key_slot(k.encode()) * 3 // 16384 for k in keys}
    assert len(owners) == 3  # the keys spread over the three masters' slot ranges

    async def read() -> list[object]:
        aclient = async_client(redis_cluster_clean.url)
        assert isinstance(aclient, aiocluster.RedisCluster)
        try:
            return [await aclient.get(k) for k in keys]
        finally:
            await aclient.aclose()

    assert asyncio.run(read()) == [str(i).encode() for i in range(60)]
    assert mget(client, [*keys[:3], "absent"]) == [b"0", b"1", b"2", None]  # across slots
    client.close()


def test_killed_master_is_replaced_by_its_replica_and_keeps_the_data(
        redis_cluster_clean: RedisCluster) -> None:
    cluster = redis_cluster_clean
    client = sync_client(cluster.url)
    keys = [f"k{i}" for i in range(100)]
    for key in keys:
        client.set(key, key)
    cluster.wait_replicated()  # replication is asynchronous: kill only once it caught up
    killed = cluster.kill_master(0)
    successor = cluster.wait_for_failover(killed, timeout_s=30)
    assert successor is not None and successor.port != killed.port
    assert killed.port not in [n.port for n in cluster.masters()]
    assert [client.get(k) for k in keys] == [k.encode() for k in keys]
    cluster.restart_dead()
    assert len(cluster.masters()) == 3 and cluster.replicas_attached()
    client.close()
