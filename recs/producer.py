"""Publish interactions and item upserts to Kafka: synthetic traffic, log replays, catalogues.

Records are the canonical JSON of :meth:`Interaction.to_json` / :meth:`ItemUpsert.to_json`, keyed
by ``user_id`` (interactions) or ``item_id`` (items), so one user's events stay in order on one
partition and the compacted ``items`` topic keeps the newest upsert per item.

Library use (the demo, the benchmarks and the tests call these)::

    stats = publish(events, bootstrap, "interactions", rate=5000, items_topic="items")
    stats = publish_items(shop.catalogue(), bootstrap, "items")

Command line (``recs produce ...``; every run ends with a one-line JSON summary on stdout)::

    recs produce synthetic --rate 1000 --seconds 30 [--items N --users N --seed S]
    recs produce replay --dataset rsc15 --path ../shared/data/rsc15-sample --speedup 100
    recs produce catalogue [--items N --seed S]

Throughput: kafka-python encodes records in pure Python. Measured here with a local broker on
the same two cores (synthetic events generated, encoded and sent): about 11k events per
CPU-second, 18k with the ``crc32c`` package installed (kafka-python then uses its C CRC instead of
a pure-Python one), against about 70k with ``--client confluent`` (``confluent-kafka``). The
synthetic generator alone makes about 130k events per CPU-second. ``--processes N`` splits the
users over ``N`` processes (by index for synthetic traffic, by a hash of the user id for
replays), each publishing ``1/N`` of the rate, so per-user order is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import multiprocessing
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

import orjson

from recs import datasets
from recs.settings import Settings
from recs.synthetic import Storefront
from schemas.events import MIN_TS_MS, Interaction, ItemUpsert

log = logging.getLogger("recs.producer")

DEFAULT_LINGER_MS: Final = 20
DEFAULT_BATCH_SIZE: Final = 512 * 1024
MIN_SLEEP_S: Final = 0.002  # sleeping less than this costs more than it paces

Record = Interaction | ItemUpsert


# --- configuration and statistics ----------------------------------------------------------------

CLIENTS: Final = ("kafka-python", "confluent")


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How records are sent. ``acks`` is ``0``, ``1`` (default: leader only) or ``"all"``;
    idempotence is switched on with ``acks="all"`` only (kafka-python requires that pairing).

    ``client`` is ``kafka-python`` (the project's dependency) or ``confluent`` (librdkafka via
    ``confluent-kafka``, when installed: an order of magnitude cheaper per record)."""

    bootstrap: str
    acks: int | str = 1
    linger_ms: int = DEFAULT_LINGER_MS
    batch_size: int = DEFAULT_BATCH_SIZE
    compression: str | None = None
    client: str = "kafka-python"

    def _acks(self) -> int | str:
        return "all" if self.acks in ("all", -1, "-1") else int(self.acks)

    def kafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``kafka.KafkaProducer``."""
        acks = self._acks()
        return {
            "bootstrap_servers": self.bootstrap,
            "acks": acks,
            "enable_idempotence": acks == "all",
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": self.compression,
            "max_request_size": max(1024 * 1024, self.batch_size * 2),
        }

    def confluent_conf(self) -> dict[str, Any]:
        """Configuration for ``confluent_kafka.Producer``."""
        acks = self._acks()
        return {
            "bootstrap.servers": self.bootstrap,
            "acks": -1 if acks == "all" else acks,
            "enable.idempotence": acks == "all",
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "compression.type": self.compression or "none",
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
        }


class Sender(Protocol):
    """The little the publisher needs from a Kafka client."""

    failures: list[BaseException]

    def send(self, topic: str, key: bytes, value: bytes) -> None: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float) -> None: ...


class KafkaPythonSender:
    """``kafka-python``: pure Python, about 20-65k records/s per process (install ``crc32c``,
    which it picks up automatically: its pure-Python CRC otherwise costs about 40 µs a record)."""

    def __init__(self, config: ProducerConfig) -> None:
        from kafka import KafkaProducer

        self.failures: list[BaseException] = []
        self._producer = KafkaProducer(**config.kafka_kwargs())

    def _on_error(self, exc: BaseException) -> None:
        if not self.failures:
            log.error("kafka delivery failed error=%s", exc)
        self.failures.append(exc)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value).add_errback(self._on_error)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class ConfluentSender:
    """``confluent-kafka`` (librdkafka): enqueueing costs a microsecond or two per record."""

    def __init__(self, config: ProducerConfig) -> None:
        from confluent_kafka import Producer

        self.failures: list[BaseException] = []
        self._producer = Producer({**config.confluent_conf(), "on_delivery": self._on_delivery})
        self._sent = 0

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            if not self.failures:
                log.error("kafka delivery failed error=%s", err)
            self.failures.append(RuntimeError(str(err)))

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
        self._sent += 1
        if self._sent & 1023 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            self.failures.append(TimeoutError(f"{left} records undelivered after {timeout_s} s"))

    def close(self, timeout_s: float) -> None:
        self.flush(timeout_s)


def make_producer(config: ProducerConfig) -> Sender:
    """A :class:`Sender` for ``config`` (clients are imported lazily: the CLI help stays fast)."""
    if config.client == "kafka-python":
        return KafkaPythonSender(config)
    if config.client == "confluent":
        return ConfluentSender(config)
    raise ValueError(f"producer: client must be one of {list(CLIENTS)}, got {config.client!r}")


@dataclass(slots=True)
class PublishStats:
    """What a publishing run did. ``seconds`` is wall time including the final flush."""

    events: int = 0
    items: int = 0
    seconds: float = 0.0
    errors: int = 0
    slept: float = 0.0

    @property
    def rate(self) -> float:
        """Achieved interactions per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "items": self.items, "seconds": round(self.seconds, 3),
                "rate": round(self.rate, 1), "errors": self.errors}

    @classmethod
    def combine(cls, parts: Sequence[PublishStats], seconds: float) -> PublishStats:
        """Totals of parallel runs; ``seconds`` is the wall time they took together."""
        return cls(events=sum(p.events for p in parts), items=sum(p.items for p in parts),
                   seconds=seconds, errors=sum(p.errors for p in parts),
                   slept=sum(p.slept for p in parts))


