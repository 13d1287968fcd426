"""The JVM writer (``RedisUpdateSink``: ``UpdateBatch`` + ``RedisApply``) writes the Redis state
the Python loader writes (``stream.loader.apply_batch``) for the same update records, batch by
batch: the same keys and envelopes, TTLs, item-vector changelog, freshness stamp, and the same
counts of applied and malformed records. Both run against one real Redis, in two databases."""

from __future__ import annotations

import random
import subprocess
from typing import Any

import orjson
import pytest
import redis

from infra.paths import java_binary
from state import keys
from state.records import Update
from state.redis_connect import sync_client
from state.redis_store import RedisStore
from stream import jvm
from stream.loader import LoaderStats, apply_batch
from stream.reference import ReferenceRunner

pytestmark = pytest.mark.integration
PY_DB, JVM_DB = 12, 13
BATCH = 700  # records per flush on both sides (not a multiple of the 500-key script chunk)


def storefront_updates(n_events: int, seed: int) -> list[Update]:
    """Real views: a small synthetic storefront through the pure operators, emitted often."""
    from recs.synthetic import Storefront
    from schemas.events import ItemUpsert

    shop = Storefront(seed=seed, n_items=200, n_users=300)
    runner = ReferenceRunner()
    out: list[Update] = []
    for n, rec in enumerate(shop.stream(n_events)):
        if isinstance(rec, ItemUpsert):
            runner.on_item(rec)
        else:
            runner.on_event(rec)
        if n % 50 == 0:
            out += runner.pending_updates()
            runner.flush()
    return out + runner.pending_updates()


def edge_records(rng: random.Random) -> list[bytes]:
    """What the storefront does not make: tombstones, vectors (changelog), user vectors (TTL),
    ties, older versions after newer ones, unicode, floats, fields in another order, garbage."""
    item_vec = keys.key_for(keys.KIND_ITEMVEC, "i-vec")
    user_vec = keys.key_for(keys.KIND_USERVEC, "u-vec")
    sess = keys.session_key("u-ü")
    recs: list[bytes] = [
        Update(item_vec, 5, 1_000, {"v": [0.25, -1e-05, 3.5e300], "b": 0.1}).to_wire(),
        Update(item_vec, 3, 900, {"v": [9.0], "b": 0.0}).to_wire(),     # older: not written
        Update(user_vec, 7, 1_100, {"v": [1.0, 2.0]}).to_wire(),
        Update(keys.key_for(keys.KIND_ITEM, "gone"), 4, 800, None).to_wire(),  # tombstone
        Update(keys.key_for(keys.KIND_ITEMVEC, "gone"), 6, 800, None).to_wire(),
        # the same fields in another order (not the fast path: parsed whole)
        orjson.dumps({"d": {"x": 1}, "t": 1_300, "v": 2, "k": keys.key_for(keys.KIND_ITEM, "o")}),
        b"not json", b'{"k": "recs:v1:item:x", "v": "soon", "t": 1, "d": 1}',
        b'{"v": 1, "t": 1, "d": 1}', b"[1, 2]",
    ]
    rng.shuffle(recs)
    # a tie (the same version twice in one flush): the later one wins
    return [*recs, Update(sess, 10, 1_200, {"items": ["ä", "✓"], "n": 1}).to_wire(),
            Update(sess, 10, 1_200, {"items": ["tie"], "n": 2}).to_wire()]


def python_side(url: str, batches: list[list[bytes]]) -> LoaderStats:
    client = redis.Redis.from_url(url)
    client.flushdb()
    store = RedisStore(client)
    stats = LoaderStats()
    for batch in batches:
        apply_batch(store, batch, stats)
    client.close()
    return stats


