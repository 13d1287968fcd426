"""bench-serve for the second similar-items list: the homepage with the list off and on, side
by side in one run.

    python -m recs.bench_serve_simr [--half-life 86400] [--duration 8] [--warmup 2] [--rounds 3]
                                    [--connections 16] [--events 100000] [--items 5000]
                                    [--users 20000] [--seed 7] [--repeat-share 0.5]
                                    [--unknown-share 0.1] [--load-generator auto|wrk|python]

1. **Data.** ``recs bench-serve``'s storefront (:func:`recs.bench_serve_data.fill`) applied with
   the second list on (``EngineConfig.similar_recent`` at ``--half-life``), so Redis holds
   ``recs:v1:similar_recent:<item>`` beside every similar list, and a warm learned blend
   (:data:`WARM`: fixed weights over the hand-tuned score and the first and second similar
   lists) published at ``recs:v1:model:blend``. The learned order is then served and its
   features computed on every miss; the weights are not learned: this measures the cost of
   the list, not its quality (``recs eval`` measures that).
2. **Servers.** ``recs serve`` (one worker, the authenticated path as bench-serve's) on one
   Redis started for the run: ``off`` with ``RECS_SIMILAR_RECENT_HALF_LIFE_S=0``, ``on`` with
   ``--half-life``; a fresh server for every measurement (:class:`Servers`: the same answer
   cache history for both), its published blend loaded before the load starts.
3. **Load.** bench-serve's loader and mix (:mod:`recs.bench_load`), the homepage under each
   setting in turn, ``--rounds`` rounds in rotating order (a shared machine drifts; the
   median round by throughput is each setting's figure), each warmed up on the request list
   read backwards from its end and measured from its start.

Output: bench-serve's table, then one JSON line: per target its median round (throughput,
latencies, ``server_cpu_us_per_req``: the server process group's CPU per request, which other
load distorts less than throughput; ``redis_keys_per_req``: the keys Redis looked up per
request, from its ``keyspace_hits`` and ``keyspace_misses``, the shared-list cache's misses
only), ``on`` against ``off``, and the machine with its load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson

from infra.procs import free_port
from recs.bench_load import LOOPBACK, PYTHON, WRK, Loader
from recs.bench_serve import (
    HEADER,
    PREFLIGHT,
    Target,
    _line,
    _measure,
    bench_auth_env,
    get,
    preflight,
    spawn_server,
    wait_ready,
)
from recs.bench_serve_data import fill, pick_users, target_paths, with_repeats
from recs.benchkit import machine

OFF: Final = "off"
ON: Final = "on"
BLEND_WAIT_S: Final = 60.0
WARM_WEIGHTS: Final = {"prior": 1.0, "sim0": 0.5, "sim_rr0": 0.2, "simr0": 0.5,
                       "simr_rr0": 0.2, "simr1": 0.3}


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m recs.bench_serve_simr", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--half-life", type=float, default=86_400.0,
                   help="the second list's half-life in seconds (the server 'on')")
    p.add_argument("--duration", type=int, default=8, help="measured seconds per target, round")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--users", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--unknown-share", type=float, default=0.1)
    p.add_argument("--repeat-share", type=float, default=0.5)
    p.add_argument("--load-generator", choices=["auto", WRK, PYTHON], default="auto")
    args = p.parse_args(argv)
    if args.half_life <= 0 or min(args.duration, args.rounds, args.connections) < 1:
        p.error("--half-life must be > 0; --duration, --rounds and --connections >= 1")
    if args.load_generator == "auto":
        args.load_generator = WRK if shutil.which(WRK) else PYTHON
    return args


def publish_warm_blend(redis_url: str, as_of: int) -> None:
    """A learned blend past its warm-up rule (:data:`WARM_WEIGHTS`), as the learner writes it."""
    from operators import learned_blend as lb
    from state.keys import MODEL_BLEND, model_key
    from state.records import Update
    from state.redis_store import RedisStore

    cfg = lb.LearnedBlendConfig()
    model = lb.BlendModel(dict(WARM_WEIGHTS), events=2 * cfg.min_labelled,
                          labelled=2 * cfg.min_labelled, prior_gain=0.5, learned_gain=0.6,
                          as_of=as_of)
    store = RedisStore.from_url(redis_url)
    store.apply([Update(model_key(MODEL_BLEND), model.labelled, as_of,
                        lb.published(model, cfg))])
    store.client.close()


def wait_blend(port: int, headers: dict[str, str]) -> None:
    """Until the server's refresher loaded the learned blend (``recs_model_version``)."""
    deadline = time.monotonic() + BLEND_WAIT_S
    while time.monotonic() < deadline:
        status, body = get(port, "/metrics", headers=headers)
        if status == 200 and b'recs_model_version{model="blend"}' in body:
            return
        time.sleep(0.5)
    raise TimeoutError(f"bench-serve-simr: the server on port {port} did not load the blend")


