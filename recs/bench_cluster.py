"""Cluster benchmark: the synthetic storefront through the cluster topology, nodes killed on the
way, the result checked against the reference runner.

    make bench-cluster
    python -m recs.bench_cluster [--backlog 40000] [--tail 100000] [--rate 1000] [--no-failures]

1. **Topology** (loopback, under ``<run dir>/bench-cluster``, stopped by pid at the end): a Flink
   standalone cluster (one JobManager, two one-slot TaskManagers, ``infra/flink_cluster.py``), a
   three-broker Kafka (replication 3, min ISR 2, producers with ``acks=all`` and idempotence,
   ``infra/kafka_cluster.py``) and a Redis Cluster of three masters with a replica each
   (``infra/redis_cluster.py``).
2. **Backlog.** The storefront's catalogue and ``--backlog`` events are published before the
   job is submitted (``flink run``, parallelism 2, JVM topology and writer, checkpoints every
   second). ``backlog_events_per_s``: the backlog over the time from the job's first write to
   Redis until the per-item event counters in Redis add up to the reference runner's for the
   backlog (they are published at most once a second per item: up to ~1 s of the time).
3. **Failures.** ``--tail`` more events are published at ``--rate`` while, each after a
   checkpoint completed since the previous one, TaskManager 1 is SIGKILLed and restarted, a
   Kafka broker is SIGKILLed and restarted 10 s later, and a Redis master is SIGKILLed (its
   replica takes over; the node is restarted and rejoins as a replica). A failure is
   *recovered from* when the job runs again afterwards (a TaskManager's loss restarts the job
   from its last checkpoint: an entry in its exception history; the others it rides out, the
   writers retrying) and the final state has parity with nothing lost or counted twice.
4. **Result**, once Redis has converged (counters equal to the reference's, or unchanged for
   ``--settle-s``): ``parity`` (every key equal to the reference runner's, the models left out:
   they learn a rate-limited sample; a neighbour list whose Space-Saving table overflowed must
   agree on its 5 strongest items only, and even those depend on the order pairs arrived in,
   which a recovery changes: ``differences_by_kind`` says which kind differed),
   ``lost_events`` / ``double_counted_events`` (per item and event type, the reference's count
   against Redis's: a shortfall is lost, an excess counted twice).

The last line is one JSON object: ``taskmanagers``, ``kafka_brokers``, ``redis_masters``,
``parallelism``, ``parity``, ``differences``, ``backlog_events_per_s``, ``recovered_from``,
``failures`` (what was injected, when, seconds from the kill until the job was seen running
again, whether the tail was still being published), ``lost_events``,
``double_counted_events``, ``job_failures`` (entries in the job's exception history), the
events, and the machine (``cpu_count``, the load average at the start and at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final

import orjson

from recs.benchkit import print_result
from recs.settings import Settings, Topics
from schemas.events import Interaction, ItemUpsert
from state.store import Store

SEED: Final = 11
N_USERS: Final = 20_000
N_ITEMS: Final = 2_000
PARALLELISM: Final = 2
STAT_PREFIX: Final = "recs:v1:itemstats:"


def counted(store: Store) -> int:
    """Every event the per-item counters hold (``recs:v1:itemstats:*``, all event types)."""
    keys = store.keys(STAT_PREFIX)
    return sum(sum(env.data["counts"].values()) for env in store.get_many(keys)
               if env is not None)


class Publisher(threading.Thread):
    """Publishes events keyed by user, at most ``rate`` a second, with the engine's delivery
    settings (``acks=all``, idempotence: a broker's loss neither drops nor duplicates)."""

    def __init__(self, settings: Settings, events: Sequence[Interaction],
                 rate: float | None) -> None:
        super().__init__(daemon=True)
        self.settings, self.events, self.rate = settings, events, rate
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish(self.settings, self.events, rate=self.rate)
        except BaseException as exc:  # reported by the main thread
            self.error = exc


def publish(settings: Settings, events: Sequence[Interaction | ItemUpsert], *,
            rate: float | None = None) -> None:
    from kafka import KafkaProducer

    from infra.topics import kafka_python_delivery

    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=10,
                             batch_size=256 * 1024, **kafka_python_delivery())
    began = time.monotonic()
    for n, ev in enumerate(events):
        if rate is not None and n % 100 == 0:
            time.sleep(max(0.0, began + n / rate - time.monotonic()))
        if isinstance(ev, ItemUpsert):
            producer.send(settings.topics.items, key=ev.item_id.encode(), value=ev.to_json())
        else:
            producer.send(settings.topics.interactions, key=ev.user_id.encode(),
                          value=ev.to_json())
    producer.flush()
    producer.close()