# --- pacing --------------------------------------------------------------------------------------

class TokenBucket:
    """Rate control: :meth:`take` returns at once while tokens last and sleeps off any debt.

    Tokens refill at ``rate`` per second up to ``burst``. A take may drive the bucket into debt;
    the caller then sleeps until the debt is repaid, but never less than ``min_sleep`` (short
    sleeps overshoot, and the refill credits the overshoot back up to ``burst``), so the long-run
    rate is ``rate`` with one sleep per ``rate * min_sleep`` records at most. Clock and sleep are
    injected for tests.

    >>> now = [0.0]
    >>> bucket = TokenBucket(100, clock=lambda: now[0],
    ...                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for _ in range(500):
    ...     _ = bucket.take()
    >>> round(now[0], 1)
    5.0
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 min_sleep: float = MIN_SLEEP_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"token bucket: rate must be a finite number > 0, got {rate}")
        self.rate = rate
        self.min_sleep = min_sleep
        self.burst = burst if burst is not None else max(1.0, rate * 4 * min_sleep)
        self._clock, self._sleep = clock, sleep
        self._tokens = 1.0
        self._last = clock()

    def take(self, n: float = 1.0) -> float:
        """Spend ``n`` tokens, sleeping when in debt; returns the seconds slept."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
        self._last = now
        self._tokens = tokens
        if tokens >= 0:
            return 0.0
        wait = max(-tokens / self.rate, self.min_sleep)
        self._sleep(wait)
        return wait


