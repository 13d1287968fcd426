"""Stage benchmark: each stream stage alone, its Python shell and its JVM twin side by side.

    recs bench-stages [--parallelism 1] [--scale 1.0] [--only sessions,...] [--runtime jvm]
                      [--similar-recent SECONDS]
    make bench-stages

A generator source (``Bench.java``: synthetic storefront events as raw JSON, the job's Kafka
input) feeds a chain of stages into a discarding sink, in Flink's local mini-cluster (thread
mode, heap state, no checkpoints, no Kafka, no Redis). A stage needs the output of the ones
before it, so each row runs the chain *up to* that stage; ``us_per_event`` is the chain's cost
per event, and the stage's own cost is the difference to the row above. Each run is its own
process (a fresh JVM); the rate is events / (end of the job - first event out of the source),
so start-up is not counted but the JIT's warm-up is. ``cpu_us_per_event`` is the CPU time the
whole process (JVM, embedded Python, JIT, GC) spent over the same span, per event: on a shared
machine the wall-clock rate measures the neighbours too, the CPU cost does not
(``1e6 / cpu_us_per_event`` is what one dedicated core would carry).

Rows: ``source`` (generator alone), ``parse``, ``dedup`` (JVM only), ``sessions`` (the whole
per-event front: parse, watermarks, [dedup], sessions), ``neighbours`` (the front and the
co-visitation / co-purchase stage), ``topology`` (``define_workflow`` with
the models off: the front, neighbours, items and trending; catalogue stream empty).
``--similar-recent SECONDS`` runs every row with the second similar-items list at that
half-life (``EngineConfig.similar_recent``; 1 day by default, as in the job; 0: off).

The last line is one JSON object: ``{"stages": [{"stage", "runtime", "events",
"events_per_s", "us_per_event", "cpu_us_per_event"}, ...], "parallelism",
"similar_recent_s", "cpu_count", "load_avg_1m"}``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import orjson

from operators.config import SIMILAR_RECENT_HALF_LIFE_S, EngineConfig, recent_similar
from stream.topology import JVM, PYTHON

USERS: Final = 100_000
ITEMS: Final = 20_000
SESSION_LENGTH: Final = 10
# events per run at --scale 1: about 10 s of each chain on an idle 2-core machine
RUNS: Final[tuple[tuple[str, str, int], ...]] = (
    ("source", JVM, 4_000_000),
    ("parse", PYTHON, 150_000),
    ("parse", JVM, 2_000_000),
    ("dedup", JVM, 1_500_000),
    ("sessions", PYTHON, 60_000),
    ("sessions", JVM, 1_000_000),
    ("neighbours", PYTHON, 30_000),
    ("neighbours", JVM, 400_000),
    ("topology", PYTHON, 20_000),
    ("topology", JVM, 30_000),
)


def _chain(env: Any, stage: str, runtime: str, raw: Any, similar_recent_s: float) -> list[Any]:
    """The streams to discard for ``stage`` run on ``runtime`` (``similar_recent_s`` > 0: the
    second similar-items list on at that half-life)."""
    from pyflink.common.typeinfo import Types

    from stream import jvm, topology
    from stream.functions import DLQ, EVENT_ROW, UPDATES, NeighbourFunction, ParseInteractions

    base = EngineConfig()
    engine = EngineConfig(similar_recent=recent_similar(base.similar, similar_recent_s))
    cfg = topology.TopologyConfig(engine=engine, models=False, runtime=runtime)
    if stage == "source":
        return [raw]
    if stage == "parse" and runtime == PYTHON:
        parsed = raw.process(ParseInteractions(), output_type=EVENT_ROW).name("parse")
        return [parsed, parsed.get_side_output(DLQ)]
    if stage == "parse":
        p = jvm.parse(raw)
        return [p.events, p.dead]
    if stage == "dedup":
        p = jvm.parse(raw)
        events = jvm.watermarks(p.events, cfg.out_of_orderness_ms, cfg.idleness_ms)
        grace = cfg.out_of_orderness_ms + cfg.state_expiry_lateness_ms
        return [jvm.dedup(events, engine, grace_ms=grace), p.dead]
    if stage == "sessions":
        front = (topology._jvm_front(raw, cfg) if runtime == JVM
                 else topology._python_front(raw, cfg))
        return [front.pairs, front.session_updates, front.dead]
    if stage == "neighbours":
        front = (topology._jvm_front(raw, cfg) if runtime == JVM
                 else topology._python_front(raw, cfg))
        if runtime == JVM:
            updates = jvm.neighbours(front.pairs, engine, cfg.emit_interval_ms)
        else:
            updates = (front.pairs.key_by(topology._relation_key, key_type=Types.STRING())
                       .process(NeighbourFunction(engine, cfg.emit_interval_ms),
                                output_type=Types.STRING())
                       .name("neighbours").get_side_output(UPDATES))
        return [updates, front.session_updates, front.dead]
    if stage == "topology":
        items = _source(env, 0, "", "no-items")
        updates, dead = topology.define_workflow(raw, items, cfg)
        return [updates, dead]
    raise ValueError(f"bench-stages: unknown stage {stage!r}")


def _source(env: Any, n: int, probe: str, name: str = "generator") -> Any:
    from pyflink.datastream import DataStream
    from pyflink.java_gateway import get_gateway

    bench = get_gateway().jvm.recs.stream.Bench
    return DataStream(bench.source(env._j_stream_execution_environment, n, USERS, ITEMS,
                                   SESSION_LENGTH, probe, name))


def run_one(stage: str, runtime: str, n: int, parallelism: int,
            similar_recent_s: float = SIMILAR_RECENT_HALF_LIFE_S) -> dict[str, Any]:
    """One measurement in this process (called in a child process by :func:`main`)."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.java_gateway import get_gateway

    from stream import jvm
    from stream.job import prepare_python_env

    prepare_python_env()
    conf = Configuration()
    conf.set_string("python.execution-mode", "thread")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("pipeline.jars", jvm.jar().resolve().as_uri())
    conf.set_string("taskmanager.numberOfTaskSlots", str(parallelism))
    conf.set_string("rest.bind-port", "0")
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(parallelism)
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        probe = str(Path(tmp) / "first")
        raw = _source(env, n, probe)
        bench = get_gateway().jvm.recs.stream.Bench
        for i, stream in enumerate(_chain(env, stage, runtime, raw, similar_recent_s)):
            bench.discard(stream._j_data_stream, f"discard-{i}")
        env.execute(f"bench-stages-{stage}-{runtime}")
        ended = time.time() * 1000
        cpu_ended = _process_cpu_ns(get_gateway().jvm.ProcessHandle.current().pid())
        firsts = [tuple(map(int, p.read_text().split())) for p in Path(tmp).glob("first.*")]
    seconds = (ended - min(wall for wall, _ in firsts)) / 1000
    cpu_s = (cpu_ended - min(cpu for _, cpu in firsts)) / 1e9
    return {"stage": stage, "runtime": runtime, "events": n,
            "events_per_s": round(n / seconds), "us_per_event": round(seconds / n * 1e6, 2),
            "cpu_us_per_event": round(cpu_s / n * 1e6, 2)}


