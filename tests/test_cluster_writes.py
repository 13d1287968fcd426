"""The writers' retry on a Redis Cluster failover (state/cluster_writes.py), with an injected
clock and sleep: which errors are retried, the backoff, the deadline."""

from __future__ import annotations

import pytest
import redis
from redis.exceptions import (
    ClusterDownError,
    MovedError,
    NoScriptError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from state.cluster_writes import Backoff, group_by_slot, is_transient, retrying


@pytest.mark.parametrize("exc", [
    redis.ConnectionError("Connection refused"), redis.TimeoutError("timed out"),
    ClusterDownError("The cluster is down"), MovedError("3999 127.0.0.1:7001"),
    TryAgainError("Multiple keys request during rehashing"),
    ReadOnlyError("You can't write against a read only replica."),
    NoScriptError("No matching script."),
    ResponseError("Command # 2 (EVALSHA abc 1 k) of pipeline caused error: CLUSTERDOWN down"),
    ResponseError("LOADING Redis is loading the dataset in memory"),
])
def test_failover_errors_are_transient(exc: Exception) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", [
    ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    ResponseError("Command # 1 (EVALSHA abc 1 k) of pipeline caused error: ERR bad script"),
    ValueError("not redis"),
])
def test_other_errors_are_not(exc: Exception) -> None:
    assert not is_transient(exc)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def test_retries_with_growing_backoff_until_the_write_lands() -> None:
    t = FakeTime()
    outcomes: list[Exception | None] = [redis.ConnectionError("refused")] * 4 + [None]
    seen: list[BaseException] = []

    def attempt() -> int:
        err = outcomes.pop(0)
        if err is not None:
            raise err
        return 7

    got = retrying("apply", attempt, backoff=Backoff(first_s=0.1, max_s=0.4, deadline_s=10),
                   on_retry=seen.append, sleep=t.sleep, clock=t.clock)
    assert got == 7 and len(seen) == 4
    # jittered into [delay/2, delay]: 0.1, 0.2, 0.4, 0.4 (capped)
    for slept, delay in zip(t.sleeps, [0.1, 0.2, 0.4, 0.4], strict=True):
        assert delay / 2 <= slept <= delay


def test_gives_up_at_the_deadline_with_the_last_error() -> None:
    t = FakeTime()

    def attempt() -> int:
        raise ClusterDownError("The cluster is down")

    with pytest.raises(ClusterDownError):
        retrying("apply", attempt, backoff=Backoff(first_s=0.5, max_s=1.0, deadline_s=5),
                 sleep=t.sleep, clock=t.clock)
    assert t.now <= 5.0 and len(t.sleeps) >= 4


def test_a_real_error_is_not_retried() -> None:
    t = FakeTime()
    calls = []

    def attempt() -> int:
        calls.append(1)
        raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")

    with pytest.raises(ResponseError, match="WRONGTYPE"):
        retrying("apply", attempt, sleep=t.sleep, clock=t.clock)
    assert calls == [1] and t.sleeps == []


def test_group_by_slot_keeps_every_index_once() -> None:
    keys = [f"recs:v1:session:u{i}" for i in range(500)] + ["a{t}", "b{t}"]
    groups = group_by_slot(keys)
    assert sorted(i for idx in groups.values() for i in idx) == list(range(len(keys)))
    assert any(idx[-2:] == [500, 501] for idx in groups.values())  # one hash tag, one slot
