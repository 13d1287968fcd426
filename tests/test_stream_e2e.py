"""The real stream path: Kafka -> PyFlink (local mini-cluster) -> recs.updates -> loader -> Redis.

- parity: a generated log (20k events, 4 partitions, malformed records mixed in) through the
  Flink job at parallelism 1 and 2, with the second similar-items list on (the other runs
  here have it off), gives the same Redis state as the reference runner, context
  trending lists (``trending:ctx:...``), sessions' ``shown`` lists, new-arrival lists
  (``trending:new:...``, with a recategorisation, a deletion and late corrections) and the
  items' ``first_seen_ms`` included, and the new-arrival lists equal the naive recompute;
- duplicates (JVM front): every event published twice gives the Redis state of publishing once;
- bad input: every malformed record is in the DLQ with a reason naming its field, every valid
  event is applied, the job finishes normally;
- restart: the job is killed mid-stream and restarted from its last checkpoint; the final Redis
  state equals the uninterrupted (reference) one: nothing lost, nothing counted twice;
- metrics (on the restarted job, to save a run): Flink's Prometheus reporter exports the
  project's operator counters, the loader exports freshness, and ``recs monitor`` (a process)
  exports checkpoints, operator counters and watermark lags read from Flink's REST API, and the
  consumer lag of the job's groups.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from operators.trending import daypart
from recs import engine
from recs.settings import Settings
from state import keys
from state.redis_store import RedisStore
from stream import loader
from stream.job import JVM_WRITER, LOADER_WRITER, engine_config, latest_checkpoint
from stream.topology import JVM, PYTHON
from tests import streamkit
from tests.strategies import assert_same_top_k, naive_first_seen, naive_new_arrivals
from tests.streamkit import metric_value as _value
from tests.streamkit import scrape as _scrape

pytestmark = pytest.mark.integration

N_EVENTS = 20_000
SIMILAR_RECENT_S = 3_600.0  # the second similar-items list's half-life where it is on


def _settings(kafka: Any, store: RedisStore, tmp_path: Path, **kw: Any) -> Settings:
    client = store.client
    assert isinstance(client, redis.Redis)  # these tests run on one Redis
    url = client.connection_pool.connection_kwargs
    redis_url = f"redis://{url['host']}:{url['port']}/{url.get('db', 0)}"
    return streamkit.settings_for(kafka.bootstrap, redis_url, tmp_path, **kw)


def _run_bounded(settings: Settings, tmp_path: Path, parallelism: int) -> None:
    """The job over what the topics hold (bounded), to its end; it must exit cleanly."""
    job = engine.start_job(settings, tmp_path / "logs", parallelism=parallelism, bounded=True)
    try:
        rc = job.wait(timeout=300)
    finally:
        job.stop()
    assert rc == 0, job.tail()


@pytest.fixture(scope="module")
def log() -> streamkit.Log:
    return streamkit.generated_log(N_EVENTS)


@pytest.fixture(scope="module")
def ref(log: streamkit.Log) -> Any:
    return streamkit.reference(log)


@pytest.fixture(scope="module")
def ref_recent(log: streamkit.Log) -> Any:
    """The reference with the second similar-items list on (RECS_SIMILAR_RECENT_HALF_LIFE_S)."""
    return streamkit.reference(log, engine_config(Settings(
        similar_recent_half_life_s=SIMILAR_RECENT_S)))


@pytest.mark.parametrize("runtime", [PYTHON, JVM])
@pytest.mark.parametrize("parallelism", [1, 2])
def test_flink_job_matches_reference_and_dead_letters_bad_input(
        parallelism: int, runtime: str, kafka: Any, redis_store: RedisStore, tmp_path: Path,
        log: streamkit.Log, ref_recent: Any) -> None:
    # the JVM front writes through the JVM writer (RedisUpdateSink), the Python one through
    # recs.updates and the loader: both writers, end to end, against the reference runner;
    # with the second similar-items list on (the other runs here have it off, the default)
    ref = ref_recent
    writer = JVM_WRITER if runtime == JVM else LOADER_WRITER
    settings = _settings(kafka, redis_store, tmp_path, stream_runtime=runtime, writer=writer,
                         similar_recent_half_life_s=SIMILAR_RECENT_S)
    bad = [raw for raw, _ in streamkit.MALFORMED]
    streamkit.publish(settings, log, bad)
    _run_bounded(settings, tmp_path, parallelism)
    if writer == LOADER_WRITER:
        stats = loader.run(settings, redis_store, idle_exit_s=4.0, max_seconds=120)
        assert stats.malformed == 0
    diffs = streamkit.differences(ref, redis_store)
    assert diffs == [], \
        f"{len(diffs)} differences ({streamkit.diagnosis(ref, redis_store, diffs)}), " \
        f"first: {diffs[:10]}"
    # the second similar-items list: one per similar list, decayed at its own half-life
    recent = set(redis_store.keys(f"{keys.PREFIX}{keys.KIND_SIMILAR_RECENT}:"))
    similar = set(redis_store.keys(f"{keys.PREFIX}{keys.KIND_SIMILAR}:"))
    assert recent and {k.rsplit(":", 1)[1] for k in recent} == {
        k.rsplit(":", 1)[1] for k in similar}
    assert redis_store.client.ttl(min(recent)) == -1  # kept like the similar lists: no TTL
    # the context trending lists and the sessions' shown lists made it to Redis
    for dimension, value in (("device", "web"), ("device", "ios"), ("country", "fr"),
                             ("daypart", daypart(streamkit.T0))):
        env = redis_store.get(keys.trending_context_key(dimension, value))
        assert env is not None and env.data["items"], (dimension, value)
    shown_users = {e.user_id for e in log.events if e.type == "impression"}
    sessions = [redis_store.get(keys.session_key(u)) for u in sorted(shown_users)[:50]]
    assert all(env is not None and env.data["shown"] for env in sessions)
    # new arrivals: every list is the naive top-K of live items by first-seen time, the
    # never-interacted n* items lead, and item values carry the oldest upsert's time
    new_top_k = ref.cfg.trending.new_top_k
    for scope, scores in naive_new_arrivals(log.items, ref.cfg).items():
        env = redis_store.get(keys.key_for(keys.KIND_TRENDING, scope))
        assert env is not None, scope
        assert_same_top_k(env.data["items"], scores, new_top_k)
    newest = redis_store.get(keys.new_arrivals_key())
    assert newest is not None and len(newest.data["items"]) == new_top_k
    assert [i for i, _ in newest.data["items"][:6]] == ["n5", "n4", "n3", "n2", "n1", "n0"]
    moved = redis_store.get(keys.new_arrivals_key("c7"))  # n1, recategorised from c1
    assert moved is not None and "n1" in {i for i, _ in moved.data["items"]}
    first = naive_first_seen(log.items)
    for item in ("n3", "x0", "i0"):
        env = redis_store.get(keys.item_key(item))
        assert env is not None and env.data["first_seen_ms"] == first[item], item
    assert redis_store.freshness()["stream"] == max(e.ts for e in log.events)

    dead = [orjson.loads(raw) for raw in
            streamkit.drain(settings, settings.topics.dlq, expect=len(bad))]
    assert len(dead) == len(bad)
    by_raw = {d["raw"].encode(): d for d in dead}
    for raw, field in streamkit.MALFORMED:
        letter = by_raw[raw]
        assert letter["field"] == field, letter["reason"]
        assert field in letter["reason"]


def test_every_event_published_twice_gives_the_state_of_publishing_once(
        kafka: Any, redis_store: RedisStore, tmp_path: Path, log: streamkit.Log,
        ref: Any) -> None:
    """The JVM front drops an event_id its user sent within the dedup window (operators/dedup.py):
    each event is published twice, the copy three events later, at parallelism 2."""
    settings = _settings(kafka, redis_store, tmp_path, stream_runtime=JVM)
    doubled = streamkit.with_duplicates(log)
    assert len(doubled.events) == 2 * len(log.events)
    streamkit.publish(settings, doubled)
    _run_bounded(settings, tmp_path, 2)
    loader.run(settings, redis_store, idle_exit_s=4.0, max_seconds=120)
    assert ref.duplicates == 0
    diffs = streamkit.differences(ref, redis_store)
    assert diffs == [], \
        f"{len(diffs)} differences ({streamkit.diagnosis(ref, redis_store, diffs)}), " \
        f"first: {diffs[:10]}"


def test_models_that_cannot_keep_up_learn_from_a_sample_and_counting_is_unchanged(
        kafka: Any, redis_store: RedisStore, tmp_path: Path, log: streamkit.Log,
        ref: Any) -> None:
    """ModelFeed.java: with the models allowed 50 events a second, the job drains the log at
    its own pace, every counted value equals the reference, and the collaborative model learns
    from a sample whose left-out events its header counts."""
    settings = _settings(kafka, redis_store, tmp_path, stream_runtime=JVM, writer=JVM_WRITER,
                         model_max_events_per_s=50.0)
    streamkit.publish(settings, log)
    _run_bounded(settings, tmp_path, 2)
    diffs = streamkit.differences(ref, redis_store, models=False)
    assert diffs == [], \
        f"{len(diffs)} differences ({streamkit.diagnosis(ref, redis_store, diffs)}), " \
        f"first: {diffs[:10]}"
    header = redis_store.get(keys.model_key(keys.MODEL_MF))
    want = ref.store.get(keys.model_key(keys.MODEL_MF))
    assert header is not None and want is not None
    learned, skipped = header.data["events"], header.data["sampled_out"]
    assert want.data["sampled_out"] == 0
    assert 0 < learned < want.data["events"], (learned, want.data["events"])
    assert skipped > 0, header.data
    # every event the model could learn was learnt or counted as left out
    assert learned + skipped >= want.data["events"], (learned, skipped, want.data["events"])


@pytest.mark.parametrize("runtime", [PYTHON, JVM])
def test_restart_from_checkpoint_converges_to_uninterrupted_state(
        runtime: str, kafka: Any, redis_store: RedisStore, tmp_path: Path, log: streamkit.Log,
        ref: Any) -> None:
    # both runtimes restore their own keyed state (the Java stages keep Java objects); the
    # loader writes in both, so the loader's metrics below hold for both
    settings = _settings(kafka, redis_store, tmp_path, checkpoint_interval_ms=1_000,
                         stream_runtime=runtime)
    # a tenth of the log first; the rest arrives at 1,000 events/s once the job runs, so the
    # kill falls mid-stream however fast the job drains (the JVM runtime drains 20k in ~2 s)
    head = len(log.events) // 10
    streamkit.publish(settings, log, stop=head)
    final_ts = max(e.ts for e in log.events)
    checkpoints = tmp_path / "checkpoints"
    logs = tmp_path / "logs"
    load = engine.start_loader(settings, logs)
    monitor = engine.start_monitor(settings, logs, interval_s=1.0)
    job = engine.start_job(settings, logs, checkpoint_dir=checkpoints)
    rest = threading.Thread(target=streamkit.publish, args=(settings, log),
                            kwargs={"start": head, "rate": 1_000.0}, daemon=True)
    try:
        deadline = time.monotonic() + 240
        while latest_checkpoint(checkpoints) is None or not redis_store.freshness():
            assert job.alive(), job.tail()
            assert time.monotonic() < deadline, "no checkpoint completed in time"
            time.sleep(0.2)
        rest.start()
        first = latest_checkpoint(checkpoints)
        while latest_checkpoint(checkpoints) == first:  # one more, taken while events arrive
            assert job.alive(), job.tail()
            assert time.monotonic() < deadline, "no second checkpoint in time"
            time.sleep(0.1)
        time.sleep(0.5)  # and some progress past it, which the restore must not count twice
        job.kill()  # SIGKILL, mid-stream: no chance to flush anything
        seen = redis_store.freshness().get("stream", 0)
        assert seen < final_ts, "the job had finished before it was killed; not mid-stream"
        restored_from = latest_checkpoint(checkpoints)

        rest.join()
        job = engine.start_job(settings, logs, checkpoint_dir=checkpoints, restore="latest",
                               name="job-restored")
        deadline = time.monotonic() + 300
        diffs = ["not started"]
        while diffs and time.monotonic() < deadline:
            assert job.alive(), job.tail()
            time.sleep(2)
            if redis_store.freshness().get("stream", 0) == final_ts:
                diffs = streamkit.differences(ref, redis_store)
        assert diffs == [], \
            f"{len(diffs)} differences ({streamkit.diagnosis(ref, redis_store, diffs)}), " \
            f"first: {diffs[:10]}"
        assert "restoring from" in job.tail(400) and str(restored_from) in job.tail(400)
        _check_metrics(settings, monitor)
    finally:
        job.stop()
        load.stop()
        monitor.stop()


def _check_metrics(settings: Settings, monitor: engine.EngineProcess) -> None:
    """The running (restored) job, the loader and the monitor export the catalogue's names."""
    flink = _scrape(settings.flink_metrics_port)
    prefix = "flink_taskmanager_job_task_operator_operator_"
    for operator in ("parse", "sessions", "neighbours", "items", "trending"):
        got = _value(flink, prefix + "direction_recs_stream_events_total",
                     operator=operator, direction="in")
        assert got is not None and got > 0, operator
    assert _value(flink, prefix + "recs_stream_late_events_total", operator="sessions") is not None

    loaded = _scrape(settings.loader_metrics_port)
    for kind in ("session", "similar", "trending", "item"):
        count = _value(loaded, "recs_freshness_seconds_count", kind=kind)
        assert count is not None and count > 0, kind
    assert (_value(loaded, "recs_loader_records_total") or 0) > 0

    want = {"recs_checkpoint_age_seconds", "recs_checkpoint_duration_seconds",
            "recs_checkpoint_size_bytes", "recs_checkpoints_failed_total",
            "recs_stream_watermark_lag_seconds", "recs_stream_events_total",
            "recs_kafka_consumer_lag_records", "recs_redis_data_age_seconds",
            "recs_catalogue_items"}  # no dead letters in this log: recs_dlq_events_total has none
    # watermarks follow the events' own times (T0, November 2023), not the Kafka records'
    # publication times: the lag is the age of the log, years
    events_age_s = (time.time() * 1000 - streamkit.T0) / 1000
    deadline = time.monotonic() + 60
    while True:
        assert monitor.alive(), monitor.tail()
        seen = _scrape(settings.monitor_port)
        # Flink's REST endpoint refreshes operator metrics every few seconds: a reading can
        # name every metric before the restored job's counters reach it; and the restored
        # job has a watermark once every partition has sent a record or idled (5 s: the jvm
        # runtime's is the minimum over the partitions' own)
        if (want <= {name for name, _ in seen}
                and _value(seen, "recs_monitor_up", source="flink") == 1
                and (_value(seen, "recs_stream_events_total", operator="sessions",
                            direction="in") or 0) > 0
                and (_value(seen, "recs_stream_watermark_lag_seconds", operator="sessions")
                     or 0) > events_age_s - 3600):
            break
        assert time.monotonic() < deadline, (want - {n for n, _ in seen}, monitor.tail())
        time.sleep(1)
    assert (_value(seen, "recs_stream_events_total", operator="sessions", direction="in")
            or 0) > 0
    lag = _value(seen, "recs_stream_watermark_lag_seconds", operator="sessions") or 0
    assert events_age_s - 3600 < lag < events_age_s + 3600
    assert (_value(seen, "recs_checkpoint_size_bytes") or 0) > 0
    lags = [v for (n, ls), v in seen.items() if n == "recs_kafka_consumer_lag_records"
            and ("group", "recs-stream-interactions") in ls]
    assert len(lags) == settings.partitions
