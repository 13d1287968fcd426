"""Micro-benchmark of the compiled core's twins against the Python operators, call by call.

    python -m recs.bench_core [--requests 3000] [--rounds 3] [--seed 7]

Records the calls the homepage makes to each pure step that has a compiled twin
(:mod:`serving.native`: the blend, the rules, the learned blend's features and order; the
bench's learned blend is cold and never computes them, so their calls are built from the
recorded blends' inputs as a warm model would make them) while ``python -m recs.bench_pipeline``'s
requests run through the real app (its data, its mix, no repeated requests), then replays the
recorded calls through the Python function and through its twin, ``--rounds`` times
alternately, and prints the CPU time per call (the thread's CPU clock) of each, and how many
recorded calls gave different answers (none: the parity tests check the same on generated
inputs). The last line is one JSON object. Needs the compiled core (``make install``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

Call = tuple[tuple[Any, ...], dict[str, Any]]


def record(requests: int, warmup: int, seed: int) -> dict[str, list[Call]]:
    """The calls of ``warmup + requests`` homepage requests to each step."""
    from recs import bench_pipeline as bp
    from recs.bench_serve_data import pick_users
    from recs.settings import Settings
    from serving import native

    calls: dict[str, list[Call]] = {"blend": [], "rerank": [], "features": [],
                                     "learned_order": []}
    py = native.python()

    def recorder(name: str, fn: Callable[..., Any]) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            calls[name].append((args, kwargs))
            return fn(*args, **kwargs)
        return call

    kernels = native.Kernels("recording", recorder("blend", py.blend),
                             recorder("rerank", py.rerank), recorder("features", py.features),
                             recorder("learned_order", py.learned_order))
    cache = Settings.from_env().run_dir.resolve() / "bench-pipeline"
    data = bp.load_data(cache, seed, 200_000, 5_000, 50_000)
    users = pick_users(data.session_users, seed=seed, unknown_share=0.1)
    paths = bp.request_paths(users, warmup + requests, repeat_share=0.0, seed=seed)
    asyncio.run(bp.run(data, paths, profile=False, warmup=warmup, cache_dir=cache,
                       kernels=kernels))
    return calls


def warm_features_calls(blend_calls: list[Call]) -> list[Call]:
    """The learned blend's features step as a warm model would call it on these blends'
    inputs (the bench's learned blend is cold: it serves the hand-tuned order and never calls
    the step): the hand-tuned blend's best ``pool`` candidates, then the step's arguments."""
    from operators.blend import blend
    from operators.learned_blend import LearnedBlendConfig

    cfg = LearnedBlendConfig()
    out: list[Call] = []
    for args, kwargs in blend_calls:
        session, similar, _bought, fills, params = args
        prior = blend(*args, **{**kwargs, "k": max(cfg.pool, kwargs["k"])})
        out.append(((prior, session, similar, fills, params, cfg,
                     kwargs.get("exclude", ())), {}))
    return out


def warm_order_calls(features_calls: list[Call], seed: int) -> list[Call]:
    """The learned order of those features' candidates under a warm model (seeded random
    weights over every feature)."""
    import random

    from operators.learned_blend import FEATURES, BlendModel, _features

    rnd = random.Random(seed)
    model = BlendModel({name: rnd.uniform(-1, 1) for name in FEATURES})
    return [((model, _features(*args)), {}) for args, _ in features_calls]


def _same(a: Any, b: Any) -> bool:
    """Equal outputs: lists of dataclasses compared by their fields (repr shows them all)."""
    return repr(a) == repr(b)


def timed(fn: Callable[..., Any], calls: list[Call]) -> float:
    """CPU µs per call of ``fn`` over ``calls``."""
    clock = time.thread_time_ns
    t0 = clock()
    for args, kwargs in calls:
        fn(*args, **kwargs)
    return (clock() - t0) / 1000 / max(len(calls), 1)


def main(argv: list[str]) -> int:
    from recs.benchkit import machine
    from serving import native

    p = argparse.ArgumentParser(prog="python -m recs.bench_core", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=3_000)
    p.add_argument("--warmup", type=int, default=1_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    if args.requests < 1 or args.rounds < 1 or args.warmup < 0:
        p.error("--requests >= 1, --rounds >= 1, --warmup >= 0")
    core = native.compiled()
    if core is None:
        print("bench-core: the compiled core is not built (make install builds it with "
              "cargo: native/build.sh)", file=sys.stderr)
        return 1
    py = native.python()
    calls = record(args.requests, args.warmup, args.seed)
    if not calls["features"]:
        calls["features"] = warm_features_calls(calls["blend"])
    if not calls["learned_order"]:
        calls["learned_order"] = warm_order_calls(calls["features"], args.seed)
    result: dict[str, Any] = {}
    for name in ("blend", "rerank", "features", "learned_order"):
        ref, twin = getattr(py, name), getattr(core, name)
        recorded = calls[name]
        differ = sum(not _same(ref(*a, **k), twin(*a, **k)) for a, k in recorded)
        python_us, native_us = [], []
        for _ in range(args.rounds):
            python_us.append(timed(ref, recorded))
            native_us.append(timed(twin, recorded))
        result[name] = {"calls": len(recorded), "python_us": round(min(python_us), 1),
                        "native_us": round(min(native_us), 1),
                        "speedup": round(min(python_us) / min(native_us), 2),
                        "different": differ}
        print(f"bench-core: {name}: {len(recorded)} calls, python {min(python_us):.1f} us, "
              f"native {min(native_us):.1f} us per call (best of {args.rounds}), "
              f"{differ} different", file=sys.stderr)
    result["machine"] = machine()
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
