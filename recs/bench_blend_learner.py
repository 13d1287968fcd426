"""How fast the blend learner learns (stream/blend_learner.py), against a local Redis holding
bench-sized state, on one core.

    python -m recs.bench_blend_learner [--events N] [--items N] [--users N] [--learn N]
                                       [--batch N] [--state after|before] [--redis-url URL]

Fills Redis as ``recs bench-serve`` does (the synthetic storefront applied by the reference
runner, online models on: sessions, neighbour and trending lists, user and item vectors), then
feeds the learner the last ``--learn`` interactions of that stream as Kafka would hand them
over (JSON, ``--batch`` per poll, every interest event sampled, read in the learner's chunks)
and times :meth:`~stream.blend_learner.BlendLearner.select` and ``learn``: parsing, three
batched Redis round trips per chunk, the candidates and the model's step; then ``select``
alone at a 1 % sample (the cost of every event polled that is not learned). Kafka itself is
not in the loop (the loader and ``recs bench-stream`` measure consuming).
With ``--state after`` (the default) the events are already applied in Redis, the learner's
worst case for the race (docs/architecture.md); ``--state before`` holds them back, the state
the learner should see: the reads cost the same, the labels and the learned gains differ. The
last line is one JSON object with the machine and its load average before the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

from recs.bench_serve_data import fill
from recs.benchkit import machine, print_result
from state.records import Envelope


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m recs.bench_blend_learner", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events applied to Redis")
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--learn", type=int, default=20_000, help="events fed to the learner")
    p.add_argument("--batch", type=int, default=1000, help="events per poll")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--state", choices=("after", "before"), default="after",
                   help="Redis already counts the learned events (after: the race's worst "
                        "case) or holds them back (before: what the learner should see)")
    p.add_argument("--redis-url", default=None, help="an existing Redis (default: start one)")
    return p


async def _learn(redis_url: str, raws: Sequence[bytes], batch: int) -> dict[str, Any]:
    from serving.experiments import load_experiments
    from serving.model_source import RedisModelSource
    from serving.models import ModelRefresher
    from serving.rules import load_rules
    from stream.blend_learner import BlendLearner
    from stream.blend_learner_run import read_chunks

    source = RedisModelSource.from_url(redis_url)
    models = ModelRefresher(source)
    began = time.perf_counter()
    await models.refresh()
    refresh_s = time.perf_counter() - began
    learner = BlendLearner(load_experiments(None, load_rules(None)), 1.0, vectors=models)
    reads = {"calls": 0, "keys": 0, "s": 0.0}

    async def get_many(keys: Sequence[str]) -> list[Envelope | None]:
        t = time.perf_counter()
        out = await source.get_many(keys)
        reads["s"] += time.perf_counter() - t
        reads["calls"] += 1
        reads["keys"] += len(keys)
        return out

    wall, cpu = time.perf_counter(), time.process_time()
    select_cpu = 0.0
    for start in range(0, len(raws), batch):
        t = time.process_time()
        events = learner.select(raws[start:start + batch])
        select_cpu += time.process_time() - t
        for chunk in read_chunks(events):
            await learner.learn(chunk, get_many)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # what sampling fewer events leaves: parsing and sampling every event polled
    sampler = BlendLearner(learner.experiments, 0.01)
    t = time.process_time()
    sampler.select(raws)
    sample_cpu = time.process_time() - t
    await source.close()
    c = learner.counts
    return {
        "events": c.seen, "learned": c.stepped, "no_session": c.no_session,
        "leaked": c.leaked,
        "labelled": learner.model.labelled, "warm": learner.warm,
        "prior_gain": round(learner.model.prior_gain, 4),
        "learned_gain": round(learner.model.learned_gain, 4),
        "pairwise_auc": round(learner.model.pair_wins / max(learner.model.pairs, 1), 4),
        "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
        "events_per_s": round(c.seen / wall), "learned_per_s": round(c.stepped / wall),
        "ms_per_learned": round(1000 * wall / max(c.stepped, 1), 3),
        "select_us_per_event": round(1e6 * select_cpu / max(c.seen, 1), 1),
        "select_us_per_event_at_1pct": round(1e6 * sample_cpu / max(len(raws), 1), 1),
        "redis_round_trips": reads["calls"], "redis_keys_read": reads["keys"],
        "keys_per_learned": round(reads["keys"] / max(c.stepped, 1), 1),
        "redis_wait_share": round(reads["s"] / wall, 3),
        "vectors": models.vectors, "vector_load_s": round(refresh_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from infra.redis_server import RedisServer
    from recs.settings import Settings
    from state.redis_connect import sync_client

    before = machine("load_avg_before")
    with contextlib.ExitStack() as stack:
        redis_url = args.redis_url
        if redis_url is None:
            own = RedisServer(Settings.from_env().run_dir.resolve() / "bench-blend").start(
                bind_to_parent=True)
            stack.callback(own.stop)
            redis_url = own.url
            client = sync_client(redis_url)
            client.flushdb()
            client.close()
        print(f"bench-blend-learner: filling Redis ({args.events} events, {args.items} items, "
              f"{args.users} users)", flush=True)
        data = fill(redis_url, seed=args.seed, events=args.events, items=args.items,
                    users=args.users, keep=args.learn, hold_back=args.state == "before")
        raws = [e.to_json() for e in data.tail]
        print(f"bench-blend-learner: {data.redis_keys} keys in {data.fill_s:.0f} s; learning "
              f"from {len(raws)} events, {args.batch} per batch", flush=True)
        result = asyncio.run(_learn(redis_url, raws, args.batch))
    return print_result({"bench": "blend_learner", "state": args.state,
                         "redis_keys": data.redis_keys,
                         "state_events": data.events, "batch": args.batch,
                         "load_avg_before": before["load_avg_before"], **result})


if __name__ == "__main__":
    raise SystemExit(main())
