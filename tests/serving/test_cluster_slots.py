"""The cluster reader's pure parts, no server: slot hashing against redis-py's ``key_slot``,
the ``CLUSTER SLOTS`` map, grouping a read's keys per slot and putting the replies back in order,
redirection replies, and what the server's batching does with a read only partly answered."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot as redis_py_key_slot

from serving.cluster_slots import (
    SLOTS,
    SlotMap,
    group_by_slot,
    key_slot,
    parse_slots,
    redirect_of,
)
from serving.fetch import Fetcher, PartialRead
from serving.redis_client import RedisReplyError
from state.keys import bought_key, item_key, session_key, similar_key, trending_key


@given(st.text(max_size=40))
def test_key_slot_is_redis_pys_for_any_text(key: str) -> None:
    assert key_slot(key) == redis_py_key_slot(key.encode())


@given(st.text(alphabet="ab{}:", max_size=12))
def test_key_slot_follows_hash_tags_as_redis_does(key: str) -> None:
    assert key_slot(key) == redis_py_key_slot(key.encode())
    assert list(group_by_slot([key])) == [key_slot(key)]


def test_the_engines_keys_spread_over_slots_as_redis_places_them() -> None:
    keys = [f(str(n)) for n in range(200) for f in (session_key, item_key, similar_key,
                                                    bought_key)] + [trending_key()]
    assert [key_slot(k) for k in keys] == [redis_py_key_slot(k.encode()) for k in keys]
    # no hash tags: one request's keys land on many slots (so the reader groups per node)
    assert len({key_slot(k) for k in keys}) > 700


def test_grouping_keeps_every_position_and_the_order_comes_back() -> None:
    rnd = random.Random(3)
    keys = [rnd.choice([session_key, item_key, similar_key])(str(rnd.randrange(50)))
            for _ in range(300)]
    groups = group_by_slot(keys)
    assert sorted(n for at in groups.values() for n in at) == list(range(len(keys)))
    for slot, at in groups.items():
        assert {key_slot(keys[n]) for n in at} == {slot}
        assert at == sorted(at)
    # what the reader does with the per-slot replies: every key's value back at its place
    out: list[str | None] = [None] * len(keys)
    for at in groups.values():
        for n, value in zip(at, [f"value of {keys[n]}" for n in at], strict=True):
            out[n] = value
    assert out == [f"value of {k}" for k in keys]


def test_slot_map_from_cluster_slots() -> None:
    reply = [
        [0, 5460, [b"127.0.0.1", 7000, b"id0"], [b"127.0.0.1", 7003, b"id3"]],
        [5461, 10922, [b"127.0.0.1", 7001, b"id1"], [b"127.0.0.1", 7004, b"id4"]],
        [10923, 16000, [b"", 7002, b"id2"]],  # an empty host: the node that answered
        [16001, 16383, [b"127.0.0.1", 7000, b"id0"]],  # a master with two ranges
    ]
    smap = parse_slots(reply, ("10.0.0.9", 7002))
    assert smap.masters == (("127.0.0.1", 7000), ("127.0.0.1", 7001), ("10.0.0.9", 7002))
    assert smap.replicas == (("127.0.0.1", 7003), ("127.0.0.1", 7004))
    assert [smap.owner(s) for s in (0, 5460, 5461, 10923, 16000, 16001, 16383)] == [
        ("127.0.0.1", 7000), ("127.0.0.1", 7000), ("127.0.0.1", 7001), ("10.0.0.9", 7002),
        ("10.0.0.9", 7002), ("127.0.0.1", 7000), ("127.0.0.1", 7000)]
    assert len(smap.owners) == SLOTS


def test_slots_nobody_serves_have_no_owner() -> None:
    smap = parse_slots([[0, 99, [b"h", 1, b"a"]]], ("h", 1))
    assert smap.owner(99) == ("h", 1)
    assert smap.owner(100) is None and smap.owner(SLOTS - 1) is None
    assert parse_slots([], ("h", 1)) == SlotMap((-1,) * SLOTS, (), ())


@pytest.mark.parametrize("entry", [[0, 99], [0, SLOTS, [b"h", 1]], [5, 4, [b"h", 1]],
                                   [0, 9, [b"h", b"port"]], ["x", 9, [b"h", 1]]])
def test_a_malformed_slots_entry_is_named(entry: list[object]) -> None:
    with pytest.raises(ValueError, match="CLUSTER SLOTS entry must be") as err:
        parse_slots([entry], ("h", 1))
    assert repr(entry)[:10] in str(err.value)


def test_redirections_are_read_from_the_reply() -> None:
    # the text the reader's error keeps of Redis's reply (RedisReplyError.reply)
    reply = RedisReplyError("redis: GET failed: MOVED 3999 127.0.0.1:6381",
                            reply="MOVED 3999 127.0.0.1:6381").reply
    assert redirect_of(reply) == ("MOVED", 3999, ("127.0.0.1", 6381))
    assert redirect_of("ASK 12 10.1.2.3:7000") == ("ASK", 12, ("10.1.2.3", 7000))
    assert redirect_of("CLUSTERDOWN The cluster is down") is None
    assert redirect_of("WRONGTYPE Operation against a key") is None


def test_a_partial_read_answers_the_requests_it_has_every_key_for() -> None:
    # a cluster with a master down: the batch's requests whose keys all came back get them,
    # the others get the error (their degraded path)
    class HalfDown:
        async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
            raise PartialRead("a master is down", {k: k.encode() for k in keys if "up" in k})

    async def go() -> list[object]:
        fetch = Fetcher(HalfDown(), budget_s=1.0)  # type: ignore[arg-type]
        asked = [fetch._batched(["up:1", "up:2"]), fetch._batched(["up:1", "down:1"]),
                 fetch._batched(["up:3"])]
        return list(await asyncio.gather(*asked, return_exceptions=True))

    whole, broken, alone = asyncio.run(go())
    assert whole == [b"up:1", b"up:2"] and alone == [b"up:3"]
    assert isinstance(broken, PartialRead) and isinstance(broken, ConnectionError)
