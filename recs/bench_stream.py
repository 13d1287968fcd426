"""Stream benchmark: the real path (Kafka -> Flink -> Redis), the writer and the models included.

    recs bench-stream [--backlog 2000000] [--rates 1000,2000,5000,10000,20000,50000]
                      [--seconds 15] [--parallelism 1] [--generators 2]
    RECS_STREAM_RUNTIME=jvm RECS_WRITER=jvm recs bench-stream ...   # the JVM topology

1. **Generator alone.** ``--backlog`` synthetic storefront events (50k users, 5k items) are
   published by ``--generators`` processes before the job starts: ``generator_events_per_s``
   is what the load generator can offer, so it is known not to be the bottleneck. Each
   process builds its events (storefront simulation, JSON) before the clock starts and then
   only sends them, in every phase.
2. **Backlog drain.** Then the job (and the loader, when ``RECS_WRITER=loader``) starts on that
   pre-filled topic. ``backlog_events_per_s`` is the backlog over the time from the job's first
   write to Redis until every probe (every 1000th interest event and each generator's last) is
   visible in its user's session and the freshness stamp has reached the newest event:
   the drain rate with the models on (unless ``RECS_MODELS=0``). ``job_cpu_us_per_event``
   is the job's process-group CPU over the drain, ``broker_cpu_us_per_event`` and
   ``redis_cpu_us_per_event`` the broker's and Redis's over the same drain (when this run
   started them); ``model_events_per_s`` what the
   collaborative model learned over the drain (its published header),
   ``model_sampled_share`` the share of the interest events its feed left out by sampling
   (``sampled_out`` in the header; the jvm runtime samples above
   ``RECS_MODEL_MAX_EVENTS_PER_S``, the python runtime never does) and ``model_lag_events``
   the interest events neither learned nor left out when the drain ended.
3. **Rate steps**, on the warm job: events published at each rate (event time = the moment of
   publishing) with every ``--probe-every``-th interest event probed; freshness = visible −
   produced. A rate is *sustained* when every probe became visible, the p99 stayed under
   ``--max-p99-ms`` and the generators offered at least 95 % of the rate; the steps stop at the
   first rate that is not. ``freshness_p99_ms_at_10k`` is the p99 at 10k events/s offered
   (null when the steps stopped below it).

The last line is one JSON object: ``backlog_events_per_s``, ``events_per_s`` (highest sustained
rate), ``freshness_p99_ms_at_10k``, ``freshness_p50_ms`` and ``freshness_p99_ms`` (at 10k, or the
highest sustained rate below it), ``model_events_per_s``, ``model_sampled_share``,
``generator_events_per_s``, ``job_cpu_us_per_event``, ``broker_cpu_us_per_event``,
``redis_cpu_us_per_event``, ``parallelism``, ``cpu_count``, the
runtime and writer, and the per-rate table.
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

import orjson

from recs.benchkit import machine
from recs.settings import Settings, Topics
from schemas.events import Interaction
from state import keys
from state.records import decode_envelope
from state.redis_connect import SyncClient, mget, sync_client

INTEREST = {"view", "click", "add_to_cart", "purchase"}


@dataclass
class Prober:
    """Polls the session keys of probed events until they reflect the probe's event time."""

    client: SyncClient
    pending: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    done: list[tuple[float, float]] = field(default_factory=list)  # (produced, visible) wall s
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def add(self, user_id: str, ts_ms: int, produced_s: float) -> None:
        with self.lock:
            self.pending.setdefault(keys.session_key(user_id), []).append((ts_ms, produced_s))

    def outstanding(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.pending.values())

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                names = list(self.pending)
            if not names:
                time.sleep(0.005)
                continue
            values = mget(self.client, names)
            now = time.time()
            with self.lock:
                for name, raw in zip(names, values, strict=True):
                    if raw is None:
                        continue
                    version = int(orjson.loads(raw)["v"])
                    waiting = self.pending.get(name, [])
                    still = [(ts, p) for ts, p in waiting if ts > version]
                    self.done += [(p, now) for ts, p in waiting if ts <= version]
                    if still:
                        self.pending[name] = still
                    else:
                        self.pending.pop(name, None)
            time.sleep(0.005)

    def settle(self, timeout_s: float, poll_s: float = 0.2,
               alive: Callable[[], None] | None = None) -> int:
        """Wait until every probe was seen or ``timeout_s`` passed (``alive`` is called each
        poll and may raise); returns how many are still outstanding."""
        deadline = time.monotonic() + timeout_s
        while self.outstanding() and time.monotonic() < deadline:
            if alive is not None:
                alive()
            time.sleep(poll_s)
        return self.outstanding()

    def take(self) -> list[float]:
        """Latencies (ms) of the probes seen since the last take."""
        return [(v - p) * 1000.0 for p, v in self.take_pairs()]

    def take_pairs(self) -> list[tuple[float, float]]:
        with self.lock:
            pairs, self.done = self.done, []
        return pairs


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in a process group (Linux /proc).

    The job's CPU cost per event is a figure that other load on the machine does not distort
    the way wall-clock throughput is distorted."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of one process (0.0 when there is none or it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q / 100.0 * (len(ordered) - 1))))
    return ordered[idx]


