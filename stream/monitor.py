"""``recs monitor``: the stream seen from outside, as Prometheus metrics.

    recs monitor [--interval SECONDS] [--port PORT] [--host HOST] [--blend-group G] [--once]

Every ``--interval`` seconds (5) it reads:

- Kafka: the committed offsets of the job's groups (``recs-stream-interactions``,
  ``recs-stream-items``) and the loader's (``recs-loader``) against the end offsets, and the
  timestamp of each partition's first uncommitted record (one record fetched by seeking, cached
  per partition and offset). The job commits its offsets on checkpoints only: without
  checkpoints its lag shows the whole topic. The blend learner's group (``recs-blend-learner``)
  is watched the same way once it has committed; its members are counted (0: not running), and
  a group that never committed has no lag series (the learner starts live, at the end);
- ``interactions.dlq``, read incrementally from the start with a private consumer (no group),
  counted by reason;
- Flink's REST API on ``127.0.0.1:RECS_FLINK_REST_PORT``: the last completed checkpoint and the
  failed count, the project's operator counters and each operator's input watermark;
- Redis: the freshness hash and, at most once a minute, a capped SCAN count of catalogue items.

Scrapes render the last reading; ages (``now − ...``) are computed at scrape time. The metric
names are listed in docs/observability.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.flink_rest import JobManagerRest
from recs.settings import Settings
from state.keys import KIND_ITEM, PREFIX
from stream.monitor_kafka import BLEND_GROUP, TIMEOUT_S, KafkaSide, PartitionLag, dlq_reason

__all__ = ["BLEND_GROUP", "KafkaSide", "Monitor", "PartitionLag", "Snapshot", "dlq_reason",
           "main", "render"]

log = logging.getLogger(__name__)

CATALOGUE_EVERY_S: Final = 60.0
CATALOGUE_MAX_SCANS: Final = 2_000  # SCAN calls of COUNT 1000: about 2M keys inspected at most
NO_WATERMARK: Final = -(2**62)  # below this Flink has no watermark yet (Long.MIN_VALUE)
END_OF_INPUT: Final = 2**62  # at or above this a bounded input has ended
_EVENTS_ID: Final = re.compile(
    r"^(\d+)\.(.+?)\.operator\.([^.]+)\.direction\.(in|out)\.recs_stream_events_total$")
_LATE_ID: Final = re.compile(r"^(\d+)\.(.+?)\.operator\.([^.]+)\.recs_stream_late_events_total$")
_WATERMARK_ID: Final = re.compile(r"^(\d+)\.(.+)\.currentInputWatermark$")


@dataclass(frozen=True, slots=True)
class Checkpoints:
    failed: int
    duration_s: float | None = None  # of the last completed checkpoint, if any
    size_bytes: int | None = None
    completed_ms: int | None = None


@dataclass(slots=True)
class OperatorReading:
    events_in: int = 0
    events_out: int = 0
    late: int = 0
    watermark_ms: int | None = None  # the lowest input watermark over its subtasks


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_s: float
    duration_s: float
    up: Mapping[str, bool]  # source (kafka, dlq, flink, redis) -> read without error
    lags: tuple[PartitionLag, ...] = ()
    members: Mapping[str, int] = field(default_factory=dict)  # optional group -> its consumers
    dlq: Mapping[str, int] = field(default_factory=dict)
    checkpoints: Checkpoints | None = None
    operators: Mapping[str, OperatorReading] = field(default_factory=dict)
    freshness_ms: Mapping[str, int] = field(default_factory=dict)
    catalogue_items: int | None = None


class FlinkRest(JobManagerRest):
    """The running job's checkpoints, operator counters and watermarks from Flink's REST API."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url, timeout_s=TIMEOUT_S)

    def _get(self, path: str) -> Any:
        return self.call(path)

    def running_job(self) -> str | None:
        jobs = self._get("/jobs/overview")["jobs"]
        running = [j for j in jobs if j["state"] == "RUNNING"]
        return max(running, key=lambda j: j["start-time"])["jid"] if running else None

    def checkpoints(self, jid: str) -> Checkpoints:
        doc = self._get(f"/jobs/{jid}/checkpoints")
        failed = int(doc["counts"]["failed"])
        done = (doc.get("latest") or {}).get("completed")
        if not done:
            return Checkpoints(failed)
        return Checkpoints(failed, done["end_to_end_duration"] / 1000.0, int(done["state_size"]),
                           int(done["latest_ack_timestamp"]))

    def operators(self, jid: str) -> dict[str, OperatorReading]:
        readings: dict[str, OperatorReading] = {}
        for vertex in self._get(f"/jobs/{jid}")["vertices"]:
            path = f"/jobs/{jid}/vertices/{vertex['id']}/metrics"
            ids = [m["id"] for m in self._get(path)]
            wanted = [i for i in ids if i.endswith(("recs_stream_events_total",
                                                    "recs_stream_late_events_total",
                                                    ".currentInputWatermark"))]
            if wanted:
                values = self._get(path + "?get=" + ",".join(wanted))
                _read_operators({m["id"]: m["value"] for m in values}, readings)
        return readings


