"""The update loader: ``recs.updates`` -> Redis, batched, versioned, idempotent.

    recs load [--idle-exit SECONDS] [--metrics-port PORT]

It polls a batch, keeps the newest update per key, applies the batch in one Lua call per 500 keys
(:class:`state.redis_store.RedisStore`), records the newest event time applied in the freshness
hash, and only then commits the consumer offsets. A crash replays at most the uncommitted batch,
which the version check makes harmless.

Metrics (``GET /metrics`` on ``RECS_LOADER_METRICS_PORT``, 0 = off; see docs/observability.md):
``recs_freshness_seconds{kind}``, the time from an update's event time to its write in Redis,
observed once per key per batch (the update the batch writes, after per-key coalescing, whether
or not the version check let it through: the store reports only how many it applied), with
buckets counted by bisection rather than ``Histogram.observe`` (a tenth of the cost per update);
counters of records, applied updates, malformed records and batches; and the consumer's lag on
``recs.updates`` from the fetch positions the consumer already knows (no extra requests).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from recs.settings import Settings
from state.keys import split_key
from state.records import Update
from state.store import Store, newest_per_key

log = logging.getLogger(__name__)
WRITER = "stream"
FRESHNESS_BUCKETS: Final = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
                            3600.0, 86_400.0)
LAG_EVERY_S: Final = 1.0
STALL_S: Final = 60.0  # a Kafka client call blocked this long is a stalled client (see run)


@dataclass(slots=True)
class LoaderStats:
    records: int = 0
    applied: int = 0
    malformed: int = 0
    batches: int = 0
    consumer_restarts: int = 0  # stalled consumers replaced (StallWatchdog)
    max_as_of: int = 0
    started: float = field(default_factory=time.monotonic)
    first_batch_at: float | None = None  # monotonic s: the first batch's start, the last's end
    last_batch_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"records": self.records, "applied": self.applied, "malformed": self.malformed,
                "batches": self.batches, "consumer_restarts": self.consumer_restarts,
                "max_as_of": self.max_as_of,
                "seconds": round(time.monotonic() - self.started, 3)}


class FreshnessHistogram(Collector):
    """``recs_freshness_seconds{kind}``: a Prometheus histogram fed a whole batch at a time."""

    def __init__(self, buckets: Sequence[float] = FRESHNESS_BUCKETS) -> None:
        self.bounds = list(buckets)
        self._counts: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self._lock = threading.Lock()

    def observe_many(self, ages: Iterable[tuple[str, float]]) -> None:
        with self._lock:
            for kind, age in ages:
                counts = self._counts.get(kind)
                if counts is None:
                    counts = self._counts[kind] = [0] * (len(self.bounds) + 1)
                    self._sums[kind] = 0.0
                counts[bisect.bisect_left(self.bounds, age)] += 1
                self._sums[kind] += age

    def collect(self) -> Iterable[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "recs_freshness_seconds", "event time of an update -> written to Redis, by kind",
            labels=["kind"])
        with self._lock:
            snapshot = [(k, list(c), self._sums[k]) for k, c in sorted(self._counts.items())]
        for kind, counts, total in snapshot:
            cumulative, buckets = 0, []
            for bound, n in zip([*map(str, self.bounds), "+Inf"], counts, strict=True):
                cumulative += n
                buckets.append((bound, float(cumulative)))
            family.add_metric([kind], buckets, total)
        yield family


class LoaderMetrics:
    """The loader's Prometheus registry; ``clock`` gives wall-clock seconds (injected)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.records = Counter("recs_loader_records", "records read from recs.updates",
                               registry=r)
        self.applied = Counter("recs_loader_updates_applied",
                               "updates written (not older than the stored version)", registry=r)
        self.malformed = Counter("recs_loader_malformed",
                                 "records that are not valid updates (skipped)", registry=r)
        self.batches = Counter("recs_loader_batches", "batches applied", registry=r)
        self.restarts = Counter("recs_loader_consumer_restarts",
                                "stalled Kafka consumers replaced (a client call blocked for "
                                "stall_s)", registry=r)
        self.lag = Gauge("recs_loader_lag_records",
                         "records of recs.updates not yet read (high watermark - position)",
                         registry=r)
        self.freshness = FreshnessHistogram()
        r.register(self.freshness)

    def observe(self, batch: list[Update], records: int, applied: int, malformed: int) -> None:
        now_ms = self.clock() * 1000.0
        self.records.inc(records)
        self.applied.inc(applied)
        self.malformed.inc(malformed)
        self.batches.inc()
        self.freshness.observe_many((_kind(u.key), (now_ms - u.as_of) / 1000.0) for u in batch)


def _kind(key: str) -> str:
    try:
        return split_key(key)[0]
    except ValueError:
        return "unknown"