N_USERS: Final = 50_000
N_ITEMS: Final = 5_000
SEED: Final = 11
BACKLOG_PROBE_EVERY: Final = 1_000


@dataclass(frozen=True, slots=True)
class Phase:
    """One generator run: ``n`` events unpaced (``rate`` 0), or ``rate`` events/s in all for
    ``seconds``; event ids carry the phase's name, so no phase repeats another's ids (the
    JVM front drops duplicates)."""

    name: str
    n: int = 0
    rate: float = 0.0
    seconds: float = 0.0
    probe_every: int = BACKLOG_PROBE_EVERY


PROBE_HANDOVER_S: Final = 0.02  # a probe reaches the prober at most this long after its send


def _generator(bootstrap: str, topic: str, shard: tuple[int, int], phase: Phase,
               out: Any, go: Any) -> None:
    """One generator process: builds its shard's events first (the storefront simulation and
    the JSON cost 20-50 µs an event in Python, more than sending), says ``ready``, waits for
    ``go``, then publishes them with its own producer. Probes (user, event time, produced wall
    s) and a final count go to ``out``."""
    from kafka import KafkaProducer

    from recs.synthetic import Storefront

    index, count = shard
    rate = phase.rate / count
    want = int(rate * phase.seconds * 1.02) + 1 if rate else \
        phase.n // count + (1 if index < phase.n % count else 0)
    shop = Storefront(seed=SEED, n_items=N_ITEMS, n_users=N_USERS)
    events = shop.events(10**12, start_ts=int(time.time() * 1000), shard=shard)
    built: list[tuple[bytes, bytes, str, int, bool]] = []
    for _ in range(want):
        ev: Interaction = next(events)
        ev = dataclasses.replace(ev, ts=int(time.time() * 1000),
                                 event_id=f"{phase.name}-{index}-{ev.event_id}")
        built.append((ev.user_id.encode(), ev.to_json(), ev.user_id, ev.ts,
                      ev.type in INTEREST))
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20,
                             batch_size=512 * 1024)
    out.put(("ready",))
    go.wait()
    start = time.perf_counter()
    sent = interest = 0
    last: tuple[str, int, float] | None = None
    probes: list[tuple[str, int, float]] = []
    while sent < len(built):
        if rate:
            elapsed = time.perf_counter() - start
            if elapsed >= phase.seconds:
                break
            due = min(len(built), int(elapsed * rate) + 1)
        else:
            due = len(built)
        while sent < due:
            key, value, user, ts, is_interest = built[sent]
            producer.send(topic, key=key, value=value)
            sent += 1
            if is_interest:
                interest += 1
                last = (user, ts, time.time())
                if interest % phase.probe_every == 0:
                    probes.append(last)
                    if len(probes) >= 100:
                        out.put(("probes", probes))
                        probes = []
        # the prober sees a probe only once it is handed over: at low rates a batch of 100 took
        # seconds to fill, and that wait was measured as the engine's latency
        if probes and time.time() - probes[0][2] >= PROBE_HANDOVER_S:
            out.put(("probes", probes))
            probes = []
        if rate:
            time.sleep(0.001)
    producer.flush()
    elapsed = time.perf_counter() - start
    producer.close()
    if last is not None:
        probes.append(last)
    out.put(("probes", probes))
    newest = max((b[3] for b in built[:sent]), default=0)
    out.put(("done", sent, interest, elapsed, newest))


