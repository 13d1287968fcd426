"""The learned blend's settings against the log they fail on: one run per setting, side by side.

    python -m recs.evaluation.tune_learned --sample-users 0.1
    python -m recs.evaluation.tune_learned --sample-users 0.1 --set similar.half_life_s=86400
    python -m recs.evaluation.tune_learned --sample-users 0.1 --lb negatives=6 --lb pool=100
    python -m recs.evaluation.tune_learned --last-days 3

Replays a log (default: the whole Globo log, time split, as ``recs eval --dataset globo
--limit 0 --protocol time-split``; ``--sample-users`` keeps a stable share of its users, see
:meth:`recs.datasets.Dataset.user_sample`, ``--last-days`` its last days, every user, see
:meth:`~recs.datasets.Dataset.last_days`) through one engine learner whose settings are the
engine's defaults changed by ``--set PART.FIELD=VALUE`` (a field of :class:`operators.config.
EngineConfig`'s parts: ``session``, ``similar``, ``bought``, ``trending``) and ``--lb
FIELD=VALUE`` (a field of :class:`operators.learned_blend.LearnedBlendConfig`), and scores the
learned blend (``engine``), its hand-tuned prior and the sources beside the baselines named by
``--baselines``. Prints a Markdown table and, last, one JSON line with the learned blend's
strongest weights. The grids run this way are in docs/quality/tuning.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from operators.config import EngineConfig, recent_similar
from operators.learned_blend import LearnedBlendConfig
from recs import datasets
from recs.evaluation import protocols
from recs.evaluation.api import Method
from recs.evaluation.cli import BASELINES, FOLDERS
from recs.evaluation.engine_methods import engine_methods
from recs.evaluation.engine_recs import TUNED_BLEND, TUNED_CONFIG, EngineLearner
from recs.evaluation.harness import run
from recs.evaluation.tune import markdown, rows

ENGINE: tuple[str, ...] = ("engine", "engine_prior", "engine.similar", "engine.session")
PARTS: tuple[str, ...] = ("session", "similar", "bought", "trending")


def _typed(current: Any, text: str, where: str) -> Any:
    kind = type(current)
    if kind is bool:
        if text not in ("true", "false"):
            raise ValueError(f"{where}: expected true or false, got {text!r}")
        return text == "true"
    try:
        return kind(text)
    except ValueError as exc:
        raise ValueError(f"{where}: expected a {kind.__name__}, got {text!r}") from exc


def _split(setting: str, option: str) -> tuple[str, str]:
    name, sep, value = setting.partition("=")
    if not sep or not name:
        raise ValueError(f"{option}: expected NAME=VALUE, got {setting!r}")
    return name, value


def engine_config(settings: list[str], base: EngineConfig = TUNED_CONFIG) -> EngineConfig:
    """``base`` with each ``PART.FIELD=VALUE`` applied (the value typed as the field's default).

    >>> engine_config(["similar.half_life_s=86400"]).similar.half_life_s
    86400.0
    """
    cfg = base
    for setting in settings:
        path, value = _split(setting, "--set")
        part, _, name = path.partition(".")
        if part not in PARTS:
            raise ValueError(f"--set: part must be one of {list(PARTS)}, got {part!r}")
        current = getattr(cfg, part)
        if name not in current.__dataclass_fields__:
            raise ValueError(f"--set: {part} has no field {name!r}")
        typed = _typed(getattr(current, name), value, f"--set {path}")
        cfg = dataclasses.replace(cfg, **{part: dataclasses.replace(current, **{name: typed})})
    return cfg


def blend_config(settings: list[str]) -> LearnedBlendConfig:
    """:class:`LearnedBlendConfig` with each ``FIELD=VALUE`` applied.

    >>> blend_config(["negatives=6"]).negatives
    6
    """
    base = LearnedBlendConfig()
    fields: dict[str, Any] = {}
    for setting in settings:
        name, value = _split(setting, "--lb")
        if name not in base.__dataclass_fields__:
            raise ValueError(f"--lb: LearnedBlendConfig has no field {name!r}")
        fields[name] = _typed(getattr(base, name), value, f"--lb {name}")
    return dataclasses.replace(base, **fields)


def methods(cfg: EngineConfig, lb: LearnedBlendConfig, baselines: list[str],
            engine_names: tuple[str, ...] = ENGINE) -> tuple[list[Method], EngineLearner]:
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"--baselines: unknown {unknown}; choose from {sorted(BASELINES)}")
    odd = [n for n in engine_names if n not in ENGINE]
    if odd or not engine_names or engine_names[0] != "engine":
        raise ValueError(f"--engine: 'engine' first, then any of {list(ENGINE[1:])}; got "
                         f"{list(engine_names)}")
    engine = [m for m in engine_methods(cfg, TUNED_BLEND) if m.name in engine_names]
    learner = engine[0].learner
    if not isinstance(learner, EngineLearner):
        raise TypeError("tune_learned: the engine's methods share no EngineLearner")
    learner.learn_blend(TUNED_BLEND, lb)
    return [*engine, *(BASELINES[b]() for b in baselines)], learner


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recs.evaluation.tune_learned",
                                description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="globo", choices=datasets.DATASETS)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--protocol", default="time-split", choices=protocols.PROTOCOLS)
    p.add_argument("--limit", type=int, default=0, help="events per file (0: all)")
    p.add_argument("--sample-users", type=float, default=None, metavar="SHARE")
    p.add_argument("--last-days", type=float, default=None, metavar="DAYS",
                   help="keep only the log's last DAYS days, every user (recent traffic at "
                        "its full density)")
    p.add_argument("--set", action="append", default=[], metavar="PART.FIELD=VALUE")
    p.add_argument("--lb", action="append", default=[], metavar="FIELD=VALUE")
    p.add_argument("--baselines", default="sr,vsknn,ar",
                   help="comma-separated baselines run beside (empty: none)")
    p.add_argument("--similar-recent", type=float, default=None, metavar="SECONDS",
                   help="the second similar-items list's half-life (the learned blend's simr* "
                        "features) instead of the default 1 day; 0: without the list")
    p.add_argument("--engine", default=",".join(ENGINE),
                   help="the engine's methods scored, 'engine' first (fewer: a faster run; "
                        "they share one learner)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        cfg, lb = engine_config(args.set), blend_config(args.lb)
        if args.similar_recent is not None:  # recent_similar refuses a negative half-life
            cfg = dataclasses.replace(cfg, similar_recent=recent_similar(cfg.similar,
                                                                         args.similar_recent))
        ms, learner = methods(cfg, lb, [b for b in args.baselines.split(",") if b],
                              tuple(n for n in args.engine.split(",") if n))
        data = datasets.load(args.dataset, args.data_dir / FOLDERS[args.dataset],
                             limit=args.limit or None)
        if args.sample_users is not None:
            data = data.user_sample(args.sample_users)
        if args.last_days is not None:
            data = data.last_days(args.last_days)
    except (datasets.DatasetError, ValueError) as exc:
        print(f"tune_learned: {exc}", file=sys.stderr)
        return 2
    plan = protocols.make_plan(args.protocol, data)
    for note in [f"{args.dataset}: {len(data.events):,} events", *plan.notes,
                 f"settings: --set {args.set} --lb {args.lb}"]:
        print(f"# {note}")
    outcome = run(plan, ms, items=data.items, label="tune learned",
                  progress=not args.no_progress)
    table = rows(outcome, plan)
    print(markdown(table))
    model = learner.blend_model
    strongest = sorted(model.weights.items(), key=lambda kv: -abs(kv[1]))[:10]
    print(orjson.dumps({
        "rows": table, "set": args.set, "lb": args.lb, "events": outcome.events,
        "served_learned": learner.blend_outcomes[1], "served_prior": learner.blend_outcomes[0],
        "weights": {k: round(v, 3) for k, v in strongest},
        "seconds": round(time.perf_counter() - started, 1)}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
