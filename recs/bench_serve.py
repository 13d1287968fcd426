"""Serving benchmark: the real server against a bare "read one Redis key" server, in one run.

    recs bench-serve [--duration 10] [--warmup 3] [--rounds 3] [--connections 32] [--workers 1]
                     [--events 300000] [--redis-url URL] [--endpoints homepage,session]
                     [--repeat-share 0.5] [--unknown-share 0.1] [--seed 7]
                     [--load-generator auto|wrk|python] [--kafka-bootstrap HOST:PORT]

1. **Data.** A seeded synthetic storefront (catalogue + ``--events`` interactions, event times
   shifted to end now) is applied by the in-process :class:`stream.reference.ReferenceRunner`
   (the operators the Flink job runs) and its store written to Redis with
   :class:`state.redis_store.RedisStore`. Kafka and Flink are not on this path: ``recs
   bench-stream`` benchmarks them. Without ``--redis-url`` a Redis of our own is started (and
   flushed); with it, the data is written into that Redis and nothing is deleted.
2. **Servers.** ``recs serve`` (granian, ``--workers``) and the baseline
   (:mod:`recs.bench_baseline`: bare ASGI on granian, one ``GET`` of the user's session key per
   request), same Redis, same worker count, each in its own process group, stopped by PGID.
   No broker runs here, so the server's impression publishing is off unless
   ``--kafka-bootstrap`` names one (``impressions_published`` in the output). The server runs
   with a keys file made for the run and every request carries its server key, so the load
   takes the authenticated path (key check and rate-limit bucket, :mod:`serving.guard`).
3. **Load** (:mod:`recs.bench_load`). The same generator, connections and duration for every
   target, one target at a time: ``wrk`` rotating over the request paths, or a Python generator
   when wrk is missing. The mix: at least 20,000 users, ``--unknown-share`` (10 %) of them
   unknown (cold start), the rest with a session; ``--repeat-share`` (50 %) of the requests
   poll again a user asked at most 50 requests before (a storefront widget refreshing an
   unchanged answer), the others each ask the next user of the list. Each run goes on through
   the list where the previous one stopped. Closed loop, so latencies are at saturation with
   ``--connections`` requests in flight. Then an **open-loop** run per target (the headline
   endpoint and the baseline) offers half the baseline's saturated throughput at a fixed rate
   for ``--duration`` seconds over the same connections (:func:`recs.bench_load.open_loop`,
   latency counted from when each request was due). Before the load, :data:`PREFLIGHT`
   requests per target are checked one by one (status, answer source). Each target is warmed
   up once, then measured ``--rounds`` times, the order of the targets rotating from round to
   round; a target's figures are those of its median round
   by throughput (every round's throughput is kept in ``rps_rounds``).

Output: one line per measurement, a table per target, and as the last line one JSON object.
``rps``, ``p50_ms`` and ``p99_ms`` are the headline endpoint's: the homepage (merge, rank,
re-rank, explain) when it is served, else the first endpoint measured (``headline`` names it);
every endpoint's figures are under ``endpoints``, an endpoint answering 404 to every preflight
request is listed in ``skipped_endpoints``. ``ratio`` is ``rps / baseline_rps``. ``non_2xx``
counts error answers over all measured runs, ``socket_errors`` connect/read/write errors and
timeouts. ``server_cpu_us_per_req`` is the CPU time of the target's process group per request,
which other load on the machine distorts less than throughput; ``redis_cpu_us_per_req`` is
Redis's CPU per request over the same round (when the bench started its own Redis; only the target
under load reads it then). ``p99_ms_at_half_load`` and
``baseline_p99_ms_at_half_load`` are the open-loop runs' (``half_load`` has their details:
offered and achieved rate, requests dropped because the target fell behind).
``answer_cache_hit_ratio`` is the share of the server's cacheable answers that came from its
answer cache during the measured runs (read from its ``/metrics``; one worker's when there are
several). ``core`` says what ran the server's pure steps (``recs_serving_core``: ``native``, the
compiled core, or ``python``; ``RECS_NATIVE=0`` in the bench's environment forces ``python``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import http.client
import multiprocessing
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import FrameType
from typing import Any, Final

import orjson

from recs.bench_baseline import baseline_path
from recs.bench_load import LOOPBACK, PYTHON, WRK, Load, Loader
from recs.bench_serve_data import (
    BASELINE,
    DATA_SOURCE,
    ENDPOINTS,
    MIN_USERS,
    REPEAT_WINDOW,
    Dataset,
    fill,
    pick_users,
    target_paths,
    with_repeats,
)
from recs.bench_stream import group_cpu_seconds, process_cpu_seconds
from recs.benchkit import machine
from recs.engine import EngineProcess
from state.redis_connect import sync_client

AIM_HALF_LOAD_P99_MS: Final = 5.0
PREFLIGHT: Final = 100  # requests per target checked one by one before the load
AIM_P99_MS: Final = 10.0
AIM_RATIO: Final = 1.0
ROOT: Final = Path(__file__).resolve().parent.parent


# ---- servers, checks -----------------------------------------------------------------------

def spawn_server(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> EngineProcess:
    """``python -m argv...`` in its own process group, bound to this process (Linux), so
    that it is gone even when this process is killed; stopped by PGID."""
    from infra.procs import spawn

    log = log_dir / f"{name}.log"
    proc = spawn(name, [sys.executable, "-m", *argv], log=log, cwd=ROOT, markers=(argv[0],),
                 env={**os.environ, **env}, bind_to_parent=True)
    if proc.popen is None:
        raise RuntimeError(f"bench-serve: {name} was not started as a child")
    return EngineProcess(name, proc.popen, log)


def get(port: int, path: str, conn: http.client.HTTPConnection | None = None,
        headers: Mapping[str, str] | None = None) -> tuple[int, bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        c.request("GET", path, headers=dict(headers or {}))
        reply = c.getresponse()
        return reply.status, reply.read()
    finally:
        if own:
            c.close()


def bench_auth_env(work: Path) -> dict[str, str]:
    """A keys file made for this run; the load goes through the authenticated path as a
    storefront backend's would (a server key in ``Authorization``). The key's rate limit is
    set out of reach, so the bucket is still taken on every request but never refuses.
    ``BENCH_SERVER_KEY`` is the key itself (for the client, not the server's environment)."""
    from serving.auth import write_keys

    work.mkdir(parents=True, exist_ok=True)
    made = write_keys(work / "keys.toml")
    return {"RECS_KEYS_FILE": str(work / "keys.toml"), "RECS_RATE_KEY_RPS": "1e9",
            "RECS_RATE_KEY_BURST": "1e9", "BENCH_SERVER_KEY": made["server"]}


def wait_ready(proc: EngineProcess, port: int, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"bench-serve: {proc.name} exited before answering:\n{proc.tail()}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            if get(port, "/healthz")[0] == 200:
                return
        time.sleep(0.1)
    raise TimeoutError(f"bench-serve: {proc.name} not answering /healthz after {timeout_s:.0f} s"
                       f"\n{proc.tail()}")


def preflight(port: int, paths: Sequence[str], headers: Mapping[str, str] | None = None
              ) -> tuple[Counter[int], Counter[str]]:
    """Status codes and answer sources of the first :data:`PREFLIGHT` paths, one by one."""
    statuses: Counter[int] = Counter()
    sources: Counter[str] = Counter()
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        for path in paths[:PREFLIGHT]:
            status, body = get(port, path, conn, headers)
            statuses[status] += 1
            doc = orjson.loads(body) if status == 200 else None
            if isinstance(doc, dict) and "source" in doc:
                fallback = doc.get("fallback")
                sources[f"{doc['source']}/{fallback}" if fallback else str(doc["source"])] += 1
    finally:
        conn.close()
    return statuses, sources


# ---- the command ---------------------------------------------------------------------------

def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="recs bench-serve", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=10, help="measured seconds per target, round")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured seconds before a target")
    p.add_argument("--rounds", type=int, default=3, help="measurements per target (median)")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="wrk threads")
    p.add_argument("--workers", type=int, default=1, help="granian workers of both servers")
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--unknown-share", type=float, default=0.1)
    p.add_argument("--repeat-share", type=float, default=0.5,
                   help="share of requests polling again a user asked just before")
    p.add_argument("--redis-url", default=None, help="use this Redis instead of starting one")
    p.add_argument("--kafka-bootstrap", default="",
                   help="let the server publish its impressions to this broker (default: off)")
    p.add_argument("--endpoints", default="homepage,session",
                   help=f"comma-separated, of {','.join(ENDPOINTS)}")
    p.add_argument("--load-generator", choices=["auto", WRK, PYTHON], default="auto")
    args = p.parse_args(argv)
    args.endpoints = [e for e in args.endpoints.split(",") if e]
    if not args.endpoints or any(e not in ENDPOINTS for e in args.endpoints):
        p.error(f"--endpoints: expected names among {list(ENDPOINTS)}, got {args.endpoints}")
    if min(args.duration, args.rounds, args.connections, args.workers, args.threads) < 1:
        p.error("--duration, --rounds, --connections, --workers and --threads must be >= 1")
    if args.warmup < 0 or not 0.0 <= args.unknown_share < 1.0 or \
            not 0.0 <= args.repeat_share < 1.0:
        p.error("--warmup must be >= 0, --unknown-share and --repeat-share in [0, 1)")
    if args.load_generator == "auto":
        args.load_generator = WRK if shutil.which(WRK) else PYTHON
    elif args.load_generator == WRK and not shutil.which(WRK):
        p.error("--load-generator wrk: wrk is not on PATH (bash infra/ensure-wrk.sh)")
    return args


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    name: str
    proc: EngineProcess
    port: int
    paths: list[str]