def _generate(settings: Settings, phase: Phase, generators: int, prober: Prober) -> dict[str, Any]:
    """Run ``generators`` processes for one phase, started together once all have built their
    events; their probes go to ``prober`` as they come. Returns what they sent and how fast,
    from the common start to the last flush."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    go = ctx.Event()
    procs = [ctx.Process(target=_generator, daemon=True,
                         args=(settings.kafka_bootstrap, settings.topics.interactions,
                               (i, generators), phase, out, go)) for i in range(generators)]
    for proc in procs:
        proc.start()
    ready = 0
    done: list[tuple[int, int, float, int]] = []
    began = 0.0
    while len(done) < generators:
        try:
            msg = out.get(timeout=5)
        except queue.Empty:
            dead = [p for p in procs if not p.is_alive() and p.exitcode]
            if dead:
                raise RuntimeError(
                    f"bench-stream: a generator exited with {dead[0].exitcode}") from None
            continue
        if msg[0] == "ready":
            ready += 1
            if ready == generators:
                began = time.perf_counter()
                go.set()
        elif msg[0] == "probes":
            for user, ts, produced in msg[1]:
                prober.add(user, ts, produced)
        else:
            done.append((msg[1], msg[2], msg[3], msg[4]))
    for proc in procs:
        proc.join(timeout=30)
    wall = time.perf_counter() - began
    sent = sum(d[0] for d in done)
    return {"sent": sent, "interest": sum(d[1] for d in done), "seconds": round(wall, 2),
            "events_per_s": round(sent / max(d[2] for d in done)),
            "newest_ts": max(d[3] for d in done)}


def _model_events(client: SyncClient) -> tuple[int, int]:
    """The collaborative model's published header: events learned, events its feed skipped."""
    raw = client.get(keys.model_key(keys.MODEL_MF))
    if not raw:
        return 0, 0
    data = decode_envelope(cast(bytes, raw)).data
    return int(data["events"]), int(data.get("sampled_out", 0))


def _freshness(client: SyncClient) -> int:
    raw = cast(bytes | None, client.hget(keys.FRESHNESS_KEY, "stream"))
    return int(raw) if raw else 0