def wait(ready: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.2) -> float:
    """Seconds until ``ready()``; raises after ``timeout_s``."""
    began = time.monotonic()
    while not ready():
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"bench-cluster: {what} not reached in {timeout_s:.0f} s")
        time.sleep(poll_s)
    return time.monotonic() - began


def settle(store: Store, want: int, timeout_s: float, quiet_s: float) -> int:
    """Until the counters reach ``want``, or stop changing for ``quiet_s``; their total."""
    deadline = time.monotonic() + timeout_s
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = counted(store)
        if now == want:
            return now
        if now != last:
            last, since = now, time.monotonic()
        elif now > want or time.monotonic() - since > quiet_s:
            return now
        time.sleep(0.5)
    return counted(store)


def main(argv: list[str]) -> int:
    from infra.flink_cluster import FlinkCluster
    from infra.kafka_cluster import KafkaCluster
    from infra.redis_cluster import RedisCluster
    from infra.topics import engine_topics, ensure_topics
    from recs.synthetic import Storefront
    from state.redis_store import RedisStore
    from stream.job import JVM_WRITER, JobOptions
    from stream.parity import count_differences, differences
    from stream.reference import ReferenceRunner
    from stream.submit import submit
    from stream.topology import JVM

    parser = argparse.ArgumentParser(prog="python -m recs.bench_cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlog", type=int, default=40_000)
    parser.add_argument("--tail", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1_000.0)
    parser.add_argument("--settle-s", type=float, default=30.0)
    parser.add_argument("--no-failures", action="store_true",
                        help="inject nothing: the same run uninterrupted, for comparison")
    args = parser.parse_args(argv)
    load_start = [round(x, 2) for x in os.getloadavg()]

    base = Settings.from_env()
    run_dir = (base.run_dir / "bench-cluster").resolve()
    # a fresh topology every run (the processes of an earlier run died with it: bound to it)
    shutil.rmtree(run_dir, ignore_errors=True)
    shop = Storefront(seed=SEED, n_items=N_ITEMS, n_users=N_USERS)
    start_ts = int(time.time() * 1000) - 3_600_000
    catalogue = shop.catalogue(start_ts - 60_000)
    events = list(shop.events(args.backlog + args.tail, start_ts=start_ts))
    backlog, tail = events[:args.backlog], events[args.backlog:]
    began_ref = time.monotonic()
    ref = ReferenceRunner()
    ref.run([*catalogue, *backlog])
    backlog_counted = counted(ref.store)
    ref.run(tail)
    total = counted(ref.store)
    print(orjson.dumps({"reference": {"events": len(events), "counted": total,
                                      "seconds": round(time.monotonic() - began_ref, 1)}}
                       ).decode(), flush=True)

    kafka = KafkaCluster(run_dir).start(bind_to_parent=True)
    redis_cluster = RedisCluster(run_dir).start(bind_to_parent=True)
    flink = FlinkCluster(run_dir).start(bind_to_parent=True)
    failures: list[dict[str, Any]] = []
    job_id = None
    try:
        settings = dataclasses.replace(
            base, kafka_bootstrap=kafka.bootstrap, redis_url=redis_cluster.url, run_dir=run_dir,
            topics=Topics.with_prefix(f"bench-{uuid.uuid4().hex[:6]}."), stream_runtime=JVM,
            writer=JVM_WRITER, parallelism=PARALLELISM, checkpoint_interval_ms=1_000)
        ensure_topics(settings.kafka_bootstrap, engine_topics(settings.topics,
                                                              settings.partitions),
                      brokers=kafka.size)
        redis_cluster.flushall()
        store = RedisStore.from_url(settings.redis_url)
        publish(settings, [*catalogue, *backlog])
        job_id = submit(settings, flink.rest_address, JobOptions(
            parallelism=PARALLELISM, remote=True, group_id=f"{settings.topics.interactions}",
            checkpoint_dir=run_dir / "checkpoints"), home=flink.dir)
        wait(lambda: bool(store.freshness()), 300, "the job's first write", poll_s=0.05)
        first = time.monotonic()
        wait(lambda: counted(store) >= backlog_counted, 600, "the backlog drained")
        drained_s = time.monotonic() - first
        print(orjson.dumps({"backlog": {"events": len(backlog), "drained_s": round(drained_s, 2)}
                            }).decode(), flush=True)

        publisher = Publisher(settings, tail, args.rate)
        publisher.start()
        api = flink.api

        def after_checkpoint() -> None:
            done = api.completed_checkpoints(job_id)
            wait(lambda: api.completed_checkpoints(job_id) > done, 120, "a checkpoint")

        def record(failure: str, node: str, began: float, **extra: Any) -> None:
            failures.append({"failure": failure, "node": node, "at_s": round(began - first, 1),
                             "running_again_s": round(time.monotonic() - began, 1), **extra})
            print(orjson.dumps(failures[-1]).decode(), flush=True)

        if not args.no_failures:
            after_checkpoint()
            failed_before = api.failures(job_id)
            began = time.monotonic()
            flink.kill_taskmanager(1)
            wait(lambda: not api.running(job_id), 60, "the TaskManager's loss noticed")
            flink.start_taskmanager(1, bind_to_parent=True)
            wait(lambda: api.running(job_id), 180, "the job running after the TaskManager kill")
            record("taskmanager_sigkill", "taskmanager-1", began,
                   job_failures=api.failures(job_id) - failed_before,
                   publishing_during=publisher.is_alive())

            after_checkpoint()
            broker = kafka.brokers[0]
            began = time.monotonic()
            broker.kill()
            time.sleep(10)
            kafka.start(bind_to_parent=True)
            wait(lambda: api.running(job_id), 180, "the job running after the broker kill")
            record("kafka_broker_sigkill", f"broker:{broker.port}", began,
                   publishing_during=publisher.is_alive())

            after_checkpoint()
            began = time.monotonic()
            killed = redis_cluster.kill_master(0)
            successor = redis_cluster.wait_for_failover(killed, timeout_s=60)
            failover_s = time.monotonic() - began
            redis_cluster.restart_dead()
            wait(lambda: api.running(job_id), 180, "the job running after the Redis master kill")
            record("redis_master_sigkill", f"redis:{killed.port}", began,
                   failover_s=round(failover_s, 1),
                   new_master=None if successor is None else f"redis:{successor.port}",
                   publishing_during=publisher.is_alive())
        publisher.join()
        if publisher.error is not None:
            raise RuntimeError(f"bench-cluster: publishing the tail failed: {publisher.error}")
        got = settle(store, total, 600, args.settle_s)
        diffs = differences(ref, store, models=False)
        counts = count_differences(ref, store)
        state = "RUNNING" if api.running(job_id) else api.job_state(job_id)
        failures_total = api.failures(job_id)
    finally:
        if job_id is not None:
            with contextlib.suppress(OSError, ValueError, RuntimeError):
                flink.api.cancel(job_id)
        flink.stop()
        kafka.stop()
        redis_cluster.stop()
    counted_exactly = counts.lost == 0 and counts.double == 0
    kinds: dict[str, int] = {}
    for diff in diffs:  # "head recs:v1:similar:i1", "missing recs:v1:session:u2", ...
        what, key = diff.split(" ", 1)[0], diff.split(" ", 1)[-1]
        kind = f"{what} {key.split(':')[2]}" if key.startswith(STAT_PREFIX[:8]) else what
        kinds[kind] = kinds.get(kind, 0) + 1
    return print_result({
        "taskmanagers": len(flink.taskmanagers), "kafka_brokers": kafka.size,
        "redis_masters": redis_cluster.n_masters, "parallelism": PARALLELISM, "parity": not diffs,
        "differences": len(diffs), "differences_by_kind": kinds,
        "first_differences": diffs[:5],
        "backlog_events": len(backlog), "backlog_events_per_s": round(len(backlog) / drained_s),
        "tail_events": len(tail), "tail_rate": args.rate,
        "recovered_from": [f["failure"] for f in failures]
        if counted_exactly and state == "RUNNING" else [],
        "failures": failures, "lost_events": counts.lost,
        "double_counted_events": counts.double, "counted_events": got,
        "reference_counted_events": total, "job_failures": failures_total,
        "runtime": JVM, "writer": JVM_WRITER, "load_avg_start": load_start})


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