def _metrics_lines(port: int, headers: Mapping[str, str]) -> list[str]:
    """The server's ``/metrics`` lines; none when it exports none (the baseline)."""
    try:
        status, body = get(port, "/metrics", headers=headers)
    except (OSError, http.client.HTTPException):
        return []
    return body.decode(errors="replace").splitlines() if status == 200 else []


def serving_core(port: int, headers: Mapping[str, str]) -> str | None:
    """What runs the server's pure steps (``recs_serving_core``): native or python."""
    for line in _metrics_lines(port, headers):
        if line.startswith('recs_serving_core{core="') and line.endswith(" 1.0"):
            return line.split('"')[1]
    return None


def answer_cache_counts(port: int, headers: Mapping[str, str]) -> tuple[float, float] | None:
    """``(hits, misses)`` of the server's answer cache from its ``/metrics``; ``None`` when
    the target exports none (the baseline)."""
    found: dict[str, float] = {}
    for line in _metrics_lines(port, headers):
        name, _, value = line.partition(" ")
        if name in ("recs_answer_cache_hits_total", "recs_answer_cache_misses_total"):
            found[name] = float(value)
    if len(found) != 2:
        return None
    return found["recs_answer_cache_hits_total"], found["recs_answer_cache_misses_total"]


def _row(load: Load, cpu: float) -> dict[str, Any]:
    return {"rps": round(load.rps, 1), "p50_ms": round(load.p50_ms, 3),
            "p90_ms": round(load.p90_ms, 3), "p99_ms": round(load.p99_ms, 3),
            "p999_ms": round(load.p999_ms, 3), "max_ms": round(load.max_ms, 3),
            "requests": load.requests, "non_2xx": load.non_2xx,
            "socket_errors": load.socket_errors,
            "server_cpu_us_per_req": round(cpu / load.requests * 1e6) if load.requests else None}