def _process_cpu_ns(pid: int) -> int:
    """User + system CPU time of a process, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recs bench-stages", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallelism", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the events of every run (0.1 for a quick look)")
    parser.add_argument("--only", default="", help="comma-separated stages (default: all)")
    parser.add_argument("--runtime", choices=(PYTHON, JVM), default=None,
                        help="only the rows of one runtime")
    parser.add_argument("--similar-recent", type=float, default=SIMILAR_RECENT_HALF_LIFE_S,
                        metavar="SECONDS", help="the second similar-items list's half-life "
                        "(default: the job's, 1 day; 0: off)")
    parser.add_argument("--one", nargs=3, metavar=("STAGE", "RUNTIME", "EVENTS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        stage, runtime, n = args.one
        result = run_one(stage, runtime, int(n), args.parallelism, args.similar_recent)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    only = {s for s in args.only.split(",") if s}
    rows = []
    out: Callable[[str], Any] = sys.stderr.write
    out(f"{'stage':<10} {'runtime':<8} {'events':>9} {'events/s':>10} {'us/event':>9} "
        f"{'cpu us/event':>13}\n")
    for stage, runtime, n in RUNS:
        if (only and stage not in only) or (args.runtime and runtime != args.runtime):
            continue
        events = max(1_000, int(n * args.scale))
        proc = subprocess.run(
            [sys.executable, "-m", "recs.bench_stages", "--parallelism",
             str(args.parallelism), "--similar-recent", repr(args.similar_recent),
             "--one", stage, runtime, str(events)],
            capture_output=True, text=True, check=False, env=os.environ.copy())
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout[-2000:] + proc.stderr[-4000:])
            raise SystemExit(f"bench-stages: {stage}/{runtime} failed ({proc.returncode})")
        row = orjson.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(row)
        out(f"{stage:<10} {runtime:<8} {events:>9} {row['events_per_s']:>10} "
            f"{row['us_per_event']:>9} {row['cpu_us_per_event']:>13}\n")
    summary = {"stages": rows, "parallelism": args.parallelism,
               "similar_recent_s": args.similar_recent, "cpu_count": os.cpu_count(),
               "load_avg_1m": round(os.getloadavg()[0], 2)}
    sys.stdout.write(orjson.dumps(summary).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
