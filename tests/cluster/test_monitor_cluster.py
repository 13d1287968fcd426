"""``recs monitor`` on a Redis Cluster: the freshness hash and the catalogue count (a SCAN on
every master) read through a ``redis+cluster://`` URL."""

from __future__ import annotations

import dataclasses

import pytest

from infra.procs import free_port
from infra.redis_cluster import RedisCluster
from recs.settings import Settings
from state import keys
from state.records import Update
from state.redis_store import RedisStore
from stream.monitor import Monitor

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_monitor_reads_freshness_and_counts_items_on_every_master(
        live_settings: Settings, redis_cluster_clean: RedisCluster) -> None:
    store = RedisStore.from_url(redis_cluster_clean.url)
    items = [keys.item_key(f"i{n}") for n in range(40)]
    store.apply([Update(k, 1, 1, {"title": "t"}) for k in items]
                + [Update(keys.session_key("u"), 1, 1, {"events": []})])
    store.mark_fresh("stream", 1_700_000_000_000)
    per_master = [n.call("DBSIZE") for n in redis_cluster_clean.masters()]
    assert all(per_master), per_master  # the items are spread over every master
    settings = dataclasses.replace(live_settings, redis_url=redis_cluster_clean.url,
                                   flink_rest_port=free_port())
    monitor = Monitor(settings)
    try:
        snap = monitor.collect()
    finally:
        monitor.close()
    assert snap.up["redis"] is True
    assert snap.freshness_ms == {"stream": 1_700_000_000_000}
    assert snap.catalogue_items == 40
