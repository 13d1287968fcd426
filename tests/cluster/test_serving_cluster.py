"""The server on a Redis Cluster (:mod:`serving.cluster_reader`), against the real local cluster.

* the reader returns what the cluster holds, in key order, for keys spread over every master;
  it follows ``ASK`` while a slot migrates and ``MOVED`` once it has moved;
* the server on the cluster answers exactly what it answers on one Redis holding the same state
  (the answer-equality replay of ``tests/serving/test_answer_equality.py``), as that state
  changes round after round;
* with the second similar-items list on, the homepage reads it in the similar lists' round
  trip through the cluster reader and serves the learned blend's candidates on it;
* the real server (``recs serve`` on a ``redis+cluster://`` URL) under a few hundred requests a
  second keeps answering 200 while a master is SIGKILLed: degraded at most until its replica
  is promoted, then full answers again, the same as before.

The state is written into one Redis through :class:`state.redis_store.RedisStore` (the writer's
conditional script) and copied key by key into the cluster (``DUMP`` / ``RESTORE``, TTLs kept):
both then hold the same bytes, whatever writes them.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.cluster as synccluster

from infra.redis_cluster import RedisCluster
from serving.app import App
from serving.cluster_reader import ClusterReader
from serving.cluster_slots import key_slot
from state.keys import item_key, session_key
from state.redis_connect import SyncClient, sync_client
from state.redis_store import RedisStore
from tests.serving.kit import fill, server_auth, serving_http
from tests.serving.test_answer_equality import RULES, World, _app, _requests, replay
from tests.serving.test_similar_recent import check_served, published

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
EQUALITY_ROUNDS = 10  # 4,000 requests; the models change at round 8
URLS = ("/v1/users/u1/recommendations?k=4", "/v1/users/u1/session-recommendations?k=3",
        "/v1/trending?k=3", "/v1/items/i1/similar?k=3", "/v1/users/nobody/recommendations?k=4")
RATE = 300.0       # requests per second offered to the server, over ...
CONNECTIONS = 6    # ... this many keep-alive connections
SETTLE_S = 1.0     # after the failover: the reader's map refresh and the shared-list cache


def mirror(source: SyncClient, target: SyncClient) -> int:
    """Every key of ``source`` (its current database) copied into ``target``, TTLs kept; the
    count. Both sides pipelined (the cluster's pipeline groups the commands per node)."""
    keys = list(source.scan_iter(count=1000))
    read = source.pipeline(transaction=False)
    for key in keys:
        read.dump(key)
        read.pttl(key)
    found = read.execute()
    write = target.pipeline(transaction=False)
    copied = 0
    for key, dump, ttl in zip(keys, found[::2], found[1::2], strict=True):
        if dump is not None:  # else expired meanwhile
            write.restore(key, max(int(ttl), 0), dump, replace=True)
            copied += 1
    write.execute()
    return copied


@pytest.fixture
def cluster_client(redis_cluster_clean: RedisCluster) -> Iterator[synccluster.RedisCluster]:
    client = sync_client(redis_cluster_clean.url)
    assert isinstance(client, synccluster.RedisCluster)
    try:
        yield client
    finally:
        client.close()


def _node_id(cluster: RedisCluster, port: int) -> str:
    node = next(n for n in cluster.nodes if n.port == port)
    raw = node.call("CLUSTER", "MYID")
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def test_reads_across_every_master_come_back_in_key_order(
        redis_cluster_clean: RedisCluster, cluster_client: synccluster.RedisCluster) -> None:
    keys = [f(str(n)) for n in range(300) for f in (session_key, item_key)]
    for n, key in enumerate(keys[::2]):
        cluster_client.set(key, f"v{n}")
    cluster_client.hset("recs:v1:meta:freshness", mapping={"jvm": "17", "python": "12"})
    asked = [*keys, keys[0], "recs:v1:item:absent"]

    async def go() -> tuple[list[bytes | None], dict[str, int], bool, int]:
        reader = ClusterReader.from_url(redis_cluster_clean.url)
        try:
            found = await reader.get_raw_many(asked)
            assert reader.slot_map is not None
            return found, await reader.freshness(), await reader.ping(), \
                len(reader.slot_map.masters)
        finally:
            await reader.close()

    found, fresh, pong, masters = asyncio.run(go())
    expected = [f"v{n // 2}".encode() if n % 2 == 0 else None for n in range(len(keys))]
    assert found == [*expected, b"v0", None]
    assert fresh == {"jvm": 17, "python": 12}
    assert pong and masters == 3
    assert len({key_slot(k) for k in keys}) > 500  # the read spanned hundreds of slots


def test_a_migrating_slot_is_followed_by_ask_then_by_moved(
        redis_cluster_clean: RedisCluster, cluster_client: synccluster.RedisCluster) -> None:
    cluster = redis_cluster_clean
    key, other = session_key("migrating"), item_key("stays")
    cluster_client.set(key, b"moving value")
    cluster_client.set(other, b"still here")
    slot = key_slot(key)

    async def go() -> None:
        reader = ClusterReader.from_url(cluster.url)
        try:
            assert await reader.get_raw_many([key, other]) == [b"moving value", b"still here"]
            smap = reader.slot_map
            assert smap is not None
            source = smap.owner(slot)
            assert source is not None
            target = next(m for m in smap.masters if m != source)
            src_id, dst_id = _node_id(cluster, source[1]), _node_id(cluster, target[1])
            src = next(n for n in cluster.nodes if n.port == source[1])
            dst = next(n for n in cluster.nodes if n.port == target[1])
            # the migration as redis-cli --cluster reshard does it, one key
            dst.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            src.call("MIGRATE", target[0], target[1], "", 0, 5000, "KEYS", key)
            assert await reader.get_raw_many([other, key]) == [b"still here", b"moving value"]
            assert reader.redirects == 1  # ASK: answered by the target ...
            assert reader.slot_map is not None and reader.slot_map.owner(slot) == source
            for node in cluster.masters():  # ... which now owns the slot
                node.call("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
            assert await reader.get_raw_many([key]) == [b"moving value"]
            assert reader.redirects == 2  # MOVED: the map now names the target
            assert reader.slot_map is not None and reader.slot_map.owner(slot) == target
            assert await reader.get_raw_many([key]) == [b"moving value"]
            assert reader.redirects == 2
        finally:
            await reader.close()

    asyncio.run(go())


def test_the_cluster_answers_what_one_redis_answers(
        redis_server: Any, redis_store: RedisStore, redis_cluster_clean: RedisCluster,
        cluster_client: synccluster.RedisCluster, tmp_path: Path) -> None:
    world = World(redis_store)
    world.fill()
    copied = mirror(redis_store.client, cluster_client)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    rnd = random.Random(5)
    requests = _requests(rnd)
    single_url = redis_server.url_for(redis_store.db)

    async def go() -> tuple[int, list[str], App]:
        single = _app(single_url, rules, lambda: world.now, fast=True)
        clustered = _app(redis_cluster_clean.url, rules, lambda: world.now, fast=True)
        assert isinstance(clustered.handlers.reader, ClusterReader)
        return *await replay(world, (single, clustered), rnd, requests, rounds=EQUALITY_ROUNDS,
                             changed=lambda: mirror(redis_store.client, cluster_client)), \
            clustered

    asked, problems, clustered = asyncio.run(go())
    answers = clustered.handlers.answers
    print(f"{copied} keys; answers: {asked} asked, {answers.hits} from the cache, "
          f"{answers.stale} stale, {answers.misses} computed")
    assert asked == EQUALITY_ROUNDS * 400
    assert problems == []
    assert answers.misses > 1000 and answers.stale > 50  # computed from the cluster's values
    assert clustered.handlers.models.ranker_state == "warm"
    assert clustered.handlers.models.vectors > 0  # the models' source read the cluster too


class HttpConnection:
    """One keep-alive HTTP/1.1 connection, a request at a time (enough for a steady load)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.auth = server_auth()["Authorization"]
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n"
                     f"Authorization: {self.auth}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines
                      if line.lower().startswith("content-length:"))
        body = await reader.readexactly(length)
        return int(lines[0].split()[1]), orjson.loads(body)

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


Answer = tuple[float, str, int, bool, tuple[str, ...], float]  # start, url, status, degraded,
#                                                                items, seconds


async def steady_load(port: int, stop: asyncio.Event, log: list[Answer]) -> None:
    """:data:`RATE` requests a second over :data:`CONNECTIONS` connections until ``stop``."""
    async def one(n: int) -> None:
        conn, every = HttpConnection(port), CONNECTIONS / RATE
        nxt = time.monotonic() + n * every / CONNECTIONS
        try:
            for k in range(n, 1_000_000):
                await asyncio.sleep(max(0.0, nxt - time.monotonic()))
                if stop.is_set():
                    return
                url = URLS[k % len(URLS)]
                began = time.monotonic()
                status, doc = await conn.get(url)
                log.append((began, url, status, bool(doc.get("degraded")),
                            tuple(i["item_id"] for i in doc.get("items", ())),
                            time.monotonic() - began))
                nxt += every
        finally:
            conn.close()

    await asyncio.gather(*(one(n) for n in range(CONNECTIONS)))


def test_a_killed_master_costs_degraded_answers_during_the_failover_at_most(
        redis_store: RedisStore, redis_cluster_clean: RedisCluster,
        cluster_client: synccluster.RedisCluster, tmp_path: Path) -> None:
    cluster = redis_cluster_clean
    fill(redis_store)
    mirror(redis_store.client, cluster_client)
    cluster.wait_replicated()  # replication is asynchronous: kill once the replicas have it
    # the master that holds u1's session: every request for u1 reads it, uncached
    slot = key_slot(session_key("u1"))
    owner = next(r.port for r in cluster.topology()
                 if r.role == "master" and any(lo <= slot <= hi for lo, hi in r.slots))
    victim = [n.port for n in cluster.masters()].index(owner)
    marks: dict[str, float] = {}

    async def scenario(port: int) -> list[Answer]:
        log: list[Answer] = []
        stop = asyncio.Event()
        load = asyncio.ensure_future(steady_load(port, stop, log))
        try:
            await asyncio.sleep(1.5)
            marks["killed"] = time.monotonic()
            killed = await asyncio.to_thread(cluster.kill_master, victim)
            await asyncio.to_thread(cluster.wait_for_failover, killed, 30.0)
            marks["promoted"] = time.monotonic()
            await asyncio.sleep(SETTLE_S + 1.5)
        finally:
            stop.set()
            await load
        return log

    served = tmp_path / "serve.log"
    with serving_http(cluster.url, served, RECS_SERVE_CACHE_TTL_MS="200",
                      RECS_RATE_KEY_RPS="1e6", RECS_RATE_KEY_BURST="1e6") as port:
        log = asyncio.run(scenario(port))
    said = [line for line in served.read_text().splitlines() if "degraded" in line
            or "rror" in line][:8]  # the server's reasons, for a failure's message

    killed, promoted = marks["killed"], marks["promoted"]
    before = [a for a in log if a[0] + a[5] < killed]  # answered before the kill
    during = [a for a in log if killed <= a[0] < promoted]
    after = [a for a in log if a[0] >= promoted + SETTLE_S]
    secs = (log[-1][0] - log[0][0]) if log else 0.0
    last = max((a[0] for a in log if a[3]), default=killed)
    print(f"{len(log)} requests in {secs:.1f} s; failover {promoted - killed:.1f} s; "
          f"degraded during it {sum(a[3] for a in during)} of {len(during)}, the last "
          f"{last - promoted:+.2f} s after the promotion; "
          f"slowest {max(a[5] for a in log) * 1000:.0f} ms")
    assert len(log) > 0.7 * RATE * secs  # the load was steady
    assert {a[2] for a in log} == {200}  # never a 500, nor anything but a 200
    assert before and not any(a[3] for a in before), \
        ([(round(a[0] - log[0][0], 3), a[1]) for a in before if a[3]][:10], said)
    assert any(a[3] for a in during)  # the kill was felt: answered degraded, not failed
    # once the replica is promoted: full answers again, the same as before the kill
    assert len(after) > 0.5 * RATE and not any(a[3] for a in after), \
        ([a[:4] for a in after if a[3]][:5], said)
    first = {url: items for _, url, _, _, items, _ in before}
    assert {url: items for _, url, _, _, items, _ in after} == first
    assert all(first[url] for url in URLS)  # every answer had items to compare


def test_the_second_similar_lists_are_read_through_the_cluster_reader(
        redis_cluster_clean: RedisCluster) -> None:
    """The homepage with the second similar-items list on, reading a cluster the reference
    runner wrote with it on: the second lists come in the similar lists' round trip (one MGET
    split per node) and the candidates are the learned blend's on the same lists (held here by
    the in-memory runner)."""
    cluster_store = RedisStore(sync_client(redis_cluster_clean.url))
    _, users, now = published(cluster_store)
    memory, same_users, _ = published()
    assert users == same_users and len(users) >= 15
    check_served(memory.store.get_many, ClusterReader.from_url(redis_cluster_clean.url),
                 users[:15], now)
