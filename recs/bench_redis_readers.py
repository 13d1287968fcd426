"""``python -m recs.bench_pipeline --redis single,cluster``: the homepage through the server's
real Redis readers, one Redis against a Redis Cluster, side by side (:mod:`recs.bench_pipeline`
has the harness and the options).

The bench starts a local Redis and a local Redis Cluster (3 masters, 1 replica each,
:mod:`infra.redis_cluster`) under ``$RECS_RUN_DIR/bench-pipeline``, writes the same envelope
bytes into both, and sends the same requests through :func:`serving.app.open_reader`'s reader
for each URL: the auto-pipelining reader (:mod:`serving.redis_client`) and its cluster form
(:mod:`serving.cluster_reader`), ``--rounds`` times in turn (per reader the round with the
lowest mean is reported, every round's mean beside it: the machine may be shared). After each
round the reader alone is timed on :data:`READS` reads of :data:`READ_KEYS` keys (keys of the
data, none repeated within a read): one read at a time (``read_us``: CPU µs per read, the
syscalls of every node written to and read from included) and :data:`CONCURRENT` reads at a
time (``read_us_concurrent``: what auto-pipelining shares between concurrent requests).
``redis_cpu_us_per_request`` is Redis's own CPU per request (every node of the cluster, the
warm-up's requests counted too; median of the rounds). The services are stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from recs.bench_stream import process_cpu_seconds

if TYPE_CHECKING:
    from recs.bench_pipeline import Data
    from serving.fetch import Reader

LOAD_CHUNK: Final = 2_000  # keys per pipelined write when the bench fills a Redis
READS: Final = 3_000
READ_KEYS: Final = 10
CONCURRENT: Final = 32


class CountedReader:
    """A real reader, its reads counted as :class:`~recs.bench_pipeline.MemoryReader` counts
    them."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.reads = 0
        self.keys_read = 0

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads += 1
        self.keys_read += len(keys)
        return await self.inner.get_raw_many(keys)

    async def freshness(self) -> dict[str, int]:
        return await self.inner.freshness()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@contextlib.contextmanager
def redis_services(kinds: Sequence[str], run_dir: Path, values: dict[str, bytes],
                   pids: dict[str, list[int | None]] | None = None) -> Iterator[dict[str, str]]:
    """A local Redis (``single``) and/or Redis Cluster (``cluster``) holding ``values``, as
    ``{kind: url}`` (and their processes' pids into ``pids``); stopped on exit."""
    from infra.redis_cluster import RedisCluster
    from infra.redis_server import RedisServer
    from state.redis_connect import sync_client

    started: list[RedisServer | RedisCluster] = []
    urls: dict[str, str] = {}
    try:
        for kind in kinds:
            if kind == "single":
                single = RedisServer(run_dir, subdir="redis-bench").start(bind_to_parent=True)
                started.append(single)
                urls[kind] = single.url
                found = [single.pid]
            else:
                cluster = RedisCluster(run_dir).start(bind_to_parent=True)
                started.append(cluster)
                urls[kind] = cluster.url
                found = cluster.pids
            if pids is not None:
                pids[kind] = found
            client = sync_client(urls[kind])
            items = list(values.items())
            for at in range(0, len(items), LOAD_CHUNK):
                pipe = client.pipeline(transaction=False)
                for key, raw in items[at:at + LOAD_CHUNK]:
                    pipe.set(key, raw)
                pipe.execute()
            client.close()
        yield urls
    finally:
        for service in started:
            service.stop()




def compare_readers(kinds: Sequence[str], args: argparse.Namespace, data: Data,
                    paths: Sequence[str], cache: Path) -> dict[str, Any]:
    """The same requests through each Redis reader, ``args.rounds`` times in turn (module
    docstring); per reader the best round, every round's mean, and the reader alone."""
    from recs.bench_pipeline import run

    best: dict[str, dict[str, Any]] = {}
    rounds: dict[str, list[float]] = {k: [] for k in kinds}
    reads: dict[str, dict[str, list[float]]] = {k: {"read_us": [], "read_us_concurrent": []}
                                                for k in kinds}
    redis_cpu: dict[str, list[float]] = {k: [] for k in kinds}
    keys = sorted(data.values)[:READS]
    pids: dict[str, list[int | None]] = {}
    with redis_services(kinds, cache, data.values, pids) as urls:
        for _ in range(args.rounds):
            for kind in kinds:
                before = sum(process_cpu_seconds(p) for p in pids[kind])
                got = asyncio.run(run(data, paths, profile=args.profile, warmup=args.warmup,
                                      cache_dir=cache, core=args.core,
                                      warm_blend=args.warm_blend, redis_url=urls[kind]))
                # Redis's side, over the warm-up and the measured requests alike (every node)
                spent = sum(process_cpu_seconds(p) for p in pids[kind]) - before
                redis_cpu[kind].append(spent / (args.warmup + got["requests"]) * 1e6)
                rounds[kind].append(got["us_per_request"])
                for name, concurrent in (("read_us", 1), ("read_us_concurrent", CONCURRENT)):
                    reads[kind][name].append(asyncio.run(time_reads(urls[kind], keys,
                                                                    concurrent)))
                print(f"bench-pipeline: {kind}: {got['us_per_request']} us/request "
                      f"(hit {got['hit_us']}, miss {got['miss_us']}), wall {got['wall_us']} "
                      f"us; a {READ_KEYS}-key read {reads[kind]['read_us'][-1]:.1f} us, "
                      f"{reads[kind]['read_us_concurrent'][-1]:.1f} us at {CONCURRENT} "
                      f"at once", file=sys.stderr, flush=True)
                if kind not in best or got["us_per_request"] < best[kind]["us_per_request"]:
                    best[kind] = got
    return {"readers": {k: {**best[k], "rounds_us": rounds[k],
                            "redis_cpu_us_per_request": round(statistics.median(redis_cpu[k]), 1),
                            **{name: round(statistics.median(v), 1)
                               for name, v in reads[k].items()}} for k in kinds}}


async def time_reads(url: str, keys: Sequence[str], concurrent: int) -> float:
    """CPU µs per read of :data:`READ_KEYS` keys through the server's reader for ``url``,
    ``concurrent`` reads in flight at a time."""
    from serving.app import open_reader

    reader = open_reader(url)
    span = len(keys) - READ_KEYS

    def slice_of(n: int) -> Sequence[str]:
        at = (n * READ_KEYS) % span
        return keys[at:at + READ_KEYS]

    try:
        await reader.get_raw_many(slice_of(0))  # connected, the slot map loaded
        started = time.thread_time_ns()
        for first in range(0, READS, concurrent):
            await asyncio.gather(*(reader.get_raw_many(slice_of(n))
                                   for n in range(first, min(first + concurrent, READS))))
        return (time.thread_time_ns() - started) / READS / 1000
    finally:
        await reader.close()
