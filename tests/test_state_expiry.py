"""Event-time expiry of the JVM job's keyed state (DedupFunction.java, SessionFunction.java):
users who go idle longer than the session TTL (and the dedup window) have their state cleared
once the watermark passes their newest event + the TTL + the out-of-orderness bound, and the
Redis state stays exactly the reference runner's (stream/reference.py, which forgets lazily).

The log: busy users active throughout; users active in the first minutes only ("gone"); users
who come back after a long idle spell ("back"), published only once the job has cleared their
state, so they meet a cleared state for certain; users who come back around the TTL ("edge"),
some just before it (the state must still count), some just after it (forgotten either way).
The log is published at a steady rate while the job runs: a backlog read from four partitions at
once is read minutes late (8,090 of 12,531 events behind the watermark, measured), beyond the
10 minutes of lateness (``RECS_STATE_EXPIRY_LATENESS_MS``) this test allows. Published, the log
runs about 225 times faster than its event time, so those 10 minutes are under 3 s of the job
falling behind on one partition: with 2 minutes (0.27 s at 3,000 events/s) a fresh-clone run
on a loaded machine failed both backends (busy users' sessions cleared, "edge" users' returns
late), while the same test alone passed.
The keyed-state counts come from the job's own metrics (``recs_stream_state_keys_created_total``
and ``recs_stream_state_keys_expired_total``, per operator) through Flink's Prometheus reporter.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any
from urllib.error import URLError

import pytest
import redis

from recs import engine
from recs.settings import Settings
from schemas.events import Interaction
from state.redis_store import RedisStore
from stream.job import JVM_WRITER, engine_config, latest_checkpoint
from stream.reference import ReferenceRunner
from stream.topology import JVM
from tests import streamkit
from tests.streamkit import FLINK_OPERATOR, MINUTE, T0, Log, metric_value, scrape

pytestmark = pytest.mark.integration

TTL_MS = 10 * MINUTE    # the session TTL; the dedup window is 10 minutes as well (its default)
GAP_MS = 5 * MINUTE
GRACE_MS = 2_000        # the job's bounded out-of-orderness (Settings().out_of_orderness_ms)
LATENESS_MS = 10 * MINUTE  # RECS_STATE_EXPIRY_LATENESS_MS: the state outlives TTL + 10 min + 2 s
SPLIT = T0 + 40 * MINUTE    # the "back" users' return, published once their state is cleared
END = T0 + 70 * MINUTE
RATE = 1_500.0          # events/s published while the job runs (a backlog would be read late)
N_BUSY, N_GONE, N_BACK, N_EDGE = 40, 120, 100, 60
SETTLE_MS = 70_000      # the newest events of the log are this close to its end (see _live)


def _event(rng: random.Random, n: int, user: str, ts: int) -> Interaction:
    sid = f"{user}-s{(ts - T0) // GAP_MS}"
    if rng.random() < 0.1:
        shown = tuple(f"i{rng.randrange(200)}" for _ in range(4))
        return Interaction(f"e{n}", "impression", user, sid, ts, item_ids=shown)
    etype = rng.choices(["view", "click", "add_to_cart", "purchase"], [70, 12, 10, 8])[0]
    item = f"i{int(rng.paretovariate(1.2)) % 200}"
    return Interaction(f"e{n}", etype, user, sid, ts, item_id=item)


def idle_log(seed: int = 11) -> Log:
    """Events in arrival order, each at most 1.5 s out of order (below GRACE_MS)."""
    rng = random.Random(seed)
    plan: list[tuple[int, str]] = []   # (time, user)
    t = T0
    while t < END:   # the busy users keep the watermark moving to the end
        plan.append((t, f"busy{rng.randrange(N_BUSY)}"))
        t += rng.randrange(50, 250)
    last: dict[str, int] = {}
    for group, n in (("gone", N_GONE), ("back", N_BACK), ("edge", N_EDGE)):
        for u in range(n):
            user = f"{group}{u}"
            times = sorted(T0 + rng.randrange(0, 3 * MINUTE) for _ in range(rng.randint(2, 6)))
            plan += [(ts, user) for ts in times]
            last[user] = times[-1]
    for u in range(N_BACK):  # back after 37 minutes or more: long past their expiry
        start = SPLIT + rng.randrange(0, 3 * MINUTE)
        plan += [(start + k * 7_000, f"back{u}") for k in range(rng.randint(1, 4))]
    for u in range(N_EDGE):  # around the TTL: half just before it, half just after
        offset = -rng.randrange(0, 3_000) if u % 2 == 0 else rng.randrange(1, 3_000)
        start = last[f"edge{u}"] + TTL_MS + offset
        plan += [(start, f"edge{u}"), (start + 5_000, f"edge{u}")]
    plan.sort()
    events = [_event(rng, n, user, ts - rng.randrange(0, 1_500))  # out of order by up to 1.5 s
              for n, (ts, user) in enumerate(plan)]
    return Log(streamkit.generated_log(0).items, events)


def _live(log: Log) -> set[str]:
    """The users whose state must outlive the end of the log: newest event within TTL_MS +
    LATENESS_MS + 2 * GRACE_MS of the log's end. The log leaves no user's newest event within
    SETTLE_MS of that boundary, so the watermark's exact final position (a little behind the
    newest event of its slowest partition) does not matter."""
    newest: dict[str, int] = {}
    for e in log.events:
        newest[e.user_id] = max(newest.get(e.user_id, 0), e.ts)
    end = max(newest.values())
    boundary = end - TTL_MS - LATENESS_MS - 2 * GRACE_MS
    assert not [u for u, ts in newest.items() if boundary - SETTLE_MS < ts <= boundary + SETTLE_MS]
    return {u for u, ts in newest.items() if ts > boundary}


def _counts(settings: Settings) -> dict[str, tuple[int, int]]:
    """(keys created, keys expired) per operator over its subtasks, from Flink's reporter; the
    operators not running yet are left out."""
    flink = scrape(settings.flink_metrics_port)
    counts = {}
    for op in ("sessions", "dedup"):
        made = metric_value(flink, FLINK_OPERATOR + "recs_stream_state_keys_created_total",
                            operator=op)
        gone = metric_value(flink, FLINK_OPERATOR + "recs_stream_state_keys_expired_total",
                            operator=op)
        if made is not None and gone is not None:
            counts[op] = (int(made), int(gone))
    return counts


def _watermarks(settings: Settings) -> dict[str, Any]:
    """Each operator's input watermark (event time, minutes after T0), to explain a failure."""
    samples = scrape(settings.flink_metrics_port)
    late = {op: metric_value(samples, FLINK_OPERATOR + "recs_stream_late_events_total",
                             operator=op) for op in ("dedup", "sessions")}
    return {"late": late, **{dict(ls).get("operator_name", n): (v - T0) / MINUTE
                             for (n, ls), v in samples.items()
                             if n.endswith("currentInputWatermark") and v > T0}}