def _read_operators(values: Mapping[str, str], readings: dict[str, OperatorReading]) -> None:
    """Sum the project's counters over subtasks; the lowest input watermark of the Flink
    operator that registered them (found through the counters' ``operator`` group)."""
    names: dict[str, str] = {}  # Flink operator name -> project operator
    for metric_id, value in values.items():
        if m := _EVENTS_ID.match(metric_id):
            names[m[2]] = m[3]
            r = readings.setdefault(m[3], OperatorReading())
            if m[4] == "in":
                r.events_in += int(float(value))
            else:
                r.events_out += int(float(value))
        elif m := _LATE_ID.match(metric_id):
            names[m[2]] = m[3]
            readings.setdefault(m[3], OperatorReading()).late += int(float(value))
    for metric_id, value in values.items():
        m = _WATERMARK_ID.match(metric_id)
        if m and m[2] in names:
            r, wm = readings[names[m[2]]], int(float(value))
            r.watermark_ms = wm if r.watermark_ms is None else min(r.watermark_ms, wm)


class Monitor:
    """One collection: :meth:`collect` reads every source; a failing source is marked down."""

    def __init__(self, settings: Settings, *, stream_group: str = "recs-stream",
                 loader_group: str = "recs-loader", blend_group: str | None = BLEND_GROUP,
                 clock: Callable[[], float] = time.time, rest_url: str | None = None) -> None:
        from state.redis_connect import sync_client

        topics = settings.topics
        self.groups = {f"{stream_group}-interactions": topics.interactions,
                       f"{stream_group}-items": topics.items, loader_group: topics.updates}
        # the blend learner: optional (blend_group None: not watched)
        self.optional = {blend_group: topics.interactions} if blend_group else {}
        self.settings, self.clock = settings, clock
        self.flink = FlinkRest(rest_url or f"http://127.0.0.1:{settings.flink_rest_port}")
        # one Redis or a Redis Cluster (redis+cluster://): the freshness hash is one key either way
        self.redis = sync_client(settings.redis_url, socket_timeout=TIMEOUT_S)
        self._kafka: KafkaSide | None = None
        self._catalogue: tuple[float, int] | None = None  # (taken at, count)
        self._failing: dict[str, str] = {}  # step -> its last error (logged once, not each time)

    def _kafka_side(self) -> KafkaSide:
        if self._kafka is None:
            self._kafka = KafkaSide(self.settings.kafka_bootstrap, self.groups,
                                    self.settings.topics.dlq, self.optional)
        return self._kafka

    def collect(self) -> Snapshot:
        began = time.monotonic()
        up: dict[str, bool] = {}
        readings: dict[str, Any] = {}
        steps: list[tuple[str, str, Callable[[], Any]]] = [
            ("kafka", "lags", lambda: tuple(self._kafka_side().lags())),
            ("kafka", "members", lambda: self._kafka_side().members()),
            ("dlq", "dlq", lambda: self._kafka_side().read_dlq()),
            ("flink", "flink", self._flink),
            ("redis", "freshness_ms", self._freshness),
            ("redis", "catalogue_items", self._catalogue_items),
        ]
        for source, name, step in steps:
            try:
                readings[name] = step()
                up.setdefault(source, True)
                if self._failing.pop(name, None) is not None:
                    log.info("monitor: reading %s from %s works again", name, source)
            except Exception as exc:  # a source being down is what the monitor reports
                up[source] = False
                error = f"{type(exc).__name__}: {exc}"
                if self._failing.get(name) != error:
                    log.warning("monitor: reading %s from %s failed: %s", name, source, error)
                self._failing[name] = error
        checkpoints, operators = readings.pop("flink", (None, {}))
        up["flink"] = up.get("flink", False) and checkpoints is not None
        return Snapshot(taken_s=self.clock(), duration_s=time.monotonic() - began, up=up,
                        checkpoints=checkpoints, operators=operators, **readings)

    def _flink(self) -> tuple[Checkpoints | None, dict[str, OperatorReading]]:
        jid = self.flink.running_job()
        if jid is None:
            return None, {}
        return self.flink.checkpoints(jid), self.flink.operators(jid)

    def _freshness(self) -> dict[str, int]:
        from state.keys import FRESHNESS_KEY

        raw = cast(dict[bytes, bytes], self.redis.hgetall(FRESHNESS_KEY))
        return {k.decode(): int(v) for k, v in raw.items()}

    def _catalogue_items(self) -> int:
        """Keys under ``item:`` (tombstones of deleted items included for their day), counted
        by SCAN at most once per CATALOGUE_EVERY_S and capped at CATALOGUE_MAX_SCANS calls."""
        now = time.monotonic()
        if self._catalogue is not None and now - self._catalogue[0] < CATALOGUE_EVERY_S:
            return self._catalogue[1]
        import redis.cluster

        count = 0
        if isinstance(self.redis, redis.cluster.RedisCluster):  # each master holds its share
            for node in self.redis.get_primaries():  # type: ignore[no-untyped-call]
                count += _count_items(self.redis.get_redis_connection(node))
        else:
            count = _count_items(self.redis)
        self._catalogue = (now, count)
        return count

    def close(self) -> None:
        if self._kafka is not None:
            self._kafka.close()
        self.redis.close()