def _measure(loader: Loader, t: Target, seconds: int, label: str,
             offset: int, redis_pid: int | None = None) -> dict[str, Any]:
    headers = dict(loader.headers)
    cache = answer_cache_counts(t.port, headers) if t.name != BASELINE else None
    cpu = group_cpu_seconds(t.proc.pid)
    redis_cpu = process_cpu_seconds(redis_pid)
    load = loader.run(t.port, t.paths, seconds, label, offset)
    cpu = group_cpu_seconds(t.proc.pid) - cpu
    redis_cpu = process_cpu_seconds(redis_pid) - redis_cpu
    row = _row(load, cpu)
    if redis_pid is not None and load.requests:
        # only the target under load reads Redis during its round
        row["redis_cpu_us_per_req"] = round(redis_cpu / load.requests * 1e6, 1)
    after = answer_cache_counts(t.port, headers) if cache is not None else None
    if cache is not None and after is not None:
        hits, misses = after[0] - cache[0], after[1] - cache[1]
        row["answer_cache_hit_ratio"] = round(hits / (hits + misses), 4) \
            if hits + misses else None
    return row


def _line(label: str, row: dict[str, Any]) -> str:
    return (f"  {label:<18} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} "
            f"{row['p999_ms']:>9.2f} {row['non_2xx'] + row['socket_errors']:>7} "
            f"{row['server_cpu_us_per_req'] or 0:>11}")


