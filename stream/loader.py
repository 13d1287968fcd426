"""The update loader: ``recs.updates`` -> Redis, batched, versioned, idempotent.

    recs load [--idle-exit SECONDS]

It polls a batch, keeps the newest update per key, applies the batch in one Lua call per 500 keys
(:class:`state.redis_store.RedisStore`), records the newest event time applied in the freshness
hash, and only then commits the consumer offsets. A crash replays at most the uncommitted batch,
which the version check makes harmless.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from recs.settings import Settings
from state.records import Update
from state.store import Store, newest_per_key

log = logging.getLogger(__name__)
WRITER = "stream"


@dataclass(slots=True)
class LoaderStats:
    records: int = 0
    applied: int = 0
    malformed: int = 0
    batches: int = 0
    max_as_of: int = 0
    started: float = field(default_factory=time.monotonic)

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "applied": self.applied, "malformed": self.malformed,
                "batches": self.batches, "max_as_of": self.max_as_of,
                "seconds": round(time.monotonic() - self.started, 3)}


def apply_batch(store: Store, raw_values: list[bytes], stats: LoaderStats) -> None:
    updates: list[Update] = []
    for raw in raw_values:
        try:
            updates.append(Update.from_wire(raw))
        except (ValueError, orjson.JSONDecodeError) as exc:
            stats.malformed += 1
            log.error("loader: skipping malformed update %r: %s", raw[:120], exc)
    batch = newest_per_key(updates)
    stats.records += len(raw_values)
    stats.applied += store.apply(batch)
    stats.batches += 1
    if batch:
        newest = max(u.as_of for u in batch)
        if newest > stats.max_as_of:
            stats.max_as_of = newest
            store.mark_fresh(WRITER, newest)


def run(settings: Settings, store: Store, *, group_id: str = "recs-loader",
        idle_exit_s: float | None = None, max_seconds: float | None = None) -> LoaderStats:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        settings.topics.updates,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        max_poll_records=5000,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    stats = LoaderStats()
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, stop)
    last_data = time.monotonic()
    try:
        while not stopping:
            polled = consumer.poll(timeout_ms=100)
            values = [rec.value for recs in polled.values() for rec in recs]
            now = time.monotonic()
            if values:
                apply_batch(store, values, stats)
                consumer.commit()
                last_data = now
            elif not consumer.assignment():
                last_data = now  # idle time counts from the moment partitions are assigned
            elif idle_exit_s is not None and now - last_data >= idle_exit_s:
                break
            if max_seconds is not None and now - stats.started >= max_seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return stats


def main(argv: list[str]) -> int:
    from state.redis_store import RedisStore

    parser = argparse.ArgumentParser(prog="recs load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group-id", default="recs-loader")
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="exit after this many seconds without updates")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    store = RedisStore.from_url(settings.redis_url,
                                session_ttl_s=settings.session_ttl_ms // 1000)
    stats = run(settings, store, group_id=args.group_id, idle_exit_s=args.idle_exit)
    sys.stdout.write(orjson.dumps(stats.as_dict()).decode() + "\n")
    return 0