def _wait(settings: Settings, job: engine.EngineProcess, live: int, expired: int,
          timeout_s: float) -> dict[str, tuple[int, int]]:
    """Until each operator has cleared at least ``expired`` keys and holds ``live`` (created -
    expired); the last (created, expired) per operator."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert job.alive(), job.tail()
        try:
            counts = _counts(settings)
        except URLError:  # the job's metrics endpoint is not up yet
            counts = {}
        if len(counts) == 2 and all(c[1] >= expired and c[0] - c[1] == live
                                    for c in counts.values()):
            return counts
        assert time.monotonic() < deadline, (counts, live, expired, _watermarks(settings))
        time.sleep(1)


def _settings(kafka: Any, redis_store: RedisStore, tmp_path: Path, **extra: Any) -> Settings:
    client = redis_store.client
    assert isinstance(client, redis.Redis)
    url = client.connection_pool.connection_kwargs
    return streamkit.settings_for(
        kafka.bootstrap, f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}", tmp_path,
        stream_runtime=JVM, writer=JVM_WRITER, models=False, session_ttl_ms=TTL_MS,
        session_gap_ms=GAP_MS, out_of_orderness_ms=GRACE_MS,
        state_expiry_lateness_ms=LATENESS_MS, **extra)


def _until_equal(job: engine.EngineProcess, ref: ReferenceRunner, redis_store: RedisStore,
                 log: Log, timeout_s: float) -> None:
    """Until the job has written the log's newest event and Redis equals the reference."""
    final_ts = max(e.ts for e in log.events)
    deadline = time.monotonic() + timeout_s
    diffs = ["not started"]
    while diffs and time.monotonic() < deadline:
        assert job.alive(), job.tail()
        time.sleep(2)
        if redis_store.freshness().get("stream", 0) == final_ts:
            diffs = streamkit.differences(ref, redis_store, models=False)
    assert diffs == [], \
        f"{len(diffs)} differences ({streamkit.diagnosis(ref, redis_store, diffs)}), " \
        f"first: {diffs[:10]}"


