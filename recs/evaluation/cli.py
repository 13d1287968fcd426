"""``recs eval``: prequential evaluation of the engine and the baselines on a public log.

    recs eval --dataset rsc15 --data-dir ../shared/data
    recs eval --dataset ml100k --data-dir ../shared/data --report docs/quality
    recs eval --dataset ml100k --data-dir ../shared/data --methods engine,online_mf,pop
    recs eval --dataset ml100k --data-dir ../shared/data --protocol rating
    recs eval --dataset rsc15 --data-dir ../shared/data --save-blend docs/quality/blend-rsc15.json
    recs eval --dataset globo --data-dir ../shared/data --holdout docs/quality/blend-rsc15.json
    recs eval --dataset globo --data-dir ../shared/data --limit 0 --protocol time-split \
        --sample-users 0.1

``--sample-users SHARE`` keeps the whole histories of a stable share of the users (every day of
the log): the whole Globo log, time split, costs about 2 hours of one core, a 10 % sample of its
users about 7 minutes. ``--last-days DAYS`` keeps every user's events of the log's last days
(its last 3 days: an eighth of the events, 15 minutes): co-visitation as dense as in the whole
log, which a user sample thins out; it is how changes are compared before the whole run
(docs/quality/tuning.md). The runs are stored as ``<name>-users<percent>`` and
``<name>-last<days>d``. ``--similar-recent SECONDS`` runs the engine with the second
similar-items list at another half-life than the default 1 day (0: without it), what a
deployment with ``RECS_SIMILAR_RECENT_HALF_LIFE_S`` runs; such runs are compared in
docs/quality/tuning.md and not stored with ``--report``, since the results page holds the
defaults.

Prints the protocol, a Markdown table and, as the last line, one JSON object mapping each method
to its metrics plus ``events`` and ``seconds``. ``--report DIR`` also stores the run as
``DIR/<dataset>.json`` with an HR@K plot ``DIR/<dataset>.png`` and regenerates the results page
beside ``DIR`` (``docs/quality`` -> ``docs/quality.md``).

**Hold-outs.** ``engine`` is the learned blend (:mod:`operators.learned_blend`), which learns
its weights on the log it is scored on, test-then-train, as it would in a deployment.
``--save-blend FILE`` stores the weights it reached at the end of a run (the value the stream
would publish at ``recs:v1:model:blend``, plus where it was learned); ``--holdout FILE`` adds
``engine_holdout``: the blend with those weights frozen, learned on another log and never
updated on this one (served in the learned order only if it was warm where it was learned).
Everything else the engine uses (half-lives, the hand-tuned blend, the online model's settings)
is the engine's defaults, chosen on rsc15, diginetica and MovieLens (docs/quality/tuning.md);
Globo was never used to choose them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Final

import orjson

from operators import learned_blend
from operators.config import EngineConfig, recent_similar
from operators.learned_blend import BlendModel, LearnedBlendConfig
from recs import datasets
from recs.evaluation import protocols, report
from recs.evaluation.api import Method
from recs.evaluation.baselines import (
    AssociationRules,
    CoVisitation,
    Popularity,
    RecentPopularity,
    SequentialRules,
)
from recs.evaluation.engine_methods import LearnedBlend, engine_methods
from recs.evaluation.engine_recs import TUNED_BLEND, TUNED_CONFIG, EngineLearner, describe
from recs.evaluation.harness import Outcome, run
from recs.evaluation.learned import LEARNED_METHODS, RATING_MF, RatingRun, rating_main, rating_run
from recs.evaluation.page import write_page
from recs.evaluation.sknn import VSKNN

#: folder of each data set under ``--data-dir`` (the layout of ``../shared/data``)
FOLDERS: Final = {"ml100k": "ml-100k", "diginetica": "diginetica", "rsc15": "rsc15-sample",
                  "globo": "globo-news", "csv": "."}
#: Globo has 3M clicks; by default the first 100k lines of the file, which holds sessions in
#: the order they started (the sessions of about the first day, 2017-10-01).
DEFAULT_LIMIT: Final = {"globo": 100_000}
PAGE_ORDER: Final = ("rsc15", "ml100k", "diginetica", "globo", "csv")
BASELINES: Final[dict[str, Callable[[], Method]]] = {
    "pop": Popularity, "recent_pop": RecentPopularity, "covisit": CoVisitation,
    "ar": AssociationRules, "sr": SequentialRules, "vsknn": VSKNN,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recs eval", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=datasets.DATASETS)
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"),
                   help="folder holding the data sets' folders (default: ../shared/data)")
    p.add_argument("--path", type=Path, default=None,
                   help="the data set's own folder or file (overrides --data-dir)")
    p.add_argument("--protocol", choices=("auto", *protocols.PROTOCOLS, protocols.RATING),
                   default="auto", help="auto: streaming for ml100k, time-split for rsc15, else "
                   "next-item; rating: MAE/RMSE of rating prediction (recs.evaluation.learned)")
    p.add_argument("--limit", type=int, default=None,
                   help="read at most N events per file (globo default: 100000; 0 = all)")
    p.add_argument("--sample-users", type=float, default=None, metavar="SHARE",
                   help="keep only a stable sample of the users (CRC-32 of the user id below "
                   "SHARE of 2**32), every day of the log: a whole log at a fraction of the cost")
    p.add_argument("--last-days", type=float, default=None, metavar="DAYS",
                   help="keep only the log's last DAYS days, every user (ended where the time "
                   "split ends it): recent traffic at its full density")
    p.add_argument("--similar-recent", type=float, default=None, metavar="SECONDS",
                   help="the engine keeps the second similar-items list at this half-life "
                   "instead of the default (1 day), as a deployment with "
                   "RECS_SIMILAR_RECENT_HALF_LIFE_S does (0: off; not with --report: the "
                   "results page holds the defaults)")
    p.add_argument("--warmup", type=float, default=0.2,
                   help="next-item: share of events that only train (default 0.2)")
    p.add_argument("--frozen", action="store_true",
                   help="time-split: do not learn the test part (session-rec's protocol)")
    p.add_argument("--no-repeats", action="store_true",
                   help="next-item: a click on an item already in the session is no target")
    p.add_argument("--methods", default=None,
                   help="comma-separated subset, e.g. engine,engine_static,online_mf,ar "
                   "(default: all)")
    p.add_argument("--columns", default=None, help="csv: column map, e.g. user=u,item=i,ts=t")
    p.add_argument("--ts-unit", default="s", help="csv: s, ms, us or iso")
    p.add_argument("--type-map", default=None,
                   help="csv: the file's event types onto the engine's, e.g. "
                   "pageview=view,addtocart=add_to_cart,transaction=purchase")
    p.add_argument("--save-blend", type=Path, default=None,
                   help="write the learned blend's final weights here (JSON)")
    p.add_argument("--holdout", type=Path, default=None,
                   help="a --save-blend file from another log: adds engine_holdout, the "
                   "learned blend frozen with those weights")
    p.add_argument("--report", type=Path, default=None,
                   help="store JSON + plot in this folder and regenerate <folder>.md")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def build_methods(selected: list[str] | None, holdout: Path | None = None,
                  cfg: EngineConfig = TUNED_CONFIG) -> list[Method]:
    frozen = load_blend(holdout) if holdout is not None else None
    methods: list[Method] = [*engine_methods(cfg, TUNED_BLEND, frozen)]
    methods += [make() for make in BASELINES.values()]
    methods += [make() for make in LEARNED_METHODS.values()]
    if selected is None:
        return methods
    known = {m.name for m in methods}
    unknown = [s for s in selected if s not in known]
    if unknown:
        raise ValueError(f"--methods: unknown {unknown}; choose from {sorted(known)}")
    return [m for m in methods if m.name in selected]


def load_blend(path: Path) -> tuple[BlendModel, LearnedBlendConfig, str]:
    """A ``--save-blend`` file: the model, its config and where it was learned."""
    try:
        doc = orjson.loads(path.read_bytes())
        model, cfg = learned_blend.from_published(doc)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"--holdout {path}: not a --save-blend file ({exc})") from None
    source = doc.get("learned_on")
    if not isinstance(source, str) or not source:
        raise ValueError(f"--holdout {path}: learned_on must name the log, got {source!r}")
    return model, cfg, source


def save_blend(path: Path, methods: list[Method], learned_on: str) -> bool:
    """Write the learned blend of ``methods`` (if any) with ``learned_on``."""
    for m in methods:
        if isinstance(m, LearnedBlend):
            eng = m.learner
            if isinstance(eng, EngineLearner):
                doc = {"learned_on": learned_on,
                       **learned_blend.published(eng.blend_model, eng.blend_cfg)}
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 |
                                              orjson.OPT_SORT_KEYS) + b"\n")
                return True
    return False


def blend_notes(methods: list[Method]) -> list[str]:
    """What the learned blend did in the run: events, how often its order was served, its
    pairwise AUC and its strongest weights."""
    for m in methods:
        eng = m.learner
        if isinstance(m, LearnedBlend) and isinstance(eng, EngineLearner):
            model = eng.blend_model
            prior, learned = eng.blend_outcomes
            total = prior + learned
            auc = learned_blend.pairwise_auc(model)
            top = sorted(model.weights.items(), key=lambda kv: -abs(kv[1]))[:8]
            weights = ", ".join(f"{k} {v:+.2f}" for k, v in top)
            return [f"learned blend: {model.labelled:,} labelled events of {model.events:,}; "
                    f"the learned order served for {learned / total if total else 0:.1%} of "
                    f"them (warm at the end: {learned_blend.is_warm(model, eng.blend_cfg)}); "
                    f"pairwise AUC {auc if auc is None else round(auc, 4)}; moving HR@20+MRR@20 "
                    f"learned {model.learned_gain:.4f}, hand-tuned {model.prior_gain:.4f}; "
                    f"strongest weights: {weights}"]
    return []


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    path = args.path or args.data_dir / FOLDERS[args.dataset]
    limit = args.limit if args.limit is not None else DEFAULT_LIMIT.get(args.dataset)
    limit = limit or None
    started = time.perf_counter()
    try:
        if args.similar_recent is not None and args.report is not None:
            raise ValueError("--similar-recent is not stored with --report: the results page "
                             "holds the engine's defaults (docs/quality/tuning.md has the runs)")
        methods = build_methods(args.methods.split(",") if args.methods else None,
                                args.holdout, engine_config(args))
        data = datasets.load(args.dataset, path, limit=limit, columns=args.columns,
                             ts_unit=args.ts_unit, type_map=args.type_map)
        loaded = len(data.events)
        if args.sample_users is not None:
            data = data.user_sample(args.sample_users)
        if args.last_days is not None:
            data = data.last_days(args.last_days)
    except (datasets.DatasetError, ValueError) as exc:
        print(f"recs eval: {exc}", file=sys.stderr)
        return 2
    if not data.events:
        print(f"recs eval: {path}: no events", file=sys.stderr)
        return 2
    if args.protocol == protocols.RATING:
        if args.report is None:
            return rating_main(data.events, progress=not args.no_progress)
        done = rating_run(data.events, progress=not args.no_progress)
        if done is None:
            return rating_main(data.events)  # explains the error
        for line in done.notes:
            print(f"# {line}")
        print(done.table)
        _write_rating_report(args, done, path, time.perf_counter() - started)
        print(orjson.dumps(done.result).decode())
        return 0
    protocol = protocols.default_protocol(args.dataset) if args.protocol == "auto" \
        else args.protocol
    plan = protocols.make_plan(protocol, data, warmup=args.warmup, frozen=args.frozen,
                               repeats=not args.no_repeats)
    what = f"{args.dataset} from {path.name}: {len(data.events):,} events"
    if limit:
        what += f" (the first {limit:,} per file, in file order)"
    if args.sample_users is not None:
        what += (f", those of a {args.sample_users:.0%} sample of the users (of {loaded:,}; "
                 f"CRC-32 of the user id)")
    if args.last_days is not None:
        what += f", those of its last {args.last_days:g} days (of {loaded:,})"
    notes = [what, *plan.notes]
    for line in notes:
        print(f"# {line}")
    sys.stdout.flush()
    outcome = run(plan, methods, items=data.items, label=args.dataset,
                  progress=not args.no_progress)
    outcome.seconds = time.perf_counter() - started  # loading included
    outcome.notes = [*notes, *blend_notes(methods)]
    descriptions = {m.name: m.description for m in methods}
    table = report.table(outcome, protocol, descriptions)
    print(table)
    for line in report.comparison(outcome):
        print(f"# {line}")
    if args.save_blend is not None:
        learned_on = args.dataset + (f" (first {limit:,} events)" if limit else "")
        if not save_blend(args.save_blend, methods, learned_on):
            print("# --save-blend: no learned blend in --methods (engine)", file=sys.stderr)
    if args.report is not None:
        _write_report(args, protocol, outcome, table, path, limit)
    print(orjson.dumps(report.summary(outcome, protocol)).decode())
    return 0


def engine_config(args: argparse.Namespace) -> EngineConfig:
    """The engine's defaults, with the second similar-items list's half-life when one is given
    (0: without the list)."""
    if args.similar_recent is None:
        return TUNED_CONFIG
    return replace(TUNED_CONFIG, similar_recent=recent_similar(TUNED_CONFIG.similar,
                                                               args.similar_recent))


def _write_report(args: argparse.Namespace, protocol: str, outcome: Outcome, table: str,
                  path: Path, limit: int | None) -> None:
    folder: Path = args.report
    name = args.dataset
    if protocol != protocols.default_protocol(args.dataset):
        name += f"-{protocol}"
    if args.frozen:
        name += "-frozen"
    if args.sample_users is not None:
        name += f"-users{args.sample_users * 100:g}"
    if args.last_days is not None:
        name += f"-last{args.last_days:g}d"
    png = folder / f"{name}.png"
    drawn = report.plot(outcome.curves, png, f"{name}: HR@K, {protocol}")
    if not drawn:
        print("# no plot: matplotlib is not installed", file=sys.stderr)
    command = _command(args)
    data_name = f"`{path.name}`" + (f", first {limit:,} events per file" if limit else "")
    if args.sample_users is not None:
        data_name += f", a {args.sample_users:.0%} sample of the users"
    if args.last_days is not None:
        data_name += f", its last {args.last_days:g} days"
    rec = report.record(run=name, dataset=args.dataset, data=data_name, protocol=protocol,
                        command=command, outcome=outcome, table_md=table,
                        engine={**describe(TUNED_CONFIG, TUNED_BLEND),
                                "learned_blend": LearnedBlendConfig().to_dict()},
                        plot_name=png.name if drawn else None)
    if args.holdout is not None:
        rec["holdout_from"] = load_blend(args.holdout)[2]
    report.write_json(folder / f"{name}.json", rec, outcome.curves)
    write_page(folder, folder.with_suffix(".md"), PAGE_ORDER)


def _command(args: argparse.Namespace) -> str:
    command = f"recs eval --dataset {args.dataset} --data-dir ../shared/data"
    if args.protocol != "auto":
        command += f" --protocol {args.protocol}"
    if args.limit is not None:
        command += f" --limit {args.limit}"
    if args.sample_users is not None:
        command += f" --sample-users {args.sample_users:g}"
    if args.last_days is not None:
        command += f" --last-days {args.last_days:g}"
    if args.frozen:
        command += " --frozen"
    if args.holdout is not None:
        command += f" --holdout {args.holdout.as_posix()}"
    if args.save_blend is not None:
        command += f" --save-blend {args.save_blend.as_posix()}"
    return command + f" --report {args.report.as_posix()}"


def _write_rating_report(args: argparse.Namespace, done: RatingRun, path: Path,
                         seconds: float) -> None:
    """Store a ``--protocol rating`` run beside the top-K runs (no curves, no plot)."""
    folder: Path = args.report
    name = f"{args.dataset}-{protocols.RATING}"
    metrics = {k: v for k, v in done.result.items()
               if isinstance(v, dict) and not k.startswith("published")}
    n = int(done.result["events"])
    rec = {"run": name, "dataset": args.dataset, "data": f"`{path.name}`",
           "protocol": protocols.RATING, "command": _command(args),
           "date": dt.date.today().isoformat(), "machine": report.machine(), "events": n,
           "predictions": n, "seconds": round(seconds, 1), "catalogue": None,
           "notes": done.notes, "table": done.table, "comparison": [],
           "engine": {"online_mf": RATING_MF.to_dict()}, "plot": None, "metrics": metrics,
           "method_seconds": {k: v.get("seconds") for k, v in metrics.items()}}
    report.write_json(folder / f"{name}.json", rec, {})
    write_page(folder, folder.with_suffix(".md"), PAGE_ORDER)
