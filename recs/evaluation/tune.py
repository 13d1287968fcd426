"""The measurements behind two settings: the blend's weight on the learned source, and what the
online model's learning costs against what it gains.

    python -m recs.evaluation.tune blend --dataset ml100k --validation
    python -m recs.evaluation.tune blend --dataset rsc15
    python -m recs.evaluation.tune mf --dataset rsc15 --negatives 20,10,5,2 --view-sample 1,0.5

``blend`` replays a log once, through one engine learner, and scores the blend at every
``vector_weight`` × ``vector_temperature`` of the grid (weight 0 is ``engine_static``) beside
the model's retrieval alone (``engine.vector``). ``mf`` runs ``online_mf`` once per
``negatives`` × ``view_sample`` setting (plain views learned with that probability:
:func:`recs.evaluation.learned.learns`) and reports each one's quality and its learning rate in
events of the log per second of learning (skipped events included, as the stream sees them).

``--validation`` (``ml100k`` only) replaces the 5-star test stream by the same protocol over the
4-star ratings, none of which is in the test: choose settings there, report the 5-star run.
Every run prints a Markdown table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from recs import datasets
from recs.evaluation import protocols
from recs.evaluation.api import Method
from recs.evaluation.cli import FOLDERS
from recs.evaluation.engine_methods import FullBlend, VectorSource
from recs.evaluation.engine_recs import TUNED_BLEND, TUNED_CONFIG, EngineLearner
from recs.evaluation.harness import Outcome, run
from recs.evaluation.learned import TUNED_MF, OnlineMFMethod
from recs.evaluation.protocols import Plan

VALIDATION_STARS = 4.0


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def load_plan(dataset: str, path: Path, validation: bool) -> tuple[datasets.Dataset, Plan]:
    data = datasets.load(dataset, path)
    if validation:
        if dataset != "ml100k":
            raise ValueError(f"--validation: only for ml100k, got {dataset!r}")
        data = dataclasses.replace(data, events=[e for e in data.events
                                                 if e.value == VALIDATION_STARS])
        plan = protocols.streaming(data, min_value=VALIDATION_STARS)
        plan.notes.insert(0, "validation: the 4-star ratings only (no 5-star test event)")
        return data, plan
    return data, protocols.make_plan(protocols.default_protocol(dataset), data)


def blend_methods(weights: Sequence[float], temperatures: Sequence[float],
                  pools: Sequence[int] = (TUNED_BLEND.vector_pool,),
                  min_events: Sequence[int] = (TUNED_BLEND.vector_min_events,),
                  negatives: Sequence[int] = (TUNED_CONFIG.mf.negatives,),
                  min_prior: Sequence[int] = (TUNED_BLEND.vector_min_prior,)) -> list[Method]:
    """``engine_static``, then per model setting (``negatives``; one learner each)
    ``engine.vector`` and the blend at every point of the grid."""
    methods: list[Method] = []
    for neg in negatives:
        mf = dataclasses.replace(TUNED_CONFIG.mf, negatives=neg)
        learner = EngineLearner(dataclasses.replace(TUNED_CONFIG, mf=mf))
        tag = "" if list(negatives) == [TUNED_CONFIG.mf.negatives] else f" neg={neg}"
        if not methods:
            static = dataclasses.replace(TUNED_BLEND, vector_weight=0.0)
            methods.append(FullBlend(learner, static, name="engine_static"))
        vector = VectorSource(learner)
        vector.name += tag
        methods.append(vector)
        grid = itertools.product(weights, temperatures, pools, min_events, min_prior)
        for w, t, n, m, pr in grid:
            b = dataclasses.replace(TUNED_BLEND, vector_weight=w, vector_temperature=t,
                                    vector_pool=n, vector_min_events=m, vector_min_prior=pr)
            label = f"engine w={w:g} T={t:g} n={n} min={m}" + (f" prior={pr}" if pr else "")
            methods.append(FullBlend(learner, b, name=label + tag))
    return methods


def mf_methods(negatives: Sequence[int], samples: Sequence[float]) -> list[OnlineMFMethod]:
    return [OnlineMFMethod(dataclasses.replace(TUNED_MF, negatives=n), view_sample=p,
                           name=f"online_mf neg={n} p={p:g}")
            for n in negatives for p in samples]


def _lead(plan: Plan) -> tuple[str, ...]:
    return ("hr@10", "hr@20", "mrr@20") if plan.protocol == protocols.STREAMING else \
        ("hr@20", "mrr@20", "hr@10")


def rows(outcome: Outcome, plan: Plan,
         learners: Sequence[OnlineMFMethod] = ()) -> list[dict[str, Any]]:
    keys = _lead(plan)
    out: list[dict[str, Any]] = []
    for name, metrics in outcome.metrics.items():
        row: dict[str, Any] = {"method": name}
        row.update({k: round(metrics.get(k) or 0.0, 4) for k in keys})
        row["seconds"] = round(outcome.method_seconds[name], 1)
        out.append(row)
    for m, row in zip(learners, out, strict=False):
        row["learned_share"] = round(m.learned / max(m.seen, 1), 3)
        row["learn_events_per_s"] = round(m.seen / max(m.learn_seconds, 1e-9))
        row["updates_per_event"] = round(m.model.updates / max(m.seen, 1), 2)
    return out


def markdown(table: Sequence[dict[str, Any]]) -> str:
    head = list(table[0])
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in table:
        lines.append("| " + " | ".join(f"`{v}`" if k == "method" else str(v)
                                       for k, v in row.items()) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recs.evaluation.tune", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("blend", "mf"))
    p.add_argument("--dataset", required=True, choices=("ml100k", "rsc15", "diginetica"))
    p.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    p.add_argument("--validation", action="store_true",
                   help="ml100k: the 4-star validation stream instead of the 5-star test")
    p.add_argument("--weights", default="0.25,0.5,1,2", help="blend: vector_weight grid")
    p.add_argument("--temperatures", default="0.05,0.1,0.2,0.5",
                   help="blend: vector_temperature grid")
    p.add_argument("--pools", default=str(TUNED_BLEND.vector_pool),
                   help="blend: vector_pool grid (items retrieved per request)")
    p.add_argument("--min-events", default=str(TUNED_BLEND.vector_min_events),
                   help="blend: vector_min_events grid (user events learned before retrieval)")
    p.add_argument("--min-prior", default=str(TUNED_BLEND.vector_min_prior),
                   help="blend: vector_min_prior grid (of those, learned in earlier sessions)")
    p.add_argument("--negatives", default=None, help="negatives per positive (mf: default "
                   f"20,10,5,2; blend: the engine's own, {TUNED_CONFIG.mf.negatives})")
    p.add_argument("--view-sample", default="1", help="mf: probabilities of learning a view")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    started = time.perf_counter()
    try:
        data, plan = load_plan(args.dataset, args.data_dir / FOLDERS[args.dataset],
                               args.validation)
        learners: list[OnlineMFMethod] = []
        if args.what == "blend":
            methods = blend_methods(_floats(args.weights), _floats(args.temperatures),
                                    _ints(args.pools), _ints(args.min_events),
                                    _ints(args.negatives or str(TUNED_CONFIG.mf.negatives)),
                                    _ints(args.min_prior))
        else:
            learners = mf_methods(_ints(args.negatives or "20,10,5,2"),
                                  _floats(args.view_sample))
            methods = list(learners)
    except (datasets.DatasetError, ValueError) as exc:
        print(f"tune: {exc}", file=sys.stderr)
        return 2
    for note in plan.notes:
        print(f"# {note}")
    outcome = run(plan, methods, items=data.items, label=f"tune {args.what}",
                  progress=not args.no_progress)
    table = rows(outcome, plan, learners)
    print(markdown(table))
    print(orjson.dumps({"rows": table, "events": outcome.events,
                        "seconds": round(time.perf_counter() - started, 1)}).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