@pytest.mark.parametrize("backend", ["hashmap", "rocksdb"])
def test_idle_users_state_expires_and_the_redis_state_stays_the_references(
        backend: str, kafka: Any, redis_store: RedisStore, tmp_path: Path) -> None:
    """On the heap backend without checkpoints, and on RocksDB with incremental checkpoints
    every second (``RECS_STATE_BACKEND=rocksdb``): timers and state live in RocksDB then."""
    settings = _settings(kafka, redis_store, tmp_path, state_backend=backend,
                         checkpoint_interval_ms=1_000)
    log = idle_log()
    ref = ReferenceRunner(engine_config(settings))
    ref.run([*log.items, *log.events])
    users = {e.user_id for e in log.events}
    split = next(n for n, e in enumerate(log.events)  # the first return of a "back" user
                 if e.user_id.startswith("back") and e.ts > SPLIT - MINUTE)
    first = Log(log.items, log.events[:split])
    assert {e.user_id for e in log.events[split:]} & {f"back{u}" for u in range(N_BACK)}

    checkpoints = tmp_path / "checkpoints" if backend == "rocksdb" else None
    job = engine.start_job(settings, tmp_path / "logs", checkpoint_dir=checkpoints)
    try:
        _wait(settings, job, 0, 0, timeout_s=120)  # running: its metrics are up
        streamkit.publish(settings, log, stop=split, rate=RATE)
        # before the "back" users return, all but the busy users' state has expired
        assert _live(first) == {f"busy{u}" for u in range(N_BUSY)}
        idle = len(users) - N_BUSY
        before = _wait(settings, job, N_BUSY, idle, timeout_s=60)
        streamkit.publish(settings, log, start=split, rate=RATE)
        _until_equal(job, ref, redis_store, log, timeout_s=180)
        assert _live(log) == {f"busy{u}" for u in range(N_BUSY)}
        after = _wait(settings, job, N_BUSY, idle + N_BACK, timeout_s=120)
    finally:
        job.stop()
    # every user got a state once; "edge" users who came back after their timer had fired got
    # one again (how many depends on the watermark's pace: at most those back after the TTL);
    # then every "back" user, who met a cleared state
    if checkpoints is not None:  # incremental: RocksDB's files shared between checkpoints
        assert latest_checkpoint(checkpoints) is not None
        assert any(f.is_file() for f in checkpoints.glob("*/shared/**/*")), "not incremental"
    for op in ("sessions", "dedup"):
        assert len(users) <= before[op][0] <= len(users) + N_EDGE // 2, (op, before[op])
        assert after[op][0] - before[op][0] == N_BACK, (op, before[op], after[op])
    print(f"keyed state (created, expired) before the return: {before}; at the end: {after}")


def _late(settings: Settings) -> dict[str, int]:
    """Events behind the watermark, per front stage (recs_stream_late_events_total)."""
    samples = scrape(settings.flink_metrics_port)
    return {op: int(metric_value(samples, FLINK_OPERATOR + "recs_stream_late_events_total",
                                 operator=op) or 0) for op in ("dedup", "sessions")}


def test_a_backlog_of_four_partitions_has_no_late_event(
        kafka: Any, redis_store: RedisStore, tmp_path: Path) -> None:
    """The whole log waits in Kafka (4 partitions) before the job starts: the source reads the
    partitions unevenly, but each keeps its own watermark (EventTimes.java), so no event is
    behind the watermark by more than its own partition's disorder (1.5 s, under the 2 s
    bound): none is late, the state of every idle user expires all the same, and the Redis
    state is the reference runner's. With one watermark assigned after parse, the same
    backlog had most of its events late (docs/stream.md)."""
    settings = _settings(kafka, redis_store, tmp_path)
    log = idle_log(seed=12)
    ref = ReferenceRunner(engine_config(settings))
    ref.run([*log.items, *log.events])
    streamkit.publish(settings, log)
    job = engine.start_job(settings, tmp_path / "logs")
    try:
        _until_equal(job, ref, redis_store, log, timeout_s=240)
        idle = len({e.user_id for e in log.events}) - N_BUSY
        counts = _wait(settings, job, N_BUSY, idle, timeout_s=120)
        late = _late(settings)
    finally:
        job.stop()
    assert late == {"dedup": 0, "sessions": 0}, (late, counts)
    print(f"backlog of {len(log.events)} events: late {late}; keyed state {counts}")

