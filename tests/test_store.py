"""One suite for every :class:`state.store.Store`: the in-memory store and the Redis store
(tests/cluster/test_store_cluster.py runs it again on a Redis Cluster).

The Redis cases run against a real ``redis-server`` (``redis_store`` fixture) and are marked
``integration``; the memory cases run everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.keys import (
    FRESHNESS_KEY,
    ITEMVEC_LOG_KEY,
    PREFIX,
    item_key,
    itemvec_key,
    session_key,
    similar_key,
    trending_key,
    uservec_key,
)
from state.records import Envelope, Update
from state.redis_store import BATCH, TOMBSTONE_TTL_S, RedisStore
from state.store import MemoryStore, Store

KINDS = ["memory", pytest.param("redis", marks=pytest.mark.integration)]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(kind: str, request: pytest.FixtureRequest) -> Iterator[Callable[[], Store]]:
    """Returns a function giving an empty store of this kind (Redis: the same db, flushed)."""
    if kind == "memory":
        yield MemoryStore
        return
    store: RedisStore = request.getfixturevalue("redis_store")

    def fresh() -> Store:
        store.client.flushdb()
        return store

    yield fresh


@pytest.fixture
def store(make_store: Callable[[], Store]) -> Store:
    return make_store()


K1, K2, K3 = similar_key("i1"), similar_key("i2"), item_key("i3")


def test_newer_version_lands(store: Store) -> None:
    assert store.apply([Update(K1, 1, 100, ["a"])]) == 1
    assert store.apply([Update(K1, 2, 200, ["b"])]) == 1
    assert store.get(K1) == Envelope(2, 200, ["b"])


def test_older_version_is_ignored(store: Store) -> None:
    store.apply([Update(K1, 5, 500, ["new"])])
    assert store.apply([Update(K1, 4, 400, ["old"])]) == 0
    assert store.get(K1) == Envelope(5, 500, ["new"])


def test_equal_version_is_reapplied_idempotently(store: Store) -> None:
    upd = Update(K1, 3, 300, {"x": 1})
    assert store.apply([upd]) == 1
    assert store.apply([upd]) == 1
    assert store.get(K1) == Envelope(3, 300, {"x": 1})
    assert store.keys() == [K1]


def test_tombstone_deletes_and_older_update_cannot_resurrect(store: Store) -> None:
    store.apply([Update(K1, 1, 100, ["a"]), Update(K2, 1, 100, ["b"])])
    assert store.apply([Update(K1, 2, 200, None)]) == 1
    assert store.get(K1) is None
    assert store.keys() == [K2]
    assert store.apply([Update(K1, 1, 100, ["a"])]) == 0
    assert store.get(K1) is None
    assert store.apply([Update(K1, 3, 300, ["back"])]) == 1  # a newer version may recreate it
    assert store.get(K1) == Envelope(3, 300, ["back"])


def test_get_many_keeps_order_and_reports_missing(store: Store) -> None:
    store.apply([Update(K1, 1, 10, 1), Update(K2, 1, 20, 2), Update(K3, 1, 30, None)])
    got = store.get_many([K2, similar_key("nope"), K1, K3])
    assert got == [Envelope(1, 20, 2), None, Envelope(1, 10, 1), None]
    assert store.get_many([]) == []


def test_keys_sorted_by_prefix_without_tombstones_or_meta(store: Store) -> None:
    store.apply([Update(K2, 1, 1, "b"), Update(K1, 1, 1, "a"), Update(K3, 1, 1, "c"),
                 Update(trending_key(), 1, 1, None)])
    store.mark_fresh("loader", 5)
    assert store.keys() == [K3, K1, K2]
    assert store.keys(PREFIX + "similar:") == [K1, K2]
    assert FRESHNESS_KEY not in set(store.keys())


def test_freshness_is_monotone_per_writer(store: Store) -> None:
    assert store.freshness() == {}
    store.mark_fresh("trending", 100)
    store.mark_fresh("trending", 50)
    store.mark_fresh("session", 7)
    assert store.freshness() == {"trending": 100, "session": 7}
    store.mark_fresh("trending", 101)
    assert store.freshness()["trending"] == 101


def test_large_batch_is_applied_in_chunks(store: Store) -> None:
    n = BATCH * 2 + 234
    ups = [Update(similar_key(f"bulk{i}"), 1, i, [i]) for i in range(n)]
    # the same key again, older, in a later chunk, and newer, in a later chunk still
    ups.insert(0, Update(K1, 2, 2, ["v2"]))
    ups.insert(BATCH + 10, Update(K1, 1, 1, ["v1"]))
    ups.append(Update(K2, 1, 1, ["v1"]))
    ups.insert(3, Update(K2, 0, 0, ["v0"]))
    assert store.apply(ups) == len(ups) - 1
    assert store.get(K1) == Envelope(2, 2, ["v2"])
    assert store.get(K2) == Envelope(1, 1, ["v1"])
    got = store.get_many([u.key for u in ups[1:6]])
    assert all(env is not None for env in got)
    assert len(store.keys(PREFIX + "similar:bulk")) == n


@pytest.mark.integration
def test_redis_session_keys_expire_and_others_do_not(redis_store: RedisStore) -> None:
    store = RedisStore(redis_store.client, session_ttl_s=120)
    store.apply([Update(session_key("u1"), 1, 1, {"recent": []}), Update(K1, 1, 1, ["a"]),
                 Update(K2, 1, 1, None)])
    ttl = {key: store.client.ttl(key) for key in (session_key("u1"), K1, K2)}
    assert 0 < ttl[session_key("u1")] <= 120
    assert ttl[K1] == -1  # relations and catalogue live until overwritten
    assert 0 < ttl[K2] <= TOMBSTONE_TTL_S  # tombstones expire eventually


def test_vector_changelog_follows_item_vector_writes(store: Store) -> None:
    store.apply([Update(itemvec_key("a"), 3, 10, {"x": [1.0]}),
                 Update(itemvec_key("b"), 3, 10, {"x": [0.5]}),
                 Update(uservec_key("u"), 3, 10, {"x": [0.1]}), Update(K1, 9, 10, ["a"])])
    assert store.vector_changes(0) == [("a", 3), ("b", 3)]  # only item vectors are logged
    store.apply([Update(itemvec_key("a"), 7, 20, None),     # an eviction is logged too
                 Update(itemvec_key("b"), 2, 20, {"x": [9.9]})])  # older: neither lands nor logs
    assert store.vector_changes(3) == [("b", 3), ("a", 7)]   # inclusive, by version
    assert store.vector_changes(4) == [("a", 7)]
    assert store.vector_changes(0, limit=1) == [("b", 3)]
    assert store.get(itemvec_key("a")) is None
    assert ITEMVEC_LOG_KEY not in store.keys(PREFIX)


@pytest.mark.integration
def test_redis_user_vectors_expire_like_sessions(redis_store: RedisStore) -> None:
    store = RedisStore(redis_store.client, session_ttl_s=120)
    store.client.flushdb()
    store.apply([Update(uservec_key("u1"), 1, 1, {"x": [0.0]}),
                 Update(itemvec_key("i1"), 1, 1, {"x": [0.0]})])
    assert 0 < store.client.ttl(uservec_key("u1")) <= 120
    assert store.client.ttl(itemvec_key("i1")) == -1


# -- property: the order of application does not matter ---------------------------------------

KEYS = st.sampled_from([K1, K2, K3, session_key("u1"), trending_key()])
PAYLOADS = st.one_of(st.none(), st.integers(-1000, 1000), st.text(max_size=4),
                     st.lists(st.integers(0, 9), max_size=3))


@st.composite
def update_sets(draw: st.DrawFn) -> tuple[list[Update], list[Update]]:
    """Updates with distinct (key, version) pairs, and a random permutation of them."""
    pairs = draw(st.lists(st.tuples(KEYS, st.integers(0, 40)), unique=True, max_size=25))
    updates = [Update(k, v, 1_000 + v, draw(PAYLOADS)) for k, v in pairs]
    return updates, draw(st.permutations(updates))


def _snapshot(store: Store) -> tuple[list[str], dict[str, Any]]:
    candidates = [K1, K2, K3, session_key("u1"), trending_key()]
    return store.keys(), dict(zip(candidates, store.get_many(candidates), strict=True))


def test_any_order_gives_the_state_of_version_order(kind: str,
                                                     make_store: Callable[[], Store]) -> None:
    @settings(max_examples=200 if kind == "memory" else 25, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(update_sets())
    def check(case: tuple[list[Update], list[Update]]) -> None:
        updates, permuted = case
        reference = MemoryStore()
        reference.apply(sorted(updates, key=lambda u: u.version))
        expected = _snapshot(reference)

        in_order = make_store()
        in_order.apply(sorted(updates, key=lambda u: u.version))
        assert _snapshot(in_order) == expected

        shuffled = make_store()
        shuffled.apply(permuted)
        assert _snapshot(shuffled) == expected

        one_by_one = make_store()
        for upd in permuted:
            one_by_one.apply([upd])
        assert _snapshot(one_by_one) == expected

    check()