def main(argv: list[str]) -> int:
    from kafka import KafkaProducer

    from infra.services import Services
    from infra.topics import engine_topics, ensure_topics
    from recs import engine
    from recs.synthetic import Storefront
    from stream.job import LOADER_WRITER

    parser = argparse.ArgumentParser(prog="recs bench-stream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,2000,5000,10000,20000,50000")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--backlog", type=int, default=2_000_000)
    parser.add_argument("--generators", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--probe-every", type=int, default=20)
    parser.add_argument("--max-p99-ms", type=float, default=5_000.0)
    parser.add_argument("--drain-s", type=float, default=15.0)
    parser.add_argument("--backlog-timeout-s", type=float, default=3_600.0)
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r]

    base = Settings.from_env()
    run_dir = base.run_dir / "bench-stream"
    results: list[dict[str, Any]] = []
    backlog: dict[str, Any] = {}
    with Services(run_dir / "services", settings=base) as svc:
        prefix = f"bench-{uuid.uuid4().hex[:6]}."
        settings = dataclasses.replace(svc.settings, topics=Topics.with_prefix(prefix),
                                       run_dir=run_dir, parallelism=args.parallelism)
        t = settings.topics
        ensure_topics(settings.kafka_bootstrap, engine_topics(t, settings.partitions))
        shop = Storefront(seed=SEED, n_items=N_ITEMS, n_users=N_USERS)
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=5,
                                 batch_size=256 * 1024)
        for item in shop.catalogue(int(time.time() * 1000) - 60_000):
            producer.send(t.items, key=item.item_id.encode(), value=item.to_json())
        producer.flush()
        producer.close()
        client = sync_client(settings.redis_url)
        prober = Prober(client)
        poller = threading.Thread(target=prober.run, daemon=True)
        # 1. the backlog, before the job runs: the generator alone
        gen = _generate(settings, Phase("backlog", n=args.backlog), args.generators, prober)
        # the events' times are set when they are built, before the clock starts
        newest_ts = gen.pop("newest_ts")
        print(orjson.dumps({"generator": gen}).decode(), flush=True)
        logs = run_dir / "logs"
        job = engine.start_job(settings, logs, parallelism=args.parallelism,
                               checkpoint_dir=run_dir / "checkpoints")
        load = engine.start_loader(settings, logs) if settings.writer == LOADER_WRITER \
            else None
        try:
            def job_alive() -> None:
                if not job.alive():
                    raise RuntimeError(f"job died:\n{job.tail()}")

            # 2. the drain: from the job's first write until every probe and the freshness
            # stamp say the backlog is in Redis
            deadline = time.monotonic() + 600
            while not _freshness(client):
                job_alive()
                if time.monotonic() > deadline:
                    raise RuntimeError(f"bench-stream: no write in 600 s:\n{job.tail()}")
                time.sleep(0.05)
            first = time.time()
            cpu_before = group_cpu_seconds(job.pid)
            # the broker's and Redis's share, when this run started them (pid known)
            service_pids = {"broker": getattr(svc.kafka, "pid", None),
                            "redis": getattr(svc.redis, "pid", None)}
            service_before = {k: process_cpu_seconds(p) for k, p in service_pids.items()}
            model_before = _model_events(client)
            poller.start()
            unseen = prober.settle(args.backlog_timeout_s, poll_s=0.05, alive=job_alive)
            while _freshness(client) < newest_ts and not unseen:
                job_alive()
                time.sleep(0.05)
            drained = time.time()
            cpu = group_cpu_seconds(job.pid) - cpu_before
            service_cpu = {k: process_cpu_seconds(p) - service_before[k]
                           for k, p in service_pids.items()}
            model_after = _model_events(client)
            model_learned = model_after[0] - model_before[0]
            model_skipped = model_after[1] - model_before[1]
            prober.take()
            seconds = drained - first
            backlog = {"events": gen["sent"], "drained_s": round(seconds, 2),
                       "events_per_s": round(gen["sent"] / seconds) if not unseen else 0,
                       "unseen": unseen, "job_cpu_s": round(cpu, 1),
                       "job_cpu_us_per_event": round(cpu / gen["sent"] * 1e6),
                       **{f"{k}_cpu_us_per_event": round(c / gen["sent"] * 1e6, 1)
                          for k, c in service_cpu.items() if service_pids[k] is not None},
                       "model_events": model_learned,
                       "model_events_per_s": round(model_learned / seconds),
                       "model_sampled_share": round(
                           model_skipped / max(1, model_learned + model_skipped), 3),
                       "model_lag_events": max(0, gen["interest"] - model_learned
                                               - model_skipped)}
            print(orjson.dumps({"backlog": backlog}).decode(), flush=True)
            # 3. rate steps on the warm job
            for step, rate in enumerate(rates):
                # the step's index keeps ids unique when a rate repeats (the job drops repeats)
                phase = Phase(f"r{step}-{rate}", rate=rate, seconds=args.seconds,
                              probe_every=args.probe_every)
                sent = _generate(settings, phase, args.generators, prober)
                achieved = sent["sent"] / args.seconds
                lost = prober.settle(args.drain_s, poll_s=0.05)
                lat = prober.take()
                row = {"rate": rate, "achieved": round(achieved), "probes": len(lat) + lost,
                       "unseen": lost, "p50_ms": round(percentile(lat, 50), 1),
                       "p99_ms": round(percentile(lat, 99), 1)}
                row["sustained"] = lost == 0 and row["p99_ms"] <= args.max_p99_ms \
                    and achieved >= 0.95 * rate
                results.append(row)
                print(orjson.dumps(row).decode(), flush=True)
                if not row["sustained"]:
                    break
                prober.settle(120)
                prober.take()
        finally:
            prober.stop.set()
            job.stop()
            if load is not None:
                load.stop()
    sustained = [r for r in results if r["sustained"]]
    at_10k = [r for r in results if r["rate"] == 10_000]
    below = [r for r in sustained if r["rate"] <= 10_000]
    ref = below[-1] if below else (results[0] if results else {})
    summary = {
        "backlog_events_per_s": backlog.get("events_per_s"),
        "events_per_s": sustained[-1]["rate"] if sustained else 0,
        "freshness_p99_ms_at_10k": at_10k[0]["p99_ms"] if at_10k else None,
        "freshness_p50_ms": ref.get("p50_ms"),
        "freshness_p99_ms": ref.get("p99_ms"),
        "freshness_at_rate": ref.get("rate"),
        "model_events_per_s": backlog.get("model_events_per_s"),
        "model_sampled_share": backlog.get("model_sampled_share"),
        "model_lag_events": backlog.get("model_lag_events"),
        "generator_events_per_s": gen["events_per_s"],
        "generators": args.generators,
        "job_cpu_us_per_event": backlog.get("job_cpu_us_per_event"),
        "broker_cpu_us_per_event": backlog.get("broker_cpu_us_per_event"),
        "redis_cpu_us_per_event": backlog.get("redis_cpu_us_per_event"),
        "backlog_events": args.backlog,
        "runtime": settings.stream_runtime,
        "writer": settings.writer,
        "models": settings.models,
        "parallelism": args.parallelism,
        **machine(),
        "steps": results,
    }
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
