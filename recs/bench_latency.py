"""Latency of one event on a quiet engine: produced -> visible in its user's session in Redis.

    python -m recs.bench_latency [--events 100] [--interval-s 0.2] [--users 50]

Starts Kafka and Redis (as the other benches do) and the job with the settings of the
environment (``RECS_STREAM_RUNTIME``, ``RECS_WRITER``, ``RECS_MODELS``), then sends one view at
a time, with the send time as its event time, each flushed on its own, and polls the user's
session key until its version reaches the event (every 5 ms). No other load: this is the floor
under ``make bench-stream``'s freshness figures, which it separates from queueing. The last line
is one JSON object: p50/p99/max in ms over the events after the first visible one, the
settings, and the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import uuid
from typing import cast

import orjson

from recs.bench_stream import percentile
from recs.benchkit import print_result
from recs.settings import Settings, Topics
from state import keys
from state.redis_connect import sync_client


def main(argv: list[str] | None = None) -> int:
    from kafka import KafkaProducer

    from infra.services import Services
    from infra.topics import engine_topics, ensure_topics
    from recs import engine

    parser = argparse.ArgumentParser(prog="python -m recs.bench_latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--interval-s", type=float, default=0.2)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--timeout-s", type=float, default=20.0, help="per event")
    args = parser.parse_args(argv)
    base = Settings.from_env()
    run = base.run_dir / "bench-latency"
    lat_ms: list[float] = []
    with Services(run / "services", settings=base) as svc:
        settings = dataclasses.replace(svc.settings, run_dir=run,
                                       topics=Topics.with_prefix(f"lat-{uuid.uuid4().hex[:6]}."))
        ensure_topics(settings.kafka_bootstrap,
                      engine_topics(settings.topics, settings.partitions))
        job = engine.start_job(settings, run / "logs", checkpoint_dir=run / "checkpoints")
        client = sync_client(settings.redis_url)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=0)
        seen_first = False
        try:
            for n in range(args.events + 1):
                user = f"u{n % args.users}"
                ts = int(time.time() * 1000)
                event = {"schema_version": 1, "event_id": f"lat-{n}", "type": "view",
                         "user_id": user, "session_id": f"{user}-s", "item_id": f"i{n % 7}",
                         "ts": ts}
                sent = time.time()
                producer.send(settings.topics.interactions, key=user.encode(),
                              value=orjson.dumps(event))
                producer.flush()
                # the first event also waits for the job to start
                deadline = sent + (args.timeout_s if seen_first else 300.0)
                while time.time() < deadline:
                    if not job.alive():
                        raise RuntimeError(f"bench-latency: the job died:\n{job.tail()}")
                    raw = cast(bytes | None, client.get(keys.session_key(user)))
                    if raw is not None and int(orjson.loads(raw)["v"]) >= ts:
                        if seen_first:
                            lat_ms.append((time.time() - sent) * 1000.0)
                        seen_first = True
                        break
                    time.sleep(0.005)
                time.sleep(args.interval_s)
        finally:
            producer.close()
            job.stop()
    return print_result({
        "events": len(lat_ms), "lost": args.events - len(lat_ms),
        "p50_ms": round(percentile(lat_ms, 50), 1), "p99_ms": round(percentile(lat_ms, 99), 1),
        "max_ms": round(max(lat_ms, default=0.0), 1), "interval_s": args.interval_s,
        "runtime": settings.stream_runtime, "writer": settings.writer,
        "models": settings.models})


if __name__ == "__main__":
    sys.exit(main())
