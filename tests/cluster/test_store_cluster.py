"""The store suite of tests/test_store.py again, with :class:`state.redis_store.RedisStore` on a
Redis Cluster (the batch split by slot, the changelog added after), plus what only a cluster
has: keys of one batch on every master, ids carrying a ``{hash tag}``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis.crc import key_slot

from infra.redis_cluster import RedisCluster
from state.keys import itemvec_key, session_key, similar_key
from state.records import Envelope, Update
from state.redis_store import RedisStore
from state.store import Store
from tests.test_store import (
    test_any_order_gives_the_state_of_version_order,
    test_equal_version_is_reapplied_idempotently,
    test_freshness_is_monotone_per_writer,
    test_get_many_keeps_order_and_reports_missing,
    test_keys_sorted_by_prefix_without_tombstones_or_meta,
    test_large_batch_is_applied_in_chunks,
    test_newer_version_lands,
    test_older_version_is_ignored,
    test_tombstone_deletes_and_older_update_cannot_resurrect,
    test_vector_changelog_follows_item_vector_writes,
)

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

SHARED = (test_any_order_gives_the_state_of_version_order,
          test_equal_version_is_reapplied_idempotently, test_freshness_is_monotone_per_writer,
          test_get_many_keeps_order_and_reports_missing,
          test_keys_sorted_by_prefix_without_tombstones_or_meta,
          test_large_batch_is_applied_in_chunks, test_newer_version_lands,
          test_older_version_is_ignored, test_tombstone_deletes_and_older_update_cannot_resurrect,
          test_vector_changelog_follows_item_vector_writes)  # collected here, on the cluster


@pytest.fixture
def kind() -> str:
    return "redis-cluster"


@pytest.fixture
def cluster_store(redis_cluster_clean: RedisCluster) -> Iterator[RedisStore]:
    store = RedisStore.from_url(redis_cluster_clean.url)
    yield store
    store.client.close()


@pytest.fixture
def make_store(redis_cluster_clean: RedisCluster,
               cluster_store: RedisStore) -> Callable[[], Store]:
    def fresh() -> Store:
        redis_cluster_clean.flushall()
        return cluster_store

    return fresh


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


def test_the_store_is_on_the_cluster(cluster_store: RedisStore) -> None:
    assert cluster_store.is_cluster


def test_one_batch_spans_every_master_and_hash_tags_are_honoured(
        redis_cluster_clean: RedisCluster, cluster_store: RedisStore) -> None:
    tagged = [similar_key(f"i{{grp}}{n}") for n in range(5)]  # ids holding a hash tag
    plain = [session_key(f"u{n}") for n in range(300)]
    ups = [Update(k, 1, 1, [k]) for k in tagged + plain]
    ups += [Update(itemvec_key(f"v{n}"), 4, 1, {"x": [1.0]}) for n in range(30)]
    assert cluster_store.apply(ups) == len(ups)
    assert len({key_slot(k.encode()) for k in tagged}) == 1
    owners = {cluster_store.client.get_node_from_key(u.key).port  # type: ignore[union-attr]
              for u in ups}
    assert len(owners) == 3
    assert cluster_store.get_many(tagged) == [Envelope(1, 1, [k]) for k in tagged]
    assert len(cluster_store.keys()) == len(ups)
    assert len(cluster_store.vector_changes(4)) == 30
