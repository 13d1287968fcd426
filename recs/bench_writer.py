"""Writer benchmark: the update loader alone (``recs.updates`` -> Redis), at the stream's mix.

    python -m recs.bench_writer [--events 200000] [--rate 50000] [--session-every 1]
                                [--redis-cluster]
    make bench-writer

1. **The updates.** The synthetic storefront (50k users, 5k items, as ``recs bench-stream``)
   runs through the reference runner (the pure operators), and its updates are published in
   the job's cadence at an offered ``--rate``: a user's session on every change (or every
   ``--session-every``-th), the throttled kinds (neighbour lists, item values, trending lists)
   once per second per changed key. The stream's own mix, at the sizes the values really have;
   ``updates_per_event`` says how many updates each event costs the writer.
2. **Stages in-process** (no Kafka; Redis is real): decoding the wire records
   (``Update.from_wire``), keeping the newest per key, the store's conditional Lua write
   (``RedisStore.apply``), each in µs per update, best of ``--repeat``.
3. **The loader end to end**: the updates pre-filled on a topic, then ``stream.loader.run``
   drains it into an empty Redis; ``loader_updates_per_s`` is records read per second from
   the first poll to the last write, and ``consume_only_per_s`` the consumer alone (poll, no
   write), which bounds it.
4. **The JVM writer** (``RedisUpdateSink``'s classes, run by ``recs.stream.WriterMain``) on the
   same records, coalesced and written in the same batches: ``jvm_writer_updates_per_s``
   (decoding and writing, from records in memory: inside the job there is no Kafka hop; best of
   ``--repeat`` passes, at least 2, so the JIT is warm as in a running job).

With ``--redis-cluster`` every stage writes into a local Redis Cluster (3 masters with a replica
each, :mod:`infra.redis_cluster`) instead of one Redis: the writers group each batch by slot
(``redis`` in the result says which).

The last line is one JSON object with the figures, ``cpu_count`` and the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from recs.benchkit import print_result
from recs.settings import Settings, Topics
from schemas.events import Interaction, ItemUpsert
from state.records import Update
from state.store import newest_per_key

START_TS = 1_700_000_000_000


def stream_updates(n_events: int, rate: int, session_every: int = 1,
                   seed: int = 11) -> Iterator[Update]:
    """The updates the counting operators publish for ``n_events`` storefront events offered at
    ``rate`` events/s, in the job's cadence: a user's session after every ``session_every``-th
    change of it, and the throttled kinds (neighbour lists, item values, trending lists) once per
    processing-time second per changed key, i.e. every ``rate`` events."""
    from recs.synthetic import Storefront
    from stream import views
    from stream.reference import ReferenceRunner

    shop = Storefront(seed=seed, n_items=5_000, n_users=50_000)
    runner = ReferenceRunner()
    for item in shop.catalogue(START_TS - 60_000):
        runner.on_item(item)
    runner.flush()
    n = 0
    changes: dict[str, int] = {}
    for rec in shop.events(n_events, start_ts=START_TS):
        if isinstance(rec, ItemUpsert):
            runner.on_item(rec)
            continue
        if not isinstance(rec, Interaction):
            continue
        runner.on_event(rec)
        n += 1
        user = rec.user_id
        changes[user] = changes.get(user, 0) + 1
        if changes[user] % session_every == 0:
            yield views.session_update(user, runner.sessions.get(user), runner.max_ts)
        if n % rate == 0:
            runner._dirty_sessions.clear()  # sessions went out above, in their own cadence
            yield from runner.pending_updates()
            runner.flush()
    runner._dirty_sessions.clear()
    yield from runner.pending_updates()


def best_us(fn: Callable[[], object], count: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of ``fn``, in µs per unit of ``count``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best / max(count, 1) * 1e6


def main(argv: list[str] | None = None) -> int:
    from kafka import KafkaConsumer, KafkaProducer

    from infra.paths import java_binary
    from infra.redis_cluster import RedisCluster
    from infra.services import Services
    from infra.topics import engine_topics, ensure_topics
    from state.redis_store import RedisStore
    from stream import jvm, loader

    parser = argparse.ArgumentParser(prog="python -m recs.bench_writer", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=50_000,
                        help="offered events/s the cadence is for (throttled kinds: 1 per s)")
    parser.add_argument("--session-every", type=int, default=1,
                        help="publish a session after every Nth change of it (1: every one)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis-cluster", action="store_true",
                        help="write into a local Redis Cluster (3 masters + 3 replicas)")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    raw: list[bytes] = [u.to_wire() for u in stream_updates(args.events, args.rate,
                                                             args.session_every)]
    made_s = time.perf_counter() - t0
    print(f"bench-writer: {len(raw)} updates from {args.events} events "
          f"({len(raw) / args.events:.2f} per event, mean {sum(map(len, raw)) / len(raw):.0f} "
          f"bytes) in {made_s:.1f} s", file=sys.stderr)

    base = Settings.from_env()
    run_dir = base.run_dir / "bench-writer"
    result: dict[str, Any] = {"events": args.events, "rate": args.rate,
                              "session_every": args.session_every,
                              "updates": len(raw),
                              "updates_per_event": round(len(raw) / args.events, 3),
                              "mean_update_bytes": round(sum(map(len, raw)) / len(raw)),
                              "redis": "cluster" if args.redis_cluster else "single"}
    with contextlib.ExitStack() as stack:
        svc = stack.enter_context(Services(run_dir / "services", settings=base,
                                           redis=not args.redis_cluster))
        cluster = (stack.enter_context(RedisCluster(run_dir / "redis-cluster"))
                   if args.redis_cluster else None)
        redis_url = svc.redis_url if cluster is None else cluster.url
        store = RedisStore.from_url(redis_url)
        if cluster is not None:
            result["redis_masters"] = len(cluster.masters())

        def flush() -> None:
            if cluster is not None:
                cluster.flushall()
            else:
                store.client.flushdb()
        chunk = 5_000
        decoded = [Update.from_wire(r) for r in raw]

        def decode() -> None:
            for r in raw:
                Update.from_wire(r)

        def coalesce() -> None:
            for i in range(0, len(decoded), chunk):
                newest_per_key(decoded[i:i + chunk])

        def write() -> None:
            flush()
            for i in range(0, len(decoded), chunk):
                store.apply(newest_per_key(decoded[i:i + chunk]))

        n = len(raw)
        result["decode_us"] = round(best_us(decode, n, args.repeat), 2)
        result["coalesce_us"] = round(best_us(coalesce, n, args.repeat), 2)
        result["write_us"] = round(best_us(write, n, args.repeat), 2)

        prefix = f"benchw-{uuid.uuid4().hex[:6]}."
        settings = dataclasses.replace(base, kafka_bootstrap=svc.bootstrap, redis_url=redis_url,
                                       topics=Topics.with_prefix(prefix))
        ensure_topics(settings.kafka_bootstrap, engine_topics(settings.topics,
                                                              settings.partitions))
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=20,
                                 batch_size=512 * 1024, compression_type="lz4")
        for r, u in zip(raw, decoded, strict=True):
            producer.send(settings.topics.updates, key=u.key.encode(), value=r)
        producer.flush()
        producer.close()

        consumer = KafkaConsumer(settings.topics.updates,
                                 bootstrap_servers=settings.kafka_bootstrap,
                                 group_id=f"{prefix}consume-only", auto_offset_reset="earliest",
                                 enable_auto_commit=False, max_poll_records=5000,
                                 fetch_max_wait_ms=20,
                                 max_partition_fetch_bytes=8 * 1024 * 1024)
        got, first = 0, None
        while got < n:
            polled = consumer.poll(timeout_ms=500)
            if polled and first is None:
                first = time.perf_counter()
            got += sum(len(v) for v in polled.values())
        result["consume_only_per_s"] = round(got / (time.perf_counter() - (first or 0.0)))
        consumer.close()

        flush()
        stats = loader.run(settings, store, group_id=f"{prefix}loader", idle_exit_s=2.0)
        if stats.first_batch_at is None or stats.last_batch_at is None:
            raise RuntimeError("bench-writer: the loader read nothing")
        # first batch to last write: not the group join before it, nor the idle wait after
        elapsed = stats.last_batch_at - stats.first_batch_at
        if stats.records != n:
            raise RuntimeError(f"bench-writer: the loader read {stats.records} of {n} updates")
        result["loader_updates_per_s"] = round(n / elapsed)
        result["loader_us_per_update"] = round(elapsed / n * 1e6, 2)
        result["loader_events_per_s_equiv"] = round(n / elapsed / (n / args.events))
        # the JVM writer (RedisUpdateSink's classes) on the same records, into an empty Redis
        flush()
        jvm_run = subprocess.run(
            [java_binary(), "-cp", jvm.tool_classpath(), "recs.stream.WriterMain",
             "--redis-url", redis_url, "--batch", str(chunk),
             "--repeat", str(max(2, args.repeat))],
            input=b"\n".join(raw) + b"\n", capture_output=True, check=False)
        if jvm_run.returncode != 0:
            raise RuntimeError(f"bench-writer: WriterMain failed:\n{jvm_run.stderr.decode()}")
        jvm_stats = orjson.loads(jvm_run.stdout.splitlines()[-1])
        result["jvm_writer_updates_per_s"] = round(n / jvm_stats["seconds"])
        result["jvm_writer_us_per_update"] = round(jvm_stats["seconds"] / n * 1e6, 2)
        result["jvm_writer_events_per_s_equiv"] = round(
            n / jvm_stats["seconds"] / (n / args.events))
    return print_result(result)


if __name__ == "__main__":
    sys.exit(main())