def jvm_side(url: str, records: list[bytes]) -> dict[str, Any]:
    redis.Redis.from_url(url).flushdb()
    proc = subprocess.run(
        [java_binary(), "-cp", jvm.tool_classpath(), "recs.stream.WriterMain",
         "--redis-url", url, "--batch", str(BATCH), "--session-ttl-s", str(30 * 86_400)],
        input=b"\n".join(records) + b"\n", capture_output=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return dict(orjson.loads(proc.stdout.splitlines()[-1]))


def assert_same_state(got: dict[str, Any], want: dict[str, Any], *, ttl_slack_s: int,
                      same_bytes_but: str | None = None) -> None:
    """Two :func:`dump` results hold the same keys, values (as JSON), expiry and TTLs within
    ``ttl_slack_s`` (TTLs count from each write); with ``same_bytes_but`` every value other
    than that key's is also equal byte for byte."""
    assert sorted(got) == sorted(want)
    assert len(want) > 500
    for key, value in want.items():
        if key in (keys.ITEMVEC_LOG_KEY, keys.FRESHNESS_KEY):
            assert got[key] == value, key
            continue
        (raw, expires, ttl), (got_raw, got_expires, got_ttl) = value, got[key]
        assert orjson.loads(got_raw) == orjson.loads(raw), key
        if same_bytes_but is not None and key != same_bytes_but:
            assert got_raw == raw, key
        assert got_expires == expires and abs(got_ttl - ttl) <= ttl_slack_s, (key, ttl, got_ttl)


def dump(url: str) -> dict[str, Any]:
    """Every key's value (with its TTL), sorted set or hash; one Redis or a cluster's URL."""
    client = sync_client(url)
    out: dict[str, Any] = {}
    for key in sorted(client.scan_iter(count=1000)):
        kind = client.type(key)
        if kind == b"string":
            ttl = client.ttl(key)
            out[key.decode()] = (client.get(key), ttl > 0, ttl)
        elif kind == b"zset":
            out[key.decode()] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"hash":
            out[key.decode()] = client.hgetall(key)
        else:
            raise AssertionError(f"unexpected {kind!r} at {key!r}")
    client.close()
    return out


def test_the_jvm_writer_writes_what_the_loader_writes(redis_server: Any) -> None:
    rng = random.Random(7)
    records = [u.to_wire() for u in storefront_updates(3_000, seed=3)]
    # the edge cases land in different flushes than their partners, and a replayed tail (a
    # restore re-sends what followed the last checkpoint) rewrites nothing newer
    *edges, tie_first, tie_second = edge_records(rng)
    records = rng.sample(records + edges, len(records) + len(edges))
    records += [tie_first, tie_second, *records[-500:]]
    batches = [records[i:i + BATCH] for i in range(0, len(records), BATCH)]
    py_url, jvm_url = redis_server.url_for(PY_DB), redis_server.url_for(JVM_DB)

    stats = python_side(py_url, batches)
    result = jvm_side(jvm_url, records)

    assert result["records"] == len(records)
    assert (result["malformed"], result["applied"]) == (stats.malformed, stats.applied)
    assert stats.malformed == 4
    py, jv = dump(py_url), dump(jvm_url)
    # orjson's own bytes for item "o" are passed through; every other value byte for byte
    assert_same_state(jv, py, ttl_slack_s=5,
                      same_bytes_but=keys.key_for(keys.KIND_ITEM, "o"))
    # the cases the edge records exist for
    assert orjson.loads(py[keys.key_for(keys.KIND_ITEMVEC, "i-vec")][0])["v"] == 5
    assert orjson.loads(py[keys.session_key("u-ü")][0])["d"]["n"] == 2
    assert orjson.loads(py[keys.key_for(keys.KIND_ITEM, "gone")][0])["d"] is None
    assert py[keys.key_for(keys.KIND_ITEM, "gone")][1]  # tombstones expire
    assert {m for m, _ in py[keys.ITEMVEC_LOG_KEY]} >= {b"i-vec", b"gone"}


@pytest.mark.parametrize(("url", "message"), [
    ("redis+cluster://127.0.0.1:7000/2", "database 2 requested"),
    ("redis+cluster://127.0.0.1", "seed '127.0.0.1' has no port"),
])
def test_the_jvm_writer_refuses_a_bad_cluster_url_naming_it(url: str, message: str) -> None:
    """RedisConnect.java parses redis+cluster:// URLs as state/redis_connect.py does."""
    proc = subprocess.run(
        [java_binary(), "-cp", jvm.tool_classpath(), "recs.stream.WriterMain", "--redis-url", url],
        input=b"", capture_output=True, timeout=60, check=False)
    err = proc.stderr.decode()
    assert proc.returncode != 0
    assert f"bad Redis Cluster URL '{url}'" in err and message in err, err[-2000:]
