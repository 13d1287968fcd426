"""In-process benchmark of the homepage pipeline: the real app, an in-memory reader, no network.

    python -m recs.bench_pipeline [--requests 5000] [--events 200000] [--repeat-share 0.0]
                                  [--core native|python] [--warm-blend] [--profile] [--seed 7]
                                  [--redis single,cluster] [--rounds 2]

The data is ``recs bench-serve``'s (the same seeded storefront applied by the in-process
:class:`stream.reference.ReferenceRunner`, online models included), kept as the envelope bytes
Redis would hold and cached under ``$RECS_RUN_DIR/bench-pipeline`` so that later runs start in
seconds. The reader decodes those bytes on every read as the Redis reader does; the learned
models are loaded by the server's own refresher from the same bytes. Requests go through the
whole ASGI app (the key check and rate-limit bucket of the authenticated path, routing, query
parsing, the homepage pipeline, rules, rendering, metrics), one
after another, each for another user of the same mix as bench-serve (``--unknown-share``
unknown users), with ``--repeat-share`` of them repeating the previous request of a user already
asked (a widget polling an unchanged session). ``--core`` picks the pure steps' implementation:
the compiled twins (``native``, :mod:`serving.native`; the Python path when not built) or the
Python operators (``python``, as ``RECS_NATIVE=0``). The data publishes no warm learned blend (the
hand-tuned order is served); ``--warm-blend`` serves one (the published weights, else the
initial ones) as if warm: the learned order, its features step included.

``--redis single,cluster`` reads through the server's real Redis readers instead of the
in-memory one, a local Redis against a local Redis Cluster started by the bench, side by side,
``--rounds`` times in turn (:mod:`recs.bench_redis_readers`).

Prints the CPU time of each request (the thread's CPU clock, which other load on a shared
machine distorts far less than wall time; with a Redis reader it includes the reader's own
work, not the wait for Redis) as mean, p50 and p99 in microseconds, the same for the requests
the answer cache answered (``hit_us``) and those it computed (``miss_us``), the wall time per
request (``wall_us``, round trips included), and with ``--profile`` the cProfile top list. The
last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import io
import pstats
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote

import orjson

from state.keys import KIND_ITEMVEC, PREFIX
from state.records import Envelope, decode_envelope

if TYPE_CHECKING:
    from recs.bench_redis_readers import CountedReader
    from serving.native import Kernels

NOW_SLACK_MS: Final = 1_000  # the clock of the run: just after the newest event
REDIS_KINDS: Final = ("single", "cluster")
_HEAD_ITEMVEC: Final = f"{PREFIX}{KIND_ITEMVEC}:"


# ---- data ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True, slots=True)
class Data:
    values: dict[str, bytes]        # key -> envelope bytes, as Redis holds them
    session_users: tuple[str, ...]
    newest_ms: int


def build(seed: int, events: int, items: int, users: int) -> Data:
    """bench-serve's data (:func:`recs.bench_serve_data.fill`) into memory instead of Redis."""
    from operators.config import EngineConfig
    from recs.settings import Settings
    from recs.synthetic import Storefront
    from state.records import Update, encode_envelope
    from state.store import MemoryStore
    from stream.reference import ReferenceRunner

    shop = Storefront(seed=seed, n_items=items, n_users=users)
    records = [*shop.catalogue(), *shop.stream(events)]
    store = MemoryStore()
    base = EngineConfig()
    cfg = dataclasses.replace(base, mf=dataclasses.replace(
        base.mf, negatives=Settings.from_env().mf_negatives))
    runner = ReferenceRunner(cfg, store=store, models=True)
    runner.run(records, flush_every=100_000)
    values: dict[str, bytes] = {}
    for key in store.keys():  # noqa: SIM118 (a store, not a dict)
        env = store.get(key)
        if env is not None:
            values[key] = encode_envelope(Update(key, env.version, env.as_of, env.data))
    return Data(values, tuple(sorted(runner.sessions)), max(r.ts for r in records))


def load_data(cache_dir: Path, seed: int, events: int, items: int, users: int) -> Data:
    path = cache_dir / f"data-s{seed}-e{events}-i{items}-u{users}.json"
    if path.exists():
        doc = orjson.loads(path.read_bytes())
        return Data({k: v.encode() for k, v in doc["values"].items()},
                    tuple(doc["session_users"]), int(doc["newest_ms"]))
    started = time.perf_counter()
    data = build(seed, events, items, users)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps({"values": {k: v.decode() for k, v in data.values.items()},
                                   "session_users": data.session_users,
                                   "newest_ms": data.newest_ms}))
    print(f"bench-pipeline: built the data in {time.perf_counter() - started:.0f} s "
          f"({len(data.values)} keys)", file=sys.stderr, flush=True)
    return data


# ---- in-memory Redis stand-ins -------------------------------------------------------------