def _count_items(client: Any) -> int:
    """Keys under ``item:`` on one Redis (one node of a cluster), capped at CATALOGUE_MAX_SCANS
    SCAN calls."""
    count, cursor = 0, 0
    for _ in range(CATALOGUE_MAX_SCANS):
        cursor, found = cast(tuple[int, list[bytes]], client.scan(
            cursor, match=f"{PREFIX}{KIND_ITEM}:*", count=1000))
        count += len(found)
        if cursor == 0:
            break
    return count


class SnapshotCollector(Collector):
    """Renders the latest :class:`Snapshot`; ages are taken against ``clock`` at scrape."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.snapshot: Snapshot | None = None

    def collect(self) -> Iterable[Metric]:
        return [] if self.snapshot is None else render(self.snapshot, self.clock())


def _gauge(name: str, doc: str, labels: list[str],
           rows: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family


def render(s: Snapshot, now_s: float) -> list[Metric]:
    """The metric families of one reading, ages taken at ``now_s``."""
    part = ["group", "topic", "partition"]

    def age(ms: int | None) -> float:
        return 0.0 if ms is None else max(0.0, now_s - ms / 1000.0)

    def keys(p: PartitionLag) -> list[str]:
        return [p.group, p.topic, str(p.partition)]

    out: list[Metric] = [
        _gauge("recs_monitor_up", "1 when the last read of the source succeeded", ["source"],
               (([k], float(v)) for k, v in sorted(s.up.items()))),
        _gauge("recs_monitor_last_collect_timestamp_seconds", "when the last reading was taken",
               [], [([], s.taken_s)]),
        _gauge("recs_monitor_collect_duration_seconds", "time the last reading took", [],
               [([], s.duration_s)]),
        _gauge("recs_kafka_consumer_lag_records", "end offset - committed offset", part,
               ((keys(p), p.lag_records) for p in s.lags)),
        _gauge("recs_kafka_consumer_lag_seconds",
               "now - timestamp of the first uncommitted record (0 when caught up)", part,
               ((keys(p), age(p.first_uncommitted_ms) if p.lag_records else 0.0)
                for p in s.lags)),
        _gauge("recs_kafka_end_offset", "end offset of the partition", part,
               ((keys(p), p.end) for p in s.lags)),
        _gauge("recs_kafka_committed_offset", "offset the group committed", part,
               ((keys(p), p.committed) for p in s.lags if p.committed is not None)),
        _gauge("recs_kafka_group_members", "consumers in a group that need not run (the blend "
               "learner's); 0: not running", ["group"],
               (([g], n) for g, n in sorted(s.members.items()))),
        _gauge("recs_redis_data_age_seconds", "now - newest event time in Redis, by writer",
               ["writer"], (([w], age(ms)) for w, ms in sorted(s.freshness_ms.items()))),
    ]
    dlq = CounterMetricFamily("recs_dlq_events", "records in the DLQ topic, by reason",
                              labels=["reason"])
    for reason, n in sorted(s.dlq.items()):
        dlq.add_metric([reason], n)
    out.append(dlq)
    if s.catalogue_items is not None:
        out.append(_gauge("recs_catalogue_items", "items with catalogue metadata in Redis", [],
                          [([], s.catalogue_items)]))
    ops = sorted(s.operators.items())
    events = CounterMetricFamily("recs_stream_events", "records through each project operator",
                                 labels=["operator", "direction"])
    late = CounterMetricFamily("recs_stream_late_events", "events behind the watermark",
                               labels=["operator"])
    for name, r in ops:
        events.add_metric([name, "in"], r.events_in)
        events.add_metric([name, "out"], r.events_out)
        late.add_metric([name], r.late)
    out += [events, late, _gauge(
        "recs_stream_watermark_lag_seconds", "now - the operator's input watermark",
        ["operator"], (([name], 0.0 if r.watermark_ms >= END_OF_INPUT else age(r.watermark_ms))
                       for name, r in ops
                       if r.watermark_ms is not None and r.watermark_ms > NO_WATERMARK))]
    ck = s.checkpoints
    if ck is not None:
        failed = CounterMetricFamily("recs_checkpoints_failed", "failed checkpoints of the job",
                                     value=ck.failed)
        out.append(failed)
        if ck.completed_ms is not None:
            out += [
                _gauge("recs_checkpoint_duration_seconds", "duration of the last completed "
                       "checkpoint", [], [([], ck.duration_s or 0.0)]),
                _gauge("recs_checkpoint_size_bytes", "state size of the last completed "
                       "checkpoint", [], [([], float(ck.size_bytes or 0))]),
                _gauge("recs_checkpoint_age_seconds", "now - completion of the last completed "
                       "checkpoint", [], [([], age(ck.completed_ms))]),
            ]
    return out


def main(argv: list[str]) -> int:
    from prometheus_client import start_http_server

    parser = argparse.ArgumentParser(prog="recs monitor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between readings")
    parser.add_argument("--port", type=int, default=None,
                        help="default RECS_MONITOR_PORT; 0 picks a free port and prints it")
    parser.add_argument("--host", default=None, help="bind address (default RECS_HTTP_HOST)")
    parser.add_argument("--stream-group", default="recs-stream",
                        help="the job's --group-id (its groups add -interactions and -items)")
    parser.add_argument("--loader-group", default="recs-loader")
    parser.add_argument("--blend-group", default=BLEND_GROUP,
                        help="the blend learner's --group ('' to not watch it)")
    parser.add_argument("--once", action="store_true", help="print one reading and exit")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error(f"--interval must be positive, got {args.interval}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # failures are logged once, below
    settings = Settings.from_env()
    monitor = Monitor(settings, stream_group=args.stream_group, loader_group=args.loader_group,
                      blend_group=args.blend_group or None)
    collector = SnapshotCollector()
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    try:
        if args.once:
            collector.snapshot = monitor.collect()
            sys.stdout.write(generate_latest(registry).decode())
            return 0
        host = args.host or settings.http_host
        port = settings.monitor_port if args.port is None else args.port
        server, _ = start_http_server(port, host, registry)
        print(f"recs monitor: http://{host}:{server.server_port}/metrics", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
        try:
            while not stop.is_set():
                collector.snapshot = monitor.collect()
                stop.wait(args.interval)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
        return 0
    finally:
        monitor.close()