def apply_batch(store: Store, raw_values: list[bytes], stats: LoaderStats,
                metrics: LoaderMetrics | None = None) -> None:
    if stats.first_batch_at is None:
        stats.first_batch_at = time.monotonic()
    updates: list[Update] = []
    for raw in raw_values:
        try:
            updates.append(Update.from_wire(raw))
        except (ValueError, orjson.JSONDecodeError) as exc:
            stats.malformed += 1
            log.error("loader: skipping malformed update %r: %s", raw[:120], exc)
    batch = newest_per_key(updates)
    applied = store.apply(batch)
    stats.records += len(raw_values)
    stats.applied += applied
    stats.batches += 1
    if metrics is not None:
        metrics.observe(batch, len(raw_values), applied, len(raw_values) - len(updates))
    if batch:
        newest = max(u.as_of for u in batch)
        if newest > stats.max_as_of:
            stats.max_as_of = newest
            store.mark_fresh(WRITER, newest)
    stats.last_batch_at = time.monotonic()


def partition_lags(consumer: Any) -> dict[Any, int]:
    """Records behind the high watermark per assigned partition (a ``TopicPartition``), from
    what the consumer already knows (the last fetch's high watermark, no request); a partition
    not fetched yet is left out."""
    lags = {}
    for tp in consumer.assignment():
        high = consumer.highwater(tp)
        if high is not None:
            lags[tp] = max(0, high - consumer.position(tp))
    return lags


def _lag(consumer: Any) -> int:
    """Records behind the high watermark, summed over the assigned partitions."""
    return sum(partition_lags(consumer).values())


class ConsumerStalled(Exception):
    """Raised in the main thread when a Kafka client call has not returned for ``stall_s``."""


class StallWatchdog(threading.Thread):
    """Interrupts the loader's main thread when a Kafka client call (poll, commit) it armed for
    has been blocked longer than ``stall_s``: kafka-python can wait forever for a group
    coordinator lookup whose request never completes (``ensure_coordinator_ready`` under
    ``poll``, whatever the poll's timeout; seen here, and reported upstream in several forms).
    The interrupt is a signal to the main thread (``SIGUSR1``), whose handler raises
    :class:`ConsumerStalled` there, inside the blocked call."""

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="loader-stall-watchdog", daemon=True)
        self.stall_s = stall_s
        self.clock = clock
        self.fired = 0
        self.stop = threading.Event()
        self._since: float | None = None
        self._main = threading.main_thread().ident

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        self._since = self.clock()
        try:
            yield
        finally:
            self._since = None

    def run(self) -> None:
        while not self.stop.wait(min(1.0, self.stall_s / 4)):
            since = self._since
            if since is not None and self.clock() - since > self.stall_s and self._main:
                self._since = None
                self.fired += 1
                signal.pthread_kill(self._main, signal.SIGUSR1)


def _raise_stalled(signum: int, frame: Any) -> None:
    raise ConsumerStalled()


TOPIC_WAIT_S: Final = 30.0  # how long a new consumer waits for the topic's partitions


def commit_offsets(consumer: Any, who: str = "loader") -> None:
    """Commit what was polled; a rebalance under way (the group changing, or the topic's
    metadata) refuses the commit, and that is not an error: the batch is in Redis, versioned,
    and whoever owns the partitions next re-applies at most what came after the last commit,
    which the conditional writes ignore. The next poll completes the rebalance."""
    from kafka.errors import CommitFailedError, RebalanceInProgressError

    try:
        consumer.commit()
    except (CommitFailedError, RebalanceInProgressError) as exc:
        log.warning("%s: commit refused during a rebalance (%s); the batch is applied and "
                    "will be re-delivered at most once more, harmlessly", who,
                    type(exc).__name__)



