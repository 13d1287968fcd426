"""Redis URLs -> clients (state/redis_connect.py): parsing, refusals, the client kinds."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster

from state.redis_connect import (
    async_client,
    cluster_seeds,
    cluster_url,
    is_cluster_url,
    parse_cluster_url,
    sync_client,
)


@pytest.mark.parametrize(("url", "seeds"), [
    ("redis+cluster://127.0.0.1:7000", [("127.0.0.1", 7000)]),
    ("redis+cluster://a:1,b:2,c:3/0", [("a", 1), ("b", 2), ("c", 3)]),
    ("REDIS+CLUSTER://h:6379/", [("h", 6379)]),
    ("redis+cluster://[::1]:7000", [("::1", 7000)]),
])
def test_seeds(url: str, seeds: list[tuple[str, int]]) -> None:
    assert is_cluster_url(url)
    assert cluster_seeds(url) == seeds


def test_credentials_and_round_trip() -> None:
    addr = parse_cluster_url("redis+cluster://:s3cret@h:7000,h:7001")
    assert (addr.username, addr.password) == (None, "s3cret")
    url = cluster_url(addr.seeds, password="s3cret")
    assert parse_cluster_url(url) == addr


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://h:7000/2", "database 2 requested"),
    ("redis+cluster://h", "seed 'h' has no port"),
    ("redis+cluster://h:70000", "port '70000'"),
    ("redis+cluster://h:1,,h:2", "empty seed node"),
    ("redis+cluster://h:1?timeout=3", "query parameters"),
    ("redis://h:1/0", "scheme is not redis+cluster"),
])
def test_bad_urls_name_the_url(url: str, message: str) -> None:
    with pytest.raises(ValueError, match="bad Redis Cluster URL") as err:
        parse_cluster_url(url)
    assert message in str(err.value)
    assert "h:" in str(err.value) or "'h'" in str(err.value)


def test_password_is_not_echoed_in_errors() -> None:
    with pytest.raises(ValueError) as err:
        parse_cluster_url("redis+cluster://:hunter2@h:1/5")
    assert "hunter2" not in str(err.value)


def test_client_kinds() -> None:
    """Building a plain client or an asyncio cluster client connects nowhere; the sync cluster
    client connects at once, so tests/cluster covers it against a live cluster."""
    assert not is_cluster_url("redis://127.0.0.1:1/0")
    plain = sync_client("redis://127.0.0.1:1/3", socket_timeout=1.0)
    assert type(plain) is redis.Redis
    assert plain.connection_pool.connection_kwargs["db"] == 3
    assert type(async_client("redis://127.0.0.1:1/0")) is aioredis.Redis
    with pytest.raises(ValueError, match="database 1 requested"):
        sync_client("redis+cluster://127.0.0.1:1/1")
    with pytest.raises(ValueError, match="database 1 requested"):
        async_client("redis+cluster://127.0.0.1:1/1")
    assert type(async_client("redis+cluster://127.0.0.1:1")) is aiocluster.RedisCluster