def replay_paced(events: Iterable[Record], speedup: float, *, origin_ts: int | None = None,
                 start: float | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[Record]:
    """Yield time-sorted records at their event-time gaps divided by ``speedup``.

    ``speedup`` ``0`` or ``inf`` means as fast as possible. Record ``r`` is due at ``start +
    (r.ts - origin_ts) / 1000 / speedup`` (defaults: now and the first record's time); parallel
    replayers given the same ``start`` and ``origin_ts`` stay in step.

    >>> now = [100.0]
    >>> evs = [Interaction(f"e{d}", "view", "u", "s", 1_000_000_000_000 + d, "i")
    ...        for d in (0, 5000, 5001)]
    >>> released = [(e.event_id, now[0]) for e in replay_paced(
    ...     evs, 10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))]
    >>> released
    [('e0', 100.0), ('e5000', 100.5), ('e5001', 100.5)]
    """
    fast = speedup == 0 or math.isinf(speedup)
    if speedup < 0 or math.isnan(speedup):
        raise ValueError(f"replay: speedup must be > 0, 0 or inf, got {speedup}")
    t0 = clock() if start is None else start
    for rec in events:
        if not fast:
            if origin_ts is None:
                origin_ts = rec.ts
            lag = t0 + (rec.ts - origin_ts) / 1000.0 / speedup - clock()
            if lag >= MIN_SLEEP_S:
                sleep(lag)
        yield rec


def _until(records: Iterable[Record], deadline: float,
           clock: Callable[[], float] = time.monotonic) -> Iterator[Record]:
    for i, rec in enumerate(records):
        if i & 255 == 0 and clock() >= deadline:
            return
        yield rec


# --- publishing ----------------------------------------------------------------------------------

def _encode(rec: Record, retime: bool) -> bytes:
    """The record's canonical JSON; with ``retime``, its ``ts`` replaced by the wall clock (ms)
    (patching the dict is about ten times cheaper than rebuilding the frozen event)."""
    if retime:
        return orjson.dumps({**rec.to_dict(), "ts": int(time.time() * 1000)})
    return rec.to_json()


def publish(events: Iterable[Record], bootstrap: str, topic: str, rate: float | None = None,
            *, items_topic: str | None = None, retime: bool = False,
            config: ProducerConfig | None = None, producer: Sender | None = None,
            flush_timeout_s: float = 120.0) -> PublishStats:
    """Send interactions to ``topic`` (and any item upserts among them to ``items_topic``).

    ``rate`` (interactions per second) paces the loop with a :class:`TokenBucket`; ``None`` or
    ``0`` sends as fast as possible. ``retime`` stamps each record with the wall-clock
    millisecond at which it is sent (after pacing), so the engine's freshness (event time to
    visible effect) can be measured on an old log or a synthetic stream. Pass ``producer`` to
    reuse one (it is flushed, not closed); otherwise one is made from ``config`` (default:
    :class:`ProducerConfig` for ``bootstrap``) and closed at the end. Delivery failures are
    counted in ``errors`` (the first is logged).
    """
    own = producer is None
    sender = producer if producer is not None else make_producer(
        config or ProducerConfig(bootstrap))
    failed_before = len(sender.failures)
    stats = PublishStats()
    bucket = TokenBucket(rate) if rate else None
    take = bucket.take if bucket is not None else None
    send = sender.send
    started = time.perf_counter()
    slept = 0.0
    n_events = n_items = 0
    try:
        for rec in events:
            if type(rec) is Interaction:
                if take is not None:
                    slept += take()
                send(topic, rec.user_id.encode(), _encode(rec, retime))
                n_events += 1
            elif isinstance(rec, ItemUpsert):
                if items_topic is None:
                    raise ValueError(f"publish: got an item upsert ({rec.item_id!r}) but no "
                                     "items_topic to send it to")
                send(items_topic, rec.item_id.encode(), _encode(rec, retime))
                n_items += 1
            else:
                raise TypeError(f"publish: expected Interaction or ItemUpsert, got "
                                f"{type(rec).__name__}")
        sender.flush(flush_timeout_s)
    finally:
        if own:
            sender.close(flush_timeout_s)
    stats.events, stats.items, stats.slept = n_events, n_items, slept
    stats.seconds = time.perf_counter() - started
    stats.errors = len(sender.failures) - failed_before
    return stats


def publish_items(items: Iterable[ItemUpsert], bootstrap: str, topic: str = "items", *,
                  config: ProducerConfig | None = None,
                  producer: Sender | None = None) -> PublishStats:
    """Send item upserts to ``topic`` keyed by ``item_id``, as fast as possible."""
    return publish(items, bootstrap, topic, None, items_topic=topic, config=config,
                   producer=producer)


def user_shard(user_id: str, shards: int) -> int:
    """The process (0..shards-1) that publishes ``user_id``'s events: stable across runs.

    >>> [user_shard(u, 4) for u in ("u1", "u2", "u3")]
    [2, 0, 2]
    """
    return zlib.crc32(user_id.encode()) % shards


# --- jobs (one per process) ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SyntheticJob:
    config: ProducerConfig
    topic: str
    items_topic: str
    seed: int
    n_items: int
    n_users: int
    n_categories: int
    events: int
    rate: float | None
    seconds: float | None
    start_ts: int | None
    retime: bool
    shard: int = 0
    shards: int = 1


@dataclass(frozen=True, slots=True)
class ReplayJob:
    config: ProducerConfig
    topic: str
    items_topic: str
    dataset: str
    path: str
    speedup: float
    retime: bool
    limit: int | None
    columns: str | None
    ts_unit: str
    delimiter: str
    start: float
    shard: int = 0
    shards: int = 1


def storefront_for(job: SyntheticJob) -> Storefront:
    """The job's storefront. Event time advances at the job's rate, so with pacing it tracks the
    wall clock; event ids carry the start time, so two runs do not share ids."""
    prefix = f"syn{job.seed}-{job.start_ts}:" if job.start_ts is not None else None
    return Storefront(seed=job.seed, n_items=job.n_items, n_users=job.n_users,
                      n_categories=job.n_categories, rate=job.rate or 1000.0, id_prefix=prefix)


def run_synthetic(job: SyntheticJob) -> PublishStats:
    shop = storefront_for(job)
    start_ts = job.start_ts if job.start_ts is not None else int(time.time() * 1000)
    records: Iterable[Record] = shop.stream(job.events, start_ts, shard=(job.shard, job.shards))
    if job.seconds is not None and not job.rate:
        records = _until(records, time.monotonic() + job.seconds)
    return publish(records, job.config.bootstrap, job.topic, job.rate,
                   items_topic=job.items_topic, retime=job.retime, config=job.config)


def load_replay(job: ReplayJob) -> datasets.Dataset:
    return datasets.load(job.dataset, Path(job.path), limit=job.limit, columns=job.columns,
                         ts_unit=job.ts_unit, delimiter=job.delimiter)


def run_replay(job: ReplayJob, data: datasets.Dataset | None = None) -> PublishStats:
    data = data or load_replay(job)
    events: Iterable[Interaction] = data.events
    if job.shards > 1:
        events = (e for e in events if user_shard(e.user_id, job.shards) == job.shard)
    origin = data.events[0].ts if data.events else None
    records = replay_paced(events, job.speedup, origin_ts=origin, start=job.start)
    return publish(records, job.config.bootstrap, job.topic, None, items_topic=job.items_topic,
                   retime=job.retime, config=job.config)


def _run_job(job: SyntheticJob | ReplayJob) -> PublishStats:
    return run_synthetic(job) if isinstance(job, SyntheticJob) else run_replay(job)


def run_parallel(jobs: Sequence[SyntheticJob | ReplayJob]) -> PublishStats:
    """Run one job per process (``spawn``: each builds its own producer) and sum the stats.

    A worker that dies fails the whole run (``BrokenProcessPool``) rather than being replaced.
    """
    started = time.perf_counter()
    if len(jobs) == 1:
        parts = [_run_job(jobs[0])]
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(jobs), mp_context=ctx) as pool:
            parts = list(pool.map(_run_job, jobs))
    return PublishStats.combine(parts, time.perf_counter() - started)


