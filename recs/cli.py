"""The ``recs`` console command: one entry point, one module per subcommand.

Each subcommand lives in its own module exposing ``main(argv: list[str]) -> int`` and is imported
only when used, so ``recs --help`` stays fast and does not load PyFlink.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "infra": ("infra.services", "start/stop the local Kafka broker and Redis (up|down|status)"),
    "produce": ("recs.producer", "publish a synthetic storefront or replay a public log to Kafka"),
    "job": ("stream.job", "run the PyFlink topology (Kafka -> operators -> recs.updates)"),
    "load": ("stream.loader", "apply recs.updates to Redis (batched, versioned, idempotent)"),
    "blend-learner": ("stream.blend_learner_run",
                      "learn the homepage blend's weights from the clickstream, publish them"),
    "monitor": ("stream.monitor", "export Kafka lag, DLQ, checkpoints and Redis freshness metrics"),
    "serve": ("serving.app", "run the HTTP server"),
    "keys": ("recs.keys", "make an API keys file, sign a user token (docs/api.md)"),
    "demo": ("recs.demo", "run everything end to end and print a summary"),
    "bench-stream": ("recs.bench_stream", "drive Kafka -> Flink -> Redis at rising rates"),
    "bench-stages": ("recs.bench_stages", "each stream stage alone, Python and its JVM twin"),
    "bench-serve": ("recs.bench_serve", "load the server and a bare one-key baseline alike"),
    "replay": ("stream.reference", "apply a log with the in-process reference runner"),
    "eval": ("recs.evaluation.cli", "prequential evaluation: the engine vs baselines on a log"),
    "ab": ("recs.abtest.cli", "A/B experiment report: CTR, conversion, lift, p-values"),
    "status": ("recs.status", "one-screen health from the metric endpoints (exit 1 = alert)"),
}


def _usage() -> str:
    lines = ["usage: recs <command> [options]", "", "commands:"]
    lines += [f"  {name:<13} {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"recs: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest))


if __name__ == "__main__":
    raise SystemExit(main())