def keyspace_lookups(client: Any) -> int:
    stats = client.info("stats")
    return int(stats["keyspace_hits"]) + int(stats["keyspace_misses"])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from infra.redis_server import RedisServer
    from recs.settings import Settings
    from state.redis_connect import sync_client

    work = Settings.from_env().run_dir.resolve() / "bench-serve-simr"
    info = machine("load_avg_before")
    with contextlib.ExitStack() as stack:
        own = RedisServer(work).start(bind_to_parent=True)
        stack.callback(own.stop)
        client = sync_client(own.url)
        client.flushdb()
        stack.callback(client.close)
        print(f"bench-serve-simr: filling Redis ({args.events} events, second list at "
              f"{args.half_life:.0f} s)", flush=True)
        data = fill(own.url, seed=args.seed, events=args.events, items=args.items,
                    users=args.users, similar_recent_s=args.half_life)
        publish_warm_blend(own.url, int(time.time() * 1000))
        second = sum(1 for _ in client.scan_iter(match="recs:v1:similar_recent:*", count=1000))
        users = pick_users(data.session_users, seed=args.seed, unknown_share=args.unknown_share)
        paths = target_paths("homepage", with_repeats(users, repeat_share=args.repeat_share,
                                                      seed=args.seed))
        env = {"REDIS_URL": own.url, "KAFKA_BOOTSTRAP": "", **bench_auth_env(work)}
        auth = {"Authorization": f"Bearer {env.pop('BENCH_SERVER_KEY')}"}
        pool = stack.enter_context(ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")))
        loader = Loader(args.load_generator, args.connections, 1, work / "load", pool,
                        tuple(auth.items()))
        servers = Servers(env, auth, own.url, work / "logs", paths)
        rows = _rounds(loader, servers, args, client, own.pid)
    return {"bench": "serve_simr", "half_life_s": args.half_life, "targets": rows,
            "on_vs_off": {
                "rps_ratio": round(rows[ON]["rps"] / rows[OFF]["rps"], 3)
                if rows[OFF]["rps"] else None,
                "cpu_us_per_req_diff": _diff(rows, "server_cpu_us_per_req"),
                "redis_keys_per_req_diff": _diff(rows, "redis_keys_per_req")},
            "similar_recent_keys": second, "sessions": data.sessions,
            "redis_keys": data.redis_keys, "users_requested": len(users),
            "repeat_share": args.repeat_share, "connections": args.connections,
            "duration_s": args.duration, "rounds": args.rounds,
            "load_generator": args.load_generator, **info,
            "load_avg_after": machine()["load_avg"]}


def _diff(rows: dict[str, dict[str, Any]], field: str) -> float | None:
    a, b = rows[ON].get(field), rows[OFF].get(field)
    return round(a - b, 2) if a is not None and b is not None else None


@dataclasses.dataclass
class Servers:
    """Starts a fresh ``recs serve`` for each measurement: its answer cache empty and its
    model loaded, so both settings meet the same cache history at the same request (one
    server kept across rounds serves a growing share of its answers from that cache, at a
    rate that depends on how fast it went through the list before)."""

    env: dict[str, str]
    auth: dict[str, str]
    redis_url: str
    logs: Path
    paths: list[str]
    sources: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def start(self, name: str, half_life: float) -> Iterator[Target]:
        port = free_port()
        proc = spawn_server(name, ["recs.cli", "serve", "--host", LOOPBACK, "--port",
                                   str(port), "--workers", "1", "--redis-url", self.redis_url],
                            {**self.env, "RECS_SIMILAR_RECENT_HALF_LIFE_S": repr(half_life)},
                            self.logs)
        try:
            wait_ready(proc, port)
            wait_blend(port, self.auth)
            # checked on the list's last requests: the measured ones start from the first
            statuses, sources = preflight(port, self.paths[-PREFLIGHT:], self.auth)
            if set(statuses) != {200}:
                raise RuntimeError(f"bench-serve-simr: {name} answered {dict(statuses)}")
            self.sources.setdefault(name, dict(sources.most_common()))
            yield Target(name, proc, port, self.paths)
        finally:
            proc.stop()


def _rounds(loader: Loader, servers: Servers, args: argparse.Namespace, client: Any,
            redis_pid: int | None) -> dict[str, dict[str, Any]]:
    """``--rounds`` rounds, the two settings in rotating order, each on a fresh server: warmed
    up on the request list read backwards from its end (the shared-list cache filled, the
    answers of the measured requests not cached: the warm-up and the load meet only if they
    cover the whole list between them), then measured from the list's start; Redis's key
    lookups per request beside (only the target under load reads Redis)."""
    settings = [(OFF, 0.0), (ON, args.half_life)]
    runs: dict[str, list[dict[str, Any]]] = {OFF: [], ON: []}
    backwards = servers.paths[::-1]
    print(HEADER + f" {'keys/req':>9}", flush=True)
    for r in range(args.rounds):
        shift = r % len(settings)
        for name, half_life in settings[shift:] + settings[:shift]:
            with servers.start(name, half_life) as t:
                if args.warmup:
                    loader.run(t.port, backwards, args.warmup, f"{name}-warmup")
                lookups = keyspace_lookups(client)
                row = _measure(loader, t, args.duration, f"{name}-{r + 1}", 0,
                               redis_pid=redis_pid)
            if row["requests"]:
                row["redis_keys_per_req"] = round(
                    (keyspace_lookups(client) - lookups) / row["requests"], 2)
            runs[name].append(row)
            print(_line(f"{name} (round {r + 1})", row) +
                  f" {row.get('redis_keys_per_req', 0):>9}", flush=True)
    return {name: {**sorted(rows, key=lambda x: x["rps"])[len(rows) // 2],
                   "rps_rounds": [x["rps"] for x in rows],
                   "cpu_us_per_req_rounds": [x["server_cpu_us_per_req"] for x in rows],
                   "preflight_sources": servers.sources.get(name, {})}
            for name, rows in runs.items()}


def main(argv: list[str]) -> int:
    result = run(_parse(argv))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