# --- command line --------------------------------------------------------------------------------

def _speedup(text: str) -> float:
    value = float(text)
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a number >= 0 or 'inf', got {text!r}")
    return value


def _parser(settings: Settings) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap", default=settings.kafka_bootstrap,
                        help="Kafka bootstrap servers (default: from the settings)")
    common.add_argument("--topic", default=settings.topics.interactions)
    common.add_argument("--items-topic", default=settings.topics.items)
    common.add_argument("--acks", default="1", choices=["0", "1", "all"])
    common.add_argument("--linger-ms", type=int, default=DEFAULT_LINGER_MS)
    common.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
    common.add_argument("--compression", default=None,
                        choices=["gzip", "snappy", "lz4", "zstd"])
    common.add_argument("--client", default="kafka-python", choices=list(CLIENTS),
                        help="Kafka client library (confluent needs confluent-kafka installed)")
    common.add_argument("--processes", type=int, default=1,
                        help="publish from N processes, users split between them")
    shop = argparse.ArgumentParser(add_help=False)
    shop.add_argument("--items", type=int, default=10_000, help="catalogue size")
    shop.add_argument("--users", type=int, default=10_000)
    shop.add_argument("--categories", type=int, default=30)
    shop.add_argument("--seed", type=int, default=0)

    parser = argparse.ArgumentParser(prog="recs produce", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    syn = sub.add_parser("synthetic", parents=[common, shop],
                         help="a synthetic storefront at a target rate")
    syn.add_argument("--rate", type=float, default=1000.0,
                     help="interactions per second (0 = as fast as possible)")
    syn.add_argument("--seconds", type=float, default=30.0)
    syn.add_argument("--events", type=int, default=None,
                     help="number of interactions (default: rate x seconds)")
    syn.add_argument("--start-ts", type=int, default=None,
                     help="synthetic event times starting at this epoch ms (default: each "
                     "event is stamped with the wall clock when sent)")
    syn.add_argument("--no-catalogue", action="store_true",
                     help="do not publish the catalogue first")
    rep = sub.add_parser("replay", parents=[common], help="replay a public log in time order")
    rep.add_argument("--dataset", required=True, choices=list(datasets.DATASETS))
    rep.add_argument("--path", required=True, type=Path)
    rep.add_argument("--speedup", type=_speedup, default=math.inf,
                     help="event-time gaps divided by X (0 or inf = as fast as possible)")
    rep.add_argument("--retime", action="store_true",
                     help="rewrite event times to the wall clock when sent")
    rep.add_argument("--limit", type=int, default=None, help="read at most N events per file")
    rep.add_argument("--columns", "--map", dest="columns", default=None,
                     help="csv only: user=COL,item=COL,ts=COL[,type=,session=,value=]")
    rep.add_argument("--ts-unit", default="s", choices=["s", "ms", "us", "iso"])
    rep.add_argument("--delimiter", default=",")
    rep.add_argument("--no-items", action="store_true", help="do not publish item metadata")
    cat = sub.add_parser("catalogue", parents=[common, shop],
                         help="publish the synthetic catalogue only")
    cat.add_argument("--ts", type=int, default=None, help="upsert time, epoch ms (default: now)")
    return parser


def _config(args: argparse.Namespace) -> ProducerConfig:
    return ProducerConfig(bootstrap=args.bootstrap, acks=args.acks, linger_ms=args.linger_ms,
                          batch_size=args.batch_size, compression=args.compression,
                          client=args.client)


def _summary(stats: PublishStats, **extra: Any) -> None:
    sys.stdout.write(orjson.dumps({**stats.to_dict(), **extra}).decode() + "\n")
    sys.stdout.flush()


def _main_synthetic(args: argparse.Namespace, config: ProducerConfig
                    ) -> tuple[PublishStats, float]:
    rate = args.rate or None
    procs = max(1, args.processes)
    if args.events is not None:
        n, deadline = args.events, None
    elif rate:
        n, deadline = int(rate * args.seconds), None
    else:
        n, deadline = sys.maxsize, args.seconds
    start_ts = args.start_ts if args.start_ts is not None else int(time.time() * 1000)
    base = SyntheticJob(config, args.topic, args.items_topic, args.seed, args.items, args.users,
                        args.categories, n, rate / procs if rate else None, deadline, start_ts,
                        args.start_ts is None, 0, procs)
    began = time.perf_counter()
    catalogue = PublishStats()
    if not args.no_catalogue:
        catalogue = publish_items(storefront_for(base).catalogue(start_ts), config.bootstrap,
                                  args.items_topic, config=config)
    setup = time.perf_counter() - began
    share = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    jobs = [dataclasses.replace(base, shard=i, events=n if deadline else share[i])
            for i in range(procs)]
    stats = run_parallel(jobs)
    stats.items += catalogue.items
    stats.errors += catalogue.errors
    return stats, setup


def _main_replay(args: argparse.Namespace, config: ProducerConfig
                 ) -> tuple[PublishStats, float]:
    began = time.perf_counter()
    procs = max(1, args.processes)
    job = ReplayJob(config, args.topic, args.items_topic, args.dataset, str(args.path),
                    args.speedup, args.retime, args.limit, args.columns, args.ts_unit,
                    args.delimiter, 0.0, 0, procs)
    data = load_replay(job)
    log.info("loaded dataset=%s events=%d items=%d seconds=%.2f", data.name, len(data.events),
             len(data.items), time.perf_counter() - began)
    if data.events and data.events[0].ts < MIN_TS_MS and not args.retime:
        log.warning("dataset=%s starts at ts=%d, before the event contract's minimum %d: the "
                    "engine will reject these events; use --retime", data.name,
                    data.events[0].ts, MIN_TS_MS)
    items = PublishStats()
    if data.items and not args.no_items:
        upserts: Iterable[ItemUpsert] = data.items
        if args.retime:
            now = int(time.time() * 1000)
            upserts = (dataclasses.replace(i, ts=now) for i in data.items)
        items = publish_items(upserts, config.bootstrap, args.items_topic, config=config)
    setup = time.perf_counter() - began
    job = dataclasses.replace(job, start=time.time())
    if procs == 1:
        stats = run_replay(job, data)
    else:
        del data  # each process loads its own copy
        stats = run_parallel([dataclasses.replace(job, shard=i) for i in range(procs)])
    stats.items += items.items
    stats.errors += items.errors
    return stats, setup


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    args = _parser(settings).parse_args(argv)
    config = _config(args)
    from kafka.errors import KafkaError

    try:
        if args.mode == "synthetic":
            stats, setup = _main_synthetic(args, config)
            _summary(stats, mode="synthetic", target_rate=args.rate, processes=args.processes,
                     setup_seconds=round(setup, 3))
        elif args.mode == "replay":
            stats, setup = _main_replay(args, config)
            _summary(stats, mode="replay", dataset=args.dataset, speedup=str(args.speedup),
                     processes=args.processes, setup_seconds=round(setup, 3))
        else:
            ts = args.ts if args.ts is not None else int(time.time() * 1000)
            shop = Storefront(seed=args.seed, n_items=args.items, n_users=args.users,
                              n_categories=args.categories)
            stats = publish_items(shop.catalogue(ts), config.bootstrap, args.items_topic,
                                  config=config)
            _summary(stats, mode="catalogue")
    except (datasets.DatasetError, ValueError) as exc:
        print(f"recs produce: {exc}", file=sys.stderr)
        return 2
    except KafkaError as exc:
        print(f"recs produce: Kafka at {args.bootstrap} (topics {args.topic!r}, "
              f"{args.items_topic!r}): {exc}; is the broker up and do the topics exist?",
              file=sys.stderr)
        return 1
    return 1 if stats.errors else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