def group_consumer(bootstrap: str, group_id: str, topic: str, reset: str = "earliest",
                   max_poll_records: int = 5000) -> Any:
    """A consumer in ``group_id`` subscribed to ``topic``, committing only when told
    (:func:`commit_offsets`), from the ``reset`` offset (``earliest`` or ``latest``) when the
    group has none; a poll returns at most ``max_poll_records``."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=reset,
        fetch_max_wait_ms=20,
        max_poll_records=max_poll_records,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        # a consumer that subscribes before the topic's metadata is available would otherwise
        # wait for the default refresh (5 min) before it gets its partitions
        metadata_max_age_ms=5_000,
    )
    # Joining the group before the client knows the topic's partitions got none assigned, and
    # kafka-python did not always rejoin once they were known (a loader idle for minutes on a
    # fresh topic): learn them first, then subscribe.
    deadline = time.monotonic() + TOPIC_WAIT_S
    while not consumer.partitions_for_topic(topic) and time.monotonic() < deadline:
        time.sleep(0.2)
    consumer.subscribe([topic])
    return consumer


def _consumer(settings: Settings, group_id: str) -> Any:
    return group_consumer(settings.kafka_bootstrap, group_id, settings.topics.updates)


def run(settings: Settings, store: Store, *, group_id: str = "recs-loader",
        idle_exit_s: float | None = None, max_seconds: float | None = None,
        metrics: LoaderMetrics | None = None, stall_s: float = STALL_S,
        make_consumer: Callable[[Settings, str], Any] = _consumer) -> LoaderStats:
    """Poll, apply, commit until stopped (SIGTERM), idle for ``idle_exit_s`` after its
    partitions were assigned, or ``max_seconds`` after start. A Kafka client call blocked for
    ``stall_s`` (only watched on the main thread) is abandoned and the consumer replaced: the
    offsets are committed only after a batch is written, so the new consumer resumes from the
    last committed batch and the versioned writes make any replayed batch harmless."""
    consumer = make_consumer(settings, group_id)
    stats = LoaderStats()
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    watchdog: StallWatchdog | None = None
    on_main = threading.current_thread() is threading.main_thread()
    if sys.platform != "win32" and on_main:
        signal.signal(signal.SIGTERM, stop)
        previous = signal.signal(signal.SIGUSR1, _raise_stalled)
        watchdog = StallWatchdog(stall_s)
        watchdog.start()
    watch = watchdog.armed if watchdog is not None else contextlib.nullcontext
    last_data = next_lag = time.monotonic()
    try:
        while not stopping:
            try:
                with watch():
                    polled = consumer.poll(timeout_ms=100)
                values = [rec.value for recs in polled.values() for rec in recs]
                now = time.monotonic()
                if metrics is not None and now >= next_lag:
                    metrics.lag.set(_lag(consumer))
                    next_lag = now + LAG_EVERY_S
                if values:
                    apply_batch(store, values, stats, metrics)
                    with watch():
                        commit_offsets(consumer)
                    last_data = now
                elif not consumer.assignment():
                    last_data = now  # idle time counts from when partitions are assigned
                elif idle_exit_s is not None and now - last_data >= idle_exit_s:
                    break
            except ConsumerStalled:
                stats.consumer_restarts += 1
                if metrics is not None:
                    metrics.restarts.inc()
                log.error("loader: a Kafka client call has not returned for %.0f s (stall_s); "
                          "abandoning the consumer and starting a new one in group %r",
                          stall_s, group_id)
                consumer = make_consumer(settings, group_id)  # the stalled one is left behind
                last_data = time.monotonic()
            if max_seconds is not None and time.monotonic() - stats.started >= max_seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if watchdog is not None:
            watchdog.stop.set()
            signal.signal(signal.SIGUSR1, previous)
        consumer.close()
    return stats


def main(argv: list[str]) -> int:
    from state.redis_store import RedisStore

    parser = argparse.ArgumentParser(prog="recs load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group-id", default="recs-loader")
    parser.add_argument("--idle-exit", type=float, default=None,
                        help="exit after this many seconds without updates")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="serve /metrics here (default RECS_LOADER_METRICS_PORT; 0 = off)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    store = RedisStore.from_url(settings.redis_url,
                                session_ttl_s=settings.session_ttl_ms // 1000)
    port = settings.loader_metrics_port if args.metrics_port is None else args.metrics_port
    metrics = serve_metrics(settings.http_host, port)
    stats = run(settings, store, group_id=args.group_id, idle_exit_s=args.idle_exit,
                metrics=metrics)
    sys.stdout.write(orjson.dumps(stats.as_dict()).decode() + "\n")
    return 0


def serve_metrics(host: str, port: int,
                  clock: Callable[[], float] = time.time) -> LoaderMetrics | None:
    """Start ``/metrics`` on ``host:port`` (0 = off). A port already taken only costs the
    metrics: the loader goes on without them, with an error in its log."""
    if port == 0:
        return None
    metrics = LoaderMetrics(clock)
    return metrics if serve_registry(host, port, metrics.registry, "loader",
                                     "loader_metrics_port") else None


def serve_registry(host: str, port: int, registry: CollectorRegistry, who: str,
                   setting: str) -> bool:
    """Serve ``registry`` at ``http://host:port/metrics`` (prometheus_client's server, on a
    daemon thread) for a long-running process; False, with an error naming ``setting`` in the
    log, when the port cannot be bound: a process never stops for its metrics."""
    from prometheus_client import start_http_server

    try:
        start_http_server(port, host, registry)
    except OSError as exc:
        log.error("%s: metrics off: cannot listen on %s:%s (%s): %s", who, host, port, setting,
                  exc)
        return False
    log.info("%s: metrics on http://%s:%s/metrics", who, host, port)
    return True
