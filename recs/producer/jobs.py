"""Publishing jobs, one per process: a synthetic storefront's share or a replay's user shard.

Jobs are frozen dataclasses, so they pickle to ``spawn``-ed workers; each worker builds its own
producer. Users are split between processes (by index for synthetic traffic, by a hash of the
user id for replays), so per-user order is kept.
"""

from __future__ import annotations

import multiprocessing
import time
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from recs import datasets
from recs.producer.config import ProducerConfig, Record
from recs.producer.pacing import replay_paced, until
from recs.producer.publisher import PublishStats, publish
from recs.synthetic import Storefront
from schemas.events import Interaction


def user_shard(user_id: str, shards: int) -> int:
    """The process (0..shards-1) that publishes ``user_id``'s events: stable across runs.

    >>> [user_shard(u, 4) for u in ("u1", "u2", "u3")]
    [2, 0, 2]
    """
    return zlib.crc32(user_id.encode()) % shards


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
    type_map: str | None = None  # csv only: raw=type,... (recs.datasets.parse_type_map)


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
        records = until(records, time.monotonic() + job.seconds)
    return publish(records, job.config.bootstrap, job.topic, job.rate,
                   items_topic=job.items_topic, retime=job.retime, config=job.config)


def load_replay(job: ReplayJob) -> datasets.Dataset:
    return datasets.load(job.dataset, Path(job.path), limit=job.limit, columns=job.columns,
                         ts_unit=job.ts_unit, delimiter=job.delimiter, type_map=job.type_map)


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
