"""Publishing to Kafka: pacing and replay timing (pure), then round trips through a real broker."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest

from recs import producer
from recs.producer import (
    CLIENTS,
    ProducerConfig,
    TokenBucket,
    make_producer,
    publish,
    publish_items,
    replay_paced,
    user_shard,
)
from recs.synthetic import Storefront
from schemas.events import Interaction, ItemUpsert, decode_interaction, decode_item


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds * 1.3  # sleeps overshoot; the bucket must make up for it


# --- pure parts ----------------------------------------------------------------------------------

def test_token_bucket_holds_the_long_run_rate_despite_oversleeping() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(10_000):
        bucket.take()
        clock.now += 0.00001  # 10 µs of work per record
    assert 9.9 < clock.now - start < 10.2
    assert len(clock.sleeps) < 10_000 / 2  # batched: at most one sleep per couple of records
    assert min(clock.sleeps) >= 0.002


def test_token_bucket_does_not_sleep_below_its_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        clock.now += 0.02  # 50 records/s offered to a 100/s bucket
        assert bucket.take() == 0.0
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0)


def test_replay_paced_scales_event_time_gaps() -> None:
    clock = FakeClock(50.0)
    events = [Interaction(f"e{i}", "view", "u", "s", 1_600_000_000_000 + ms, "i")
              for i, ms in enumerate([0, 0, 4000, 10_000])]
    released = []
    for _ in replay_paced(events, 2.0, clock=clock, sleep=lambda s: setattr(
            clock, "now", clock.now + s)):
        released.append(clock.now - 50.0)
    assert released == pytest.approx([0, 0, 2.0, 5.0])


def test_replay_paced_as_fast_as_possible_and_shared_start() -> None:
    events = [Interaction(f"e{i}", "view", "u", "s", 1_600_000_000_000 + i * 60_000, "i")
              for i in range(5)]
    def no_sleep(seconds: float) -> None:
        pytest.fail(f"slept {seconds} s when replaying as fast as possible")

    for fast in (0.0, float("inf")):
        assert list(replay_paced(events, fast, sleep=no_sleep)) == events
    clock = FakeClock(100.0)
    slept: list[float] = []
    # a replayer that starts late (shared start 99.0) is already behind: no sleep for event 0
    list(replay_paced(events[:2], 60.0, start=99.0, origin_ts=events[0].ts, clock=clock,
                      sleep=slept.append))
    assert slept == [] or max(slept) < 0.01
    with pytest.raises(ValueError, match="speedup"):
        list(replay_paced(events, -1))


def test_producer_config_pairs_idempotence_with_acks_all() -> None:
    # the default is the engine's delivery: acks=all with idempotence, in both clients
    kw = ProducerConfig("h:1").kafka_kwargs()
    assert kw["acks"] == "all" and kw["enable_idempotence"] is True
    conf = ProducerConfig("h:1").confluent_conf()
    assert conf["acks"] == "all" and conf["enable.idempotence"] == "true"
    kw = ProducerConfig("h:1", acks="1").kafka_kwargs()
    assert kw["acks"] == 1 and kw["enable_idempotence"] is False
    assert ProducerConfig("h:1", acks="0").kafka_kwargs()["acks"] == 0
    assert ProducerConfig("h:1", acks="1").confluent_conf()["enable.idempotence"] is False
    with pytest.raises(ValueError, match="client must be one of"):
        make_producer(ProducerConfig("h:1", client="librdkafka"))


def test_user_shard_is_stable_and_balanced() -> None:
    shards = [user_shard(f"u{i}", 3) for i in range(3000)]
    assert shards == [user_shard(f"u{i}", 3) for i in range(3000)]
    assert all(800 < shards.count(k) < 1200 for k in range(3))


def test_cli_reports_a_bad_dataset_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    missing = tmp_path / "no-such-folder"
    code = producer.main(["replay", "--dataset", "rsc15", "--path", str(missing),
                          "--bootstrap", "127.0.0.1:1"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "_train_full.txt" in err


def test_replay_job_reads_a_csv_with_context_and_type_map(tmp_path: Path) -> None:
    from recs.producer.jobs import ReplayJob, load_replay

    path = tmp_path / "shop.csv"
    path.write_text("t,u,i,k,dev\n1400000000,a,x,pv,mobile\n1400000001,a,y,buy,mobile\n")
    job = ReplayJob(producer.ProducerConfig("127.0.0.1:1"), "t", "it", "csv", str(path), 1.0,
                    False, None, "user=u,item=i,ts=t,type=k,device=dev", "s", ",", 0.0,
                    type_map="pv=view,buy=purchase")
    events = load_replay(job).events
    assert [(e.type, e.context) for e in events] == [("view", {"device": "mobile"}),
                                                     ("purchase", {"device": "mobile"})]


# --- against a broker ----------------------------------------------------------------------------

def consume(bootstrap: str, topic: str, n: int, timeout_s: float = 60.0) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < n and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += batch
        # anything beyond n would be a duplicate: give it a moment to show up
        for batch in consumer.poll(timeout_ms=500).values():
            records += batch
    finally:
        consumer.close()
    return records


@pytest.mark.integration
@pytest.mark.parametrize("client", CLIENTS)
def test_publish_round_trip_keys_values_and_order(kafka: Any, fresh_topics: Any,
                                                  client: str) -> None:
    if client == "confluent":
        pytest.importorskip("confluent_kafka")
    config = ProducerConfig(kafka.bootstrap, client=client)
    topic, items_topic = fresh_topics("interactions", "items", partitions=3)
    shop = Storefront(seed=4, n_items=300, n_users=100, n_categories=6, new_item_every=500)
    records = list(shop.stream(3000))
    sent_events = [r for r in records if isinstance(r, Interaction)]
    sent_items = shop.catalogue() + [r for r in records if isinstance(r, ItemUpsert)]
    item_stats = publish_items(shop.catalogue(), kafka.bootstrap, items_topic, config=config)
    stats = publish(records, kafka.bootstrap, topic, items_topic=items_topic, config=config)
    assert (stats.events, stats.errors, item_stats.errors) == (3000, 0, 0)
    assert stats.items + item_stats.items == len(sent_items) > 300

    got = consume(kafka.bootstrap, topic, 3000)
    assert len(got) == 3000
    per_partition: dict[int, list[Interaction]] = defaultdict(list)
    for rec in got:
        event = decode_interaction(rec.value)
        assert rec.key == event.user_id.encode()
        per_partition[rec.partition].append(event)
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for part in per_partition.values():
        for event in part:
            by_user[event.user_id].append(event)
    sent_by_user: dict[str, list[Interaction]] = defaultdict(list)
    for event in sent_events:
        sent_by_user[event.user_id].append(event)
    assert by_user == sent_by_user  # every user's events arrive whole and in order

    items = consume(kafka.bootstrap, items_topic, len(sent_items))
    assert sorted((r.key, decode_item(r.value).item_id) for r in items) == sorted(
        (i.item_id.encode(), i.item_id) for i in sent_items)


@pytest.mark.integration
def test_publish_paces_to_the_target_rate(kafka: Any, fresh_topics: Any) -> None:
    [topic] = fresh_topics("paced", partitions=1)
    events = list(Storefront(seed=1, n_items=100, n_users=50, n_categories=4).events(600))
    publish(events[:1], kafka.bootstrap, topic)  # metadata warm-up outside the timing
    stats = publish(events, kafka.bootstrap, topic, rate=300)
    assert stats.events == 600
    assert 1.7 < stats.seconds < 3.5
    assert 170 < stats.rate < 350


@pytest.mark.integration
def test_retime_stamps_send_time(kafka: Any, fresh_topics: Any) -> None:
    [topic] = fresh_topics("retimed", partitions=1)
    old = [Interaction(f"e{i}", "view", "u1", "s1", 1_400_000_000_000 + i, "i1")
           for i in range(20)]
    before = int(time.time() * 1000)
    publish(old, kafka.bootstrap, topic, retime=True)
    after = int(time.time() * 1000)
    stamps = [decode_interaction(r.value).ts for r in consume(kafka.bootstrap, topic, 20)]
    assert len(stamps) == 20 and all(before <= ts <= after for ts in stamps)
    assert stamps == sorted(stamps)


@pytest.mark.integration
def test_cli_synthetic_with_two_processes(kafka: Any, fresh_topics: Any,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    topic, items_topic = fresh_topics("interactions", "items")
    code = producer.main([
        "synthetic", "--bootstrap", kafka.bootstrap, "--topic", topic,
        "--items-topic", items_topic, "--rate", "1000", "--seconds", "1", "--items", "200",
        "--users", "100", "--categories", "5", "--seed", "9", "--processes", "2"])
    assert code == 0
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["events"] == 1000 and summary["errors"] == 0
    assert summary["items"] >= 200 and summary["rate"] > 0
    assert set(summary) >= {"events", "items", "seconds", "rate"}
    got = [decode_interaction(r.value) for r in consume(kafka.bootstrap, topic, 1000)]
    assert len(got) == 1000 and len({e.event_id for e in got}) == 1000
    now = time.time() * 1000
    assert all(now - 120_000 < e.ts <= now for e in got)  # stamped with the wall clock


@pytest.mark.integration
def test_cli_replay_rsc15_in_event_time_order(kafka: Any, fresh_topics: Any, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    header = "SessionId\tItemId\tTime\n"
    t0 = 1_396_000_000
    (tmp_path / "x_train_full.txt").write_text(
        header + "".join(f"{s}\t{100 + s}\t{t0 + 2 * s + 0.5 * k}\n"
                         for s in (5, 1, 3) for k in range(2)))
    (tmp_path / "x_test.txt").write_text(header + f"9\t101\t{t0 + 20}\n9\t102\t{t0 + 21}\n")
    [topic] = fresh_topics("replay", partitions=1)
    began = time.monotonic()
    code = producer.main(["replay", "--dataset", "rsc15", "--path", str(tmp_path),
                          "--bootstrap", kafka.bootstrap, "--topic", topic, "--speedup", "20"])
    assert code == 0
    assert time.monotonic() - began > 21 / 20 * 0.9  # the 21 s of event time took ~1 s
    summary = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (summary["events"], summary["items"]) == (8, 0)
    got = [decode_interaction(r.value) for r in consume(kafka.bootstrap, topic, 8)]
    assert [e.ts for e in got] == sorted(e.ts for e in got)
    assert got[0].event_id == "rsc15:train:4" and got[-1].event_id == "rsc15:test:3"
