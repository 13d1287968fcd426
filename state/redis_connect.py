"""The one place a Redis URL becomes a client: one Redis or a Redis Cluster.

``redis://`` and ``rediss://`` (and ``unix://``) URLs give a plain client, as
``redis.Redis.from_url`` reads them. A Redis Cluster is addressed by its seed nodes::

    redis+cluster://[user:password@]host:port[,host:port...][/0]

The client learns the other nodes and the slot map from any seed that answers. A cluster has
one database, so a path other than ``/`` or ``/0`` is refused; query parameters are refused too
(pass client options as keyword arguments).

>>> is_cluster_url("redis+cluster://127.0.0.1:7000,127.0.0.1:7001")
True
>>> is_cluster_url("redis://127.0.0.1:6379/0")
False
>>> cluster_seeds("redis+cluster://:secret@10.0.0.1:7000,10.0.0.2:7001/0")
[('10.0.0.1', 7000), ('10.0.0.2', 7001)]
>>> cluster_url([("127.0.0.1", 7000), ("127.0.0.1", 7001)])
'redis+cluster://127.0.0.1:7000,127.0.0.1:7001'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import unquote

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.cluster as synccluster

CLUSTER_SCHEME: Final = "redis+cluster"
_PREFIX: Final = CLUSTER_SCHEME + "://"

#: What a sync client of either kind is (both have the same command methods).
SyncClient = redis.Redis | synccluster.RedisCluster
AsyncClient = aioredis.Redis | aiocluster.RedisCluster


@dataclass(frozen=True, slots=True)
class ClusterAddress:
    """A parsed ``redis+cluster://`` URL."""

    seeds: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` addresses a Redis Cluster (scheme ``redis+cluster``)."""
    return url.lower().startswith(_PREFIX)


def _url_error(url: str, why: str) -> ValueError:
    shown = url if "@" not in url else _PREFIX + "***@" + url.rsplit("@", 1)[1]
    return ValueError(f"redis_connect: bad Redis Cluster URL {shown!r}: {why}; expected "
                      f"{_PREFIX}[user:password@]host:port[,host:port...]")


def parse_cluster_url(url: str) -> ClusterAddress:
    """Seeds and credentials of a ``redis+cluster://`` URL; a clear ``ValueError`` otherwise.

    >>> parse_cluster_url("redis+cluster://u:p%40ss@h1:1,h2:2/")
    ClusterAddress(seeds=(('h1', 1), ('h2', 2)), username='u', password='p@ss')
    >>> parse_cluster_url("redis+cluster://h1:7000/3")
    Traceback (most recent call last):
    ...
    ValueError: redis_connect: bad Redis Cluster URL 'redis+cluster://h1:7000/3': database 3 \
requested, but a Redis Cluster has only database 0; expected \
redis+cluster://[user:password@]host:port[,host:port...]
    >>> parse_cluster_url("redis+cluster://h1")
    Traceback (most recent call last):
    ...
    ValueError: redis_connect: bad Redis Cluster URL 'redis+cluster://h1': seed 'h1' has no \
port; expected redis+cluster://[user:password@]host:port[,host:port...]
    """
    if not is_cluster_url(url):
        raise _url_error(url, f"the scheme is not {CLUSTER_SCHEME}")
    rest = url[len(_PREFIX):]
    if "?" in rest or "#" in rest:
        raise _url_error(url, "query parameters are not supported (pass client options "
                              "as keyword arguments)")
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise _url_error(url, f"database {path} requested, but a Redis Cluster has only "
                              "database 0")
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, sep, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if sep else None
    seeds = tuple(_seed(url, part) for part in netloc.split(","))
    return ClusterAddress(seeds, username, password)


def _seed(url: str, part: str) -> tuple[str, int]:
    host, sep, port = part.strip().rpartition(":")
    if not part.strip():
        raise _url_error(url, "empty seed node")
    if not sep or not host:
        raise _url_error(url, f"seed {part.strip()!r} has no port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise _url_error(url, f"seed {part.strip()!r} has port {port!r}, expected 1..65535")
    return host.strip("[]"), int(port)


def cluster_seeds(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` seed nodes of a ``redis+cluster://`` URL."""
    return list(parse_cluster_url(url).seeds)


def cluster_url(seeds: Sequence[tuple[str, int]], password: str | None = None) -> str:
    """The ``redis+cluster://`` URL of these seed nodes (inverse of :func:`cluster_seeds`)."""
    if not seeds:
        raise ValueError("redis_connect.cluster_url: no seed nodes given")
    auth = f":{password}@" if password else ""
    return _PREFIX + auth + ",".join(f"{h}:{p}" for h, p in seeds)


def _credentials(addr: ClusterAddress) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if addr.username is not None:
        out["username"] = addr.username
    if addr.password is not None:
        out["password"] = addr.password
    return out


def sync_client(url: str, **kw: Any) -> SyncClient:
    """A blocking client: ``redis.cluster.RedisCluster`` for a cluster URL, else
    ``redis.Redis.from_url(url, **kw)``."""
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **kw)
    addr = parse_cluster_url(url)
    nodes = [synccluster.ClusterNode(h, p) for h, p in addr.seeds]  # type: ignore[no-untyped-call]
    return synccluster.RedisCluster(startup_nodes=nodes, **_credentials(addr), **kw)


def async_client(url: str, **kw: Any) -> AsyncClient:
    """An asyncio client: ``redis.asyncio.cluster.RedisCluster`` for a cluster URL, else
    ``redis.asyncio.Redis.from_url(url, **kw)``."""
    if not is_cluster_url(url):
        return aioredis.Redis.from_url(url, **kw)
    addr = parse_cluster_url(url)
    nodes = [aiocluster.ClusterNode(h, p) for h, p in addr.seeds]
    return aiocluster.RedisCluster(startup_nodes=nodes, **_credentials(addr), **kw)


def mget(client: SyncClient, keys: Sequence[str]) -> list[bytes | None]:
    """The values of ``keys`` in order (``None`` where absent): one MGET on one Redis, one per
    slot (grouped per node) on a cluster, where a single MGET must stay within one slot."""
    if not keys:
        return []
    if isinstance(client, synccluster.RedisCluster):
        return cast(list[bytes | None], client.mget_nonatomic(list(keys)))
    return cast(list[bytes | None], client.mget(keys))