class MemoryReader:
    """The server's :class:`~serving.fetch.Reader` over envelope bytes (decoded per read, as
    :class:`~state.redis_store.AsyncReader` decodes what Redis returns)."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        self.reads = 0
        self.keys_read = 0

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        self.reads += 1
        self.keys_read += len(keys)
        out: list[Envelope | None] = []
        for key in keys:
            raw = self.values.get(key)
            env = decode_envelope(raw) if raw is not None else None
            out.append(None if env is None or env.data is None else env)
        return out

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.reads += 1
        self.keys_read += len(keys)
        return [self.values.get(k) for k in keys]

    async def freshness(self) -> dict[str, int]:
        return {}

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None


class MemoryModelSource:
    """The models' refresher's source (:class:`serving.model_source.ModelSource`) over the
    same bytes; the item-vector changelog is rebuilt from the item-vector keys."""

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values
        log = {key[len(_HEAD_ITEMVEC):]: decode_envelope(raw).version
               for key, raw in values.items() if key.startswith(_HEAD_ITEMVEC)}
        self.log = sorted((v, i) for i, v in log.items())

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        return await MemoryReader(self.values).get_many(keys)

    async def vector_changes(self, since: int, limit: int) -> list[tuple[str, int]]:
        return [(i, v) for v, i in self.log if v >= since][:limit]

    async def count_at(self, version: int) -> int:
        return sum(1 for v, _ in self.log if v == version)

    async def members_at(self, version: int, offset: int, limit: int) -> list[str]:
        return [i for v, i in self.log if v == version][offset:offset + limit]

    async def head(self, key: str) -> tuple[int, int] | None:
        raw = self.values.get(key)
        if raw is None:
            return None
        env = decode_envelope(raw)
        return env.version, env.as_of

    async def get_raw(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def close(self) -> None:
        return None


# ---- requests ------------------------------------------------------------------------------

def request_paths(users: Sequence[str], n: int, *, repeat_share: float, seed: int) -> list[str]:
    """``n`` homepage paths over ``users`` in order; ``repeat_share`` of them repeat the path of
    a user asked at most 50 requests before (a poll of an unchanged session).

    >>> paths = request_paths(["a", "b", "c"], 4, repeat_share=0.0, seed=1)
    >>> paths[:2]
    ['/v1/users/a/recommendations?k=8', '/v1/users/b/recommendations?k=8']
    """
    rnd = random.Random(f"bench-pipeline:{seed}")
    out: list[str] = []
    nxt = 0
    for _ in range(n):
        if out and rnd.random() < repeat_share:
            out.append(out[max(0, len(out) - 1 - rnd.randrange(50))])
            continue
        out.append(f"/v1/users/{quote(users[nxt % len(users)], safe='')}/recommendations?k=8")
        nxt += 1
    return out


def scope_of(path: str, key: str) -> dict[str, Any]:
    route, _, query = path.partition("?")
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": unquote(route), "raw_path": route.encode(),
            "query_string": query.encode(),
            "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {key}".encode())],
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80)}


async def _call(app: Any, scope: dict[str, Any]) -> tuple[int, bytes]:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"]), bytes(sent[1]["body"])


async def run(data: Data, paths: Sequence[str], *, profile: bool, warmup: int,
              cache_dir: Path, core: str = "native",
              kernels: Kernels | None = None, warm_blend: bool = False,
              redis_url: str | None = None) -> dict[str, Any]:
    """The requests through the app; ``kernels`` (:mod:`serving.native`) replace those
    ``core`` names (:mod:`recs.bench_core` records the calls that way); ``redis_url``: read
    there with the server's reader for it (:func:`serving.app.open_reader`), not in memory."""
    from operators.learned_blend import initial, is_warm
    from recs.bench_redis_readers import CountedReader
    from recs.settings import Settings
    from serving.app import _tune_gc, create_app, open_reader
    from serving.auth import write_keys

    now = data.newest_ms + NOW_SLACK_MS
    reader: MemoryReader | CountedReader = (
        MemoryReader(data.values) if redis_url is None else CountedReader(open_reader(redis_url)))
    # the authenticated path, as bench-serve takes it: a server key, its bucket out of reach
    keys_file = cache_dir / "keys.toml"
    key = write_keys(keys_file)["server"]
    settings = Settings(redis_url="redis://in-memory", kafka_bootstrap="",
                        keys_file=str(keys_file), rate_key_rps=1e9, rate_key_burst=1e9,
                        native=core == "native")
    app = create_app(settings, reader, now_ms=lambda: now)
    app.handlers.models.source = MemoryModelSource(data.values)
    if kernels is not None:
        app.handlers.kernels = kernels
    _tune_gc()  # as the lifespan does in a served worker
    await app.handlers.models.refresh()
    models = app.handlers.models
    if warm_blend:  # the published weights (or the initial ones), served as if warm
        found = models.blend if models.blend is not None else initial()
        models.blend = dataclasses.replace(
            found, labelled=max(found.labelled, models.blend_cfg.min_labelled),
            learned_gain=max(found.learned_gain, found.prior_gain))
    scopes = [scope_of(p, key) for p in paths]
    for scope in scopes[:warmup]:  # fills the shared-list cache as a running server has it
        await _call(app, scope)
    scopes = scopes[warmup:]
    reader.reads = reader.keys_read = 0
    hits0, misses0 = app.handlers.answers.hits, app.handlers.answers.misses
    times: list[int] = []
    by_answer: dict[bool, list[int]] = {True: [], False: []}  # answer-cache hit -> CPU ns
    walls: list[int] = []
    answers = app.handlers.answers
    statuses: dict[str, int] = {}
    sources: dict[str, int] = {}
    prof = cProfile.Profile() if profile else None
    if prof is not None:
        prof.enable()
    clock = time.thread_time_ns  # CPU time: other load on the machine distorts it less
    for scope in scopes:
        hits, w0, t0 = answers.hits, time.perf_counter_ns(), clock()
        status, body = await _call(app, scope)
        spent = clock() - t0
        walls.append(time.perf_counter_ns() - w0)
        times.append(spent)
        by_answer[answers.hits > hits].append(spent)
        statuses[str(status)] = statuses.get(str(status), 0) + 1
        if status == 200:
            src = orjson.loads(body).get("source", "?")
            sources[src] = sources.get(src, 0) + 1
    if prof is not None:
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(30)
        print(out.getvalue(), file=sys.stderr)
    if redis_url is not None:
        await reader.close()
    times.sort()
    us = [t / 1000 for t in times]
    split = {f"{name}_{stat}": value for name, hit in (("hit", True), ("miss", False))
             for stat, value in _mean_p50(by_answer[hit]).items()}
    return {"requests": len(us), "us_per_request": round(statistics.fmean(us), 1),
            "p50_us": round(us[len(us) // 2], 1), "p99_us": round(us[int(len(us) * 0.99)], 1),
            **split, "wall_us": round(statistics.fmean(walls) / 1000, 1),
            "core": app.handlers.kernels.name,
            "reads_per_request": round(reader.reads / len(us), 3),
            "keys_per_request": round(reader.keys_read / len(us), 2),
            "statuses": statuses, "sources": sources,
            "answer_cache": {"hits": app.handlers.answers.hits - hits0,
                             "misses": app.handlers.answers.misses - misses0},
            "ranker": app.handlers.models.ranker_state,
            "learned_blend_warm": models.blend is not None and is_warm(models.blend,
                                                                      models.blend_cfg),
            "vectors": app.handlers.models.vectors}


def _mean_p50(ns: list[int]) -> dict[str, float | None]:
    """``us`` (mean) and ``p50_us`` of CPU nanoseconds; ``None`` when there are none."""
    if not ns:
        return {"us": None, "p50_us": None}
    ordered = sorted(ns)
    return {"us": round(statistics.fmean(ordered) / 1000, 1),
            "p50_us": round(ordered[len(ordered) // 2] / 1000, 1)}


def main(argv: list[str]) -> int:
    from recs.bench_serve_data import pick_users
    from recs.benchkit import machine
    from recs.settings import Settings

    p = argparse.ArgumentParser(prog="python -m recs.bench_pipeline", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=5_000)
    p.add_argument("--warmup", type=int, default=2_000)
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--users", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--unknown-share", type=float, default=0.1)
    p.add_argument("--repeat-share", type=float, default=0.0)
    p.add_argument("--core", choices=("native", "python"), default="native",
                   help="the pure steps: compiled twins (when built) or the Python operators")
    p.add_argument("--warm-blend", action="store_true",
                   help="serve the published learned blend's weights as if it were warm")
    p.add_argument("--profile", action="store_true")
    p.add_argument("--redis", default="",
                   help="comma list of single,cluster: read through local Redis servers "
                        "(started and stopped by the bench) instead of in memory")
    p.add_argument("--rounds", type=int, default=2,
                   help="with --redis: passes over the readers in turn (the best is reported)")
    args = p.parse_args(argv)
    if args.requests < 1 or args.warmup < 0 or not 0 <= args.repeat_share < 1:
        p.error("--requests >= 1, --warmup >= 0, --repeat-share in [0, 1)")
    kinds = [k for k in args.redis.split(",") if k]
    if any(k not in REDIS_KINDS for k in kinds) or args.rounds < 1:
        p.error(f"--redis must list some of {','.join(REDIS_KINDS)}, got {args.redis!r}; "
                f"--rounds >= 1, got {args.rounds}")
    cache = Settings.from_env().run_dir.resolve() / "bench-pipeline"
    data = load_data(cache, args.seed, args.events, args.items, args.users)
    users = pick_users(data.session_users, seed=args.seed, unknown_share=args.unknown_share)
    paths = request_paths(users, args.warmup + args.requests, repeat_share=args.repeat_share,
                          seed=args.seed)
    # the warm-up pass asks the first --warmup users; the measured requests ask others
    if kinds:
        from recs.bench_redis_readers import compare_readers

        result = compare_readers(kinds, args, data, paths, cache)
    else:
        result = asyncio.run(run(data, paths, profile=args.profile, warmup=args.warmup,
                                 cache_dir=cache, core=args.core, warm_blend=args.warm_blend))
    result.update(repeat_share=args.repeat_share, unknown_share=args.unknown_share,
                  users=len(users), events=args.events, seed=args.seed, machine=machine())
    print(orjson.dumps(result).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