HEADER: Final = (f"  {'target':<18} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} "
                 f"{'errors':>7} {'cpu us/req':>11}")


def run_targets(loader: Loader, targets: list[Target], args: argparse.Namespace,
                offsets: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Warm each target up once, measure every target ``--rounds`` times in rotating order;
    per target the median round by throughput, with every round's throughput. Each run of a
    target starts in its path list where the previous one stopped (``offsets``)."""
    runs: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
    print(HEADER, flush=True)
    for r in range(args.rounds):
        shift = r % len(targets)
        for t in targets[shift:] + targets[:shift]:
            if r == 0 and args.warmup:
                warm = loader.run(t.port, t.paths, args.warmup, f"{t.name}-warmup",
                                  offsets[t.name])
                offsets[t.name] += warm.requests
            row = _measure(loader, t, args.duration, f"{t.name}-{r + 1}", offsets[t.name],
                           redis_pid=getattr(args, "redis_pid", None))
            offsets[t.name] += row["requests"]
            runs[t.name].append(row)
            print(_line(f"{t.name} (round {r + 1})", row), flush=True)
    out: dict[str, dict[str, Any]] = {}
    for name, rows in runs.items():
        median = sorted(rows, key=lambda x: x["rps"])[len(rows) // 2]
        out[name] = {**median, "rps_rounds": [x["rps"] for x in rows],
                     "non_2xx": sum(x["non_2xx"] for x in rows),
                     "socket_errors": sum(x["socket_errors"] for x in rows)}
    return out


def run_half_load(loader: Loader, targets: list[Target], rate: float, seconds: int,
                  offsets: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Each target under the open loop at ``rate`` requests/s, one after the other."""
    out: dict[str, dict[str, Any]] = {}
    for t in targets:
        cpu = group_cpu_seconds(t.proc.pid)
        load, dropped = loader.open(t.port, t.paths, rate, seconds, offsets[t.name])
        cpu = group_cpu_seconds(t.proc.pid) - cpu
        offsets[t.name] += load.requests + dropped
        out[t.name] = {**_row(load, cpu), "offered_rps": round(rate, 1), "dropped": dropped}
        print(_line(f"{t.name} (open loop)", out[t.name]) + f"  offered {rate:.0f}/s, "
              f"dropped {dropped}", flush=True)
    return out


def main(argv: list[str]) -> int:
    args = _parse(argv)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_main_thread else None
    try:
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: everything started was stopped on the way out
        print("bench-serve: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run(args: argparse.Namespace) -> int:
    from infra.procs import free_port
    from infra.redis_server import RedisServer
    from recs.settings import Settings

    work = Settings.from_env().run_dir.resolve() / "bench-serve"
    info = machine("load_avg_before")
    with contextlib.ExitStack() as stack:
        redis_url = args.redis_url
        if redis_url is None:
            own = RedisServer(work).start(bind_to_parent=True)
            stack.callback(own.stop)
            redis_url = own.url
            args.redis_pid = own.pid  # its CPU per request is reported (our own Redis only)
            client = sync_client(redis_url)
            client.flushdb()  # our own Redis: start from nothing
            client.close()
        print(f"bench-serve: filling Redis: {DATA_SOURCE} (seed {args.seed}, {args.events} "
              f"events)", flush=True)
        data = fill(redis_url, seed=args.seed, events=args.events, items=args.items,
                    users=args.users)
        users = pick_users(data.session_users, seed=args.seed, unknown_share=args.unknown_share)
        if not users:
            raise RuntimeError("bench-serve: the dataset has no user with a session")
        if len(users) < MIN_USERS:
            print(f"bench-serve: only {len(users)} users in the mix (fewer than {MIN_USERS}: "
                  f"more --events give more sessions)", flush=True)
        order = with_repeats(users, repeat_share=args.repeat_share, seed=args.seed)
        print(f"bench-serve: {data.sessions} sessions, {data.redis_keys} keys in "
              f"{data.fill_s:.1f} s; requests rotate over {len(users)} users, "
              f"{len(order)} requests per pass ({args.repeat_share:.0%} repeated polls)",
              flush=True)
        logs = work / "logs"
        ports = {"server": free_port(), BASELINE: free_port()}
        # an empty bootstrap turns the server's impression publishing off (no broker here)
        env = {"REDIS_URL": redis_url, "KAFKA_BOOTSTRAP": args.kafka_bootstrap,
               **bench_auth_env(work)}
        auth = {"Authorization": f"Bearer {env.pop('BENCH_SERVER_KEY')}"}
        real = spawn_server("server", ["recs.cli", "serve", "--host", LOOPBACK, "--port",
                                       str(ports["server"]), "--workers", str(args.workers),
                                       "--redis-url", redis_url], env, logs)
        stack.callback(real.stop)
        base = spawn_server(BASELINE, ["recs.bench_baseline", "--host", LOOPBACK, "--port",
                                       str(ports[BASELINE]), "--workers", str(args.workers),
                                       "--redis-url", redis_url], env, logs)
        stack.callback(base.stop)
        wait_ready(real, ports["server"])
        wait_ready(base, ports[BASELINE])
        # the Python generators' process (the closed-loop fallback and the open loop)
        pool = stack.enter_context(ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")))
        loader = Loader(args.load_generator, args.connections, args.threads, work / "load",
                        pool, tuple(auth.items()))
        targets: list[Target] = []
        checks: dict[str, dict[str, Any]] = {}
        skipped: dict[str, str] = {}
        for name in [BASELINE, *args.endpoints]:
            proc, port = (base, ports[BASELINE]) if name == BASELINE else (real, ports["server"])
            paths = target_paths(name, order)
            try:
                statuses, sources = preflight(port, paths, auth)
            except (OSError, http.client.HTTPException) as exc:
                raise RuntimeError(f"bench-serve: {name} did not answer the preflight requests "
                                   f"({exc!r}); its log:\n{proc.tail()}") from exc
            if name != BASELINE and statuses.get(404, 0) == sum(statuses.values()):
                skipped[name] = "404 for every request: the route is not served (yet)"
                print(f"bench-serve: {name} skipped: {skipped[name]}", flush=True)
                continue
            targets.append(Target(name, proc, port, paths))
            core = serving_core(port, auth) if name != BASELINE else None
            checks[name] = {"path": ENDPOINTS.get(name, baseline_path("{user}")),
                            **({"core": core} if core else {}),
                            "preflight_statuses": {str(k): v for k, v in sorted(statuses.items())},
                            **({"preflight_sources": dict(sources.most_common())} if sources
                               else {})}
        print(f"bench-serve: {args.load_generator}, {args.connections} connections, "
              f"{args.warmup} s warm-up, {args.rounds} x {args.duration} s per target, "
              f"{args.workers} worker(s) per server", flush=True)
        offsets = {t.name: 0 for t in targets}
        rows = run_targets(loader, targets, args, offsets)
        headline = _headline([t.name for t in targets if t.name != BASELINE], skipped)
        rate = rows[BASELINE]["rps"] / 2
        print(f"bench-serve: open loop at half the baseline's throughput, {rate:.0f} "
              f"requests/s, {args.duration} s per target", flush=True)
        half = run_half_load(loader, [t for t in targets if t.name in (BASELINE, headline)],
                             rate, args.duration, offsets)
    print("bench-serve: per target (median round)\n" + HEADER, flush=True)
    for name, row in rows.items():
        print(_line(name, row), flush=True)
    print(json_summary(args, info, data, len(users), rows, checks, skipped, half))
    return 0


def _headline(endpoints: Sequence[str], skipped: dict[str, str]) -> str:
    if not endpoints:
        raise RuntimeError(f"bench-serve: no endpoint could be measured: {skipped}")
    return "homepage" if "homepage" in endpoints else endpoints[0]


def json_summary(args: argparse.Namespace, info: dict[str, Any], data: Dataset, n_users: int,
                 rows: dict[str, dict[str, Any]], checks: dict[str, dict[str, Any]],
                 skipped: dict[str, str], half: dict[str, dict[str, Any]]) -> str:
    endpoints = {k: {**v, **checks[k]} for k, v in rows.items() if k != BASELINE}
    headline = _headline(list(endpoints), skipped)
    head, bl = endpoints[headline], {**rows[BASELINE], **checks[BASELINE]}
    ratio = round(head["rps"] / bl["rps"], 4) if bl["rps"] else 0.0
    half_p99 = half[headline]["p99_ms"]
    summary = {
        "rps": head["rps"], "p50_ms": head["p50_ms"], "p99_ms": head["p99_ms"],
        "headline": headline, "baseline_rps": bl["rps"], "baseline_p50_ms": bl["p50_ms"],
        "baseline_p99_ms": bl["p99_ms"], "ratio": ratio,
        "p99_ms_at_half_load": half_p99,
        "baseline_p99_ms_at_half_load": half[BASELINE]["p99_ms"],
        "answer_cache_hit_ratio": head.get("answer_cache_hit_ratio"),
        "core": head.get("core"),
        "aim": {"p99_ms_max": AIM_P99_MS, "ratio_min": AIM_RATIO,
                "p99_ms_at_half_load_max": AIM_HALF_LOAD_P99_MS,
                "met": head["p99_ms"] <= AIM_P99_MS and ratio >= AIM_RATIO
                and half_p99 <= AIM_HALF_LOAD_P99_MS and half[headline]["dropped"] == 0},
        "non_2xx": sum(r["non_2xx"] for r in rows.values()),
        "socket_errors": sum(r["socket_errors"] for r in rows.values()),
        "connections": args.connections, "duration_s": args.duration, "warmup_s": args.warmup,
        "rounds": args.rounds, "workers": args.workers, "load_generator": args.load_generator,
        "impressions_published": bool(args.kafka_bootstrap),
        "load_model": "closed loop: one request in flight per connection; then open loop at "
                      "half the baseline's rate (half_load)",
        "half_load": half, **info,
        "dataset": {"source": DATA_SOURCE, "seed": data.seed, "items": data.items,
                    "users": data.users, "events": data.events, "sessions": data.sessions,
                    "redis_keys": data.redis_keys, "fill_s": round(data.fill_s, 1),
                    "users_requested": n_users, "unknown_share": args.unknown_share,
                    "repeat_share": args.repeat_share, "repeat_window": REPEAT_WINDOW},
        "endpoints": endpoints, "baseline": bl, "skipped_endpoints": skipped,
    }
    return orjson.dumps(summary).decode()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
