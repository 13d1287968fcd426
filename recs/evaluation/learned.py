"""Learned models in ``recs eval``: the online collaborative model, two protocols and a bench.

- ``online_mf`` (a top-K method, any protocol): :class:`operators.online_mf.OnlineMF` in
  implicit mode with :data:`TUNED_MF`, recommending the user's best known items by brute force.
  Part of the default set; the engine's blend learns the same model as its ``vector`` source
  (:mod:`recs.evaluation.engine_recs`).
- ``--protocol rating``: test-then-train rating prediction over every rating in time order
  (River's ``progressive_val_score`` on MovieLens 100K): MAE/RMSE of ``online_mf`` in explicit
  mode (:data:`RATING_MF`) beside River's own ``reco.BiasedMF`` run the same way, with its
  documented settings and with its defaults, and River's published figures. Predictions are
  clipped to the rating scale (River's docs wrap the model in ``PredClipper(1, 5)``).
- ``python -m recs.evaluation.learned bench``: learning speed of :data:`TUNED_MF` on one core
  (``--negatives N``, ``--view-sample P``: learn plain views with probability ``P``, see
  :func:`learns`).

Tuning, honestly: configurations were compared on a validation stream, the same streaming
protocol over the **4-star** ratings only (34,174 events, none of them in the 5-star test;
popularity scores 0.057 there), and the best one became :data:`TUNED_MF`; the 5-star column is
``recs eval --dataset ml100k --data-dir ../shared/data --methods online_mf,pop`` (14,841 scored
events; published: popularity 0.105, incremental MF 0.023, incremental FM 0.034). recall@10:

Unless said: 16 factors, lr 0.05, l2 0, bias lr (blr) 0.025, rating weight 4. Chosen as
:data:`TUNED_MF`: BiasedMF, 20 negatives, blr 0.001, l2 0.03 (.110 / .164).

  configuration                                     4-star               5-star
  ------------------------------------------------  -------------------  -------------------
  Funk, 4 neg.                                      .071                 .106
  Funk, 10 / 20 / 40 neg.                           .086 .094 .097       .127 .133 .136
  Funk, 10 neg.: 8 / 32 factors, lr 0.025           .087 .084 .073       .123 .121 .116
  Funk, 20 neg., l2 0.03                            .099                 .139
  Funk / Biased, log loss, 4 neg.                   .056 .062            .092 .113
  Biased, 1 / 4 / 10 / 20 neg.                      .040 .067 .081 .085  .066 .103 .121 .133
  Biased, 10 neg., blr 0.005 / 0.001 / 0.0003       .091 .101 .098       .147 .156 .148
  Biased, 20 neg., blr 0.005 / 0.001 / 0.0003       .096 .107 .106       .148 .161 .154
  Biased, 40 neg., blr 0.005                        .101                 .153
  Biased, 20 neg., blr 0.005: l2 0.01, 8 factors    .099 .096            .150 .149
  Biased, 20 neg., blr 0.005: rating weight 2 / 8   .085 .078            .139 .105
  Biased, 20 neg., blr 0.001: 32 f., lr .035 / .07  .103 .101 .103       .151 .159 .141
  Biased, 5 neg., blr 0.001                         .090                 .139
  Biased, 20 neg., blr 0.001, l2 0.01 / 0.03 / 0.1  .108 .110 .098       .162 .164 .144
  Biased, blr 0.001, l2 0.03: 10 / 40 neg.          .103 .109            .159 .162

FunkMF at lr 0.1 (rating step 0.4) without l2 diverged (NaN); such a
model now stops with ``FloatingPointError``. More negatives help up to about 20, at a price:
learning costs one River update (≈ 11 µs here) per negative.

The cost against the quality (``python -m recs.evaluation.tune mf``; the full tables, with the
view-sampling runs and the engine's blend at each setting, in docs/quality/tuning.md):

  negatives  ML-100K recall@10 (5-star)  rsc15 HR@20  events/s learned (bench, 70 % views)
  ---------  --------------------------  -----------  -----------------------------------
  20         .1637                       .1752        3.7k
  10         .1593                       .1579        6.5k
  5          .1445                       .1385        10.3k
  2          .1246                       .1134        23.1k

Learning a plain view only with probability ``p`` (:func:`learns`) costs more quality than
fewer negatives at the same speed (rsc15, all views: 10 negatives at p 0.5 learns 12.3k
events/s for HR@20 .119, 5 negatives at p 1 11.2k/s for .139).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import tracemalloc
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson
from river import optim, reco

from operators.config import EngineConfig
from operators.mf_config import EXPLICIT, MFConfig
from operators.online_mf import OnlineMF
from recs.evaluation.api import Query, SelfLearning
from recs.evaluation.harness import Progress
from recs.evaluation.report import machine
from schemas.events import Interaction

TUNED_MF: Final = EngineConfig().mf  # the stream's model, as the job runs it
RATING_MF: Final = MFConfig(mode=EXPLICIT, n_factors=10, lr=0.05, bias_lr=0.025, l2=0.0,
                            negatives=0, init_sigma=0.1, seed=73)
#: River's docs (part 1 of its matrix factorization example; ``published/`` in the data folder)
RIVER_DOCS_BIASED: Final[dict[str, Any]] = {"n_factors": 10, "bias_lr": 0.025, "latent_lr": 0.05,
                                            "seed": 73}
PUBLISHED_BIASED_MF: Final = {"mae": 0.749, "rmse": 0.948}
RATING_SCALE: Final = (1.0, 5.0)


def learns(event: Interaction, view_sample: float) -> bool:
    """Whether the model learns ``event`` when plain views are learned with probability
    ``view_sample``: every other type always; a view when the CRC-32 of its id falls below that
    share of 2**32 (stateless and seeded by the id: the same choice at any parallelism).

    >>> [learns(Interaction(f"e{i}", "view", "u", "s", 0, item_id="x"), 0.5) for i in range(6)]
    [True, True, False, False, True, True]
    >>> learns(Interaction("e1", "purchase", "u", "s", 0, item_id="x"), 0.0)
    True
    """
    if event.type != "view" or view_sample >= 1.0:
        return True
    return zlib.crc32(event.event_id.encode()) < view_sample * 2**32


class OnlineMFMethod(SelfLearning):
    """``online_mf``: the River collaborative model alone. ``learn_seconds`` and ``learned``:
    the time spent learning and the events learned (``view_sample`` < 1 skips some views)."""

    name = "online_mf"

    def __init__(self, cfg: MFConfig = TUNED_MF, *, view_sample: float = 1.0,
                 name: str = "online_mf") -> None:
        if not 0.0 <= view_sample <= 1.0:
            raise ValueError(f"online_mf: view_sample must be in [0, 1], got {view_sample!r}")
        self.model = OnlineMF(cfg)
        self.name, self.view_sample = name, view_sample
        self.learn_seconds, self.seen, self.learned = 0.0, 0, 0
        self.description = (f"River {cfg.model} MF, {cfg.mode}, {cfg.n_factors} factors, "
                            f"{cfg.negatives} negatives, lr {cfg.lr:g}")
        if view_sample < 1.0:
            self.description += f", views learned with p {view_sample:g}"

    def learn(self, event: Interaction) -> None:
        t0 = time.perf_counter()
        self.seen += 1
        if learns(event, self.view_sample):
            self.learned += 1
            self.model.learn(event)
        self.learn_seconds += time.perf_counter() - t0

    def recommend(self, query: Query, k: int) -> list[str]:
        return [i for i, _ in self.model.recommend(query.user_id, k, query.exclude)]


#: the learned top-K methods of ``recs eval`` (part of the default set)
LEARNED_METHODS: Final = {"online_mf": OnlineMFMethod}


# -- rating prediction ------------------------------------------------------------------------


@dataclass
class ErrorStats:
    n: int = 0
    abs_sum: float = 0.0
    sq_sum: float = 0.0

    def add(self, y: float, pred: float) -> None:
        lo, hi = RATING_SCALE
        err = min(max(pred, lo), hi) - y
        self.n += 1
        self.abs_sum += abs(err)
        self.sq_sum += err * err

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        return {"mae": self.abs_sum / n, "rmse": math.sqrt(self.sq_sum / n)}


class _RiverBiased:
    """River's ``reco.BiasedMF`` as its docs run it: ``predict_one`` then ``learn_one``."""

    def __init__(self, name: str, **params: Any) -> None:
        self.name = name
        self.model: Any = reco.BiasedMF(**params)

    def predict(self, user: str, item: str) -> float:
        return float(self.model.predict_one(user, item))

    def learn(self, event: Interaction) -> None:
        self.model.learn_one(event.user_id, event.item_id, float(event.value or 0.0))


class _Ours:
    def __init__(self, name: str, cfg: MFConfig) -> None:
        self.name, self.model = name, OnlineMF(cfg)

    def predict(self, user: str, item: str) -> float:
        return self.model.predict(user, item)

    def learn(self, event: Interaction) -> None:
        self.model.learn(event)


def rating_models(cfg: MFConfig = RATING_MF) -> list[_Ours | _RiverBiased]:
    d = RIVER_DOCS_BIASED
    return [
        _Ours("online_mf", cfg),
        _RiverBiased("river.BiasedMF(docs)", n_factors=d["n_factors"],
                     bias_optimizer=optim.SGD(d["bias_lr"]),
                     latent_optimizer=optim.SGD(d["latent_lr"]),
                     latent_initializer=optim.initializers.Normal(mu=0.0, sigma=0.1,
                                                                  seed=d["seed"])),
        _RiverBiased("river.BiasedMF(defaults)", seed=0),
    ]


def rating_eval(events: Sequence[Interaction], models: Sequence[_Ours | _RiverBiased], *,
                progress: bool = True) -> dict[str, dict[str, float]]:
    """Predict each rating (clipped to 1..5), score it, then learn it; all models alike."""
    stats = {m.name: ErrorStats() for m in models}
    spent = dict.fromkeys(stats, 0.0)
    bar = Progress(len(events), "rating", enabled=progress)
    clock = time.perf_counter
    for n, event in enumerate(events):
        if event.type != "rating" or event.value is None or event.item_id is None:
            continue
        for m in models:
            t0 = clock()
            stats[m.name].add(event.value, m.predict(event.user_id, event.item_id))
            m.learn(event)
            spent[m.name] += clock() - t0
        if n % 1024 == 0:
            bar.update(n + 1)
    bar.update(len(events))
    bar.close()
    return {name: {**s.result(), "n": s.n, "seconds": round(spent[name], 1)}
            for name, s in stats.items()}


@dataclass
class RatingRun:
    """One ``--protocol rating`` run: its notes, its Markdown table and its JSON line."""

    notes: list[str]
    table: str
    result: dict[str, Any]


def rating_run(events: Sequence[Interaction], *, progress: bool = True) -> RatingRun | None:
    """Every model of :func:`rating_models` over the ratings of ``events``; ``None`` without
    ratings."""
    ratings = [e for e in events if e.type == "rating" and e.value is not None]
    if not ratings:
        return None
    notes = [f"rating prediction, test-then-train over all {len(ratings):,} ratings in time "
             f"order, predictions clipped to {RATING_SCALE[0]:g}..{RATING_SCALE[1]:g}",
             f"online_mf: {RATING_MF.to_dict()}",
             f"river.BiasedMF(docs): {RIVER_DOCS_BIASED}; (defaults): reco.BiasedMF(seed=0)"]
    started = time.perf_counter()
    result: dict[str, Any] = rating_eval(ratings, rating_models(), progress=progress)
    lines = ["| model | MAE | RMSE | seconds |", "|---|---:|---:|---:|"]
    lines += [f"| `{name}` | {r['mae']:.4f} | {r['rmse']:.4f} | {r['seconds']:.1f} |"
              for name, r in result.items()]
    lines.append(f"| published River BiasedMF (docs) | {PUBLISHED_BIASED_MF['mae']:.3f} | "
                 f"{PUBLISHED_BIASED_MF['rmse']:.3f} | |")
    out: dict[str, Any] = {k: {m: round(v, 4) if isinstance(v, float) else v
                               for m, v in r.items()} for k, r in result.items()}
    out["published.BiasedMF"] = dict(PUBLISHED_BIASED_MF)
    out["events"] = len(ratings)
    out["seconds"] = round(time.perf_counter() - started, 1)
    return RatingRun(notes, "\n".join(lines), out)


def rating_main(events: Sequence[Interaction], *, progress: bool = True) -> int:
    """``recs eval --protocol rating``: notes, a Markdown table, then one JSON line."""
    done = rating_run(events, progress=progress)
    if done is None:
        print("recs eval: --protocol rating needs rating events with values", file=sys.stderr)
        return 2
    for note in done.notes:
        print(f"# {note}")
    print(done.table)
    print(orjson.dumps(done.result).decode())
    return 0


# -- bench -----------------------------------------------------------------------------------


def synthetic_log(n: int, users: int, items: int, seed: int = 0) -> list[Interaction]:
    """``n`` events of skewed popularity (Zipf-like), the engine's event-type mix."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(items)]
    picks = rng.choices(range(items), weights, k=n)
    types = rng.choices(("view", "click", "add_to_cart", "purchase"), (70, 20, 7, 3), k=n)
    return [Interaction(f"e{t}", types[t], f"u{rng.randrange(users)}", "s", t,
                        item_id=f"i{picks[t]}") for t in range(n)]


def bench_main(argv: list[str] | None = None) -> int:
    """Events/s of :data:`TUNED_MF` learning on one core, and bytes per user and per item."""
    p = argparse.ArgumentParser(prog="python -m recs.evaluation.learned bench")
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--users", type=int, default=5_000)
    p.add_argument("--items", type=int, default=5_000)
    p.add_argument("--negatives", type=int, default=TUNED_MF.negatives)
    p.add_argument("--view-sample", type=float, default=1.0,
                   help="learn plain views with this probability (other types always)")
    p.add_argument("--memory-entries", type=int, default=20_000,
                   help="users and items added to measure bytes per entry")
    args = p.parse_args(argv)
    cfg = replace(TUNED_MF, negatives=args.negatives)
    log = synthetic_log(args.events, args.users, args.items)
    model = OnlineMF(cfg)
    for e in log[: args.events // 10]:  # warm up: the pool fills, negatives become real
        model.learn(e)
    rest = log[args.events // 10:]
    clock = time.perf_counter
    before = model.events
    t0 = clock()
    for e in rest:
        if learns(e, args.view_sample):
            model.learn(e)
    secs = clock() - t0
    learned = model.events - before
    t0 = clock()
    for e in rest[:2_000]:
        model.recommend(e.user_id, 10)
    rec_us = (clock() - t0) / min(len(rest), 2_000) * 1e6
    per_user, per_item = _bytes_per_entry(cfg, args.memory_entries)
    m = machine()
    print(f"# {m['cpu']}, {m['cores']} cores, Python {m['python']}, one thread; "
          f"{len(rest):,} events timed after {args.events // 10:,} of warm-up")
    print(f"# config: {cfg.to_dict()}; views learned with probability {args.view_sample:g}")
    row = {"events_per_s": round(len(rest) / secs),
           "us_per_event": round(secs / len(rest) * 1e6, 1),
           "updates_per_event": round(model.updates / max(model.events, 1), 2),
           "learned_share": round(learned / max(len(rest), 1), 3),
           "recommend_us": round(rec_us, 1), "items": model.n_items, "users": model.n_users,
           "bytes_per_user": per_user, "bytes_per_item": per_item}
    print(orjson.dumps(row).decode())
    return 0


def _bytes_per_entry(cfg: MFConfig, n: int = 20_000) -> tuple[int, int]:
    """Traced allocation per new user (20 items each) and per new item, over ``n`` of each."""
    model = OnlineMF(replace(cfg, negatives=0))
    base_items = [Interaction("b", "view", "u0", "s", 0, item_id=f"i{i}") for i in range(20)]
    for e in base_items:
        model.learn(e)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for u in range(n):
        for i in range(20):
            model.learn(Interaction("e", "view", f"user{u}", "s", 0, item_id=f"i{i}"))
    per_user = (tracemalloc.get_traced_memory()[0] - before) / n
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        model.learn(Interaction("e", "view", "u0", "s", 0, item_id=f"new{i}"))
    per_item = (tracemalloc.get_traced_memory()[0] - before) / n
    tracemalloc.stop()
    return round(per_user), round(per_item)


if __name__ == "__main__" and sys.argv[1:2] == ["bench"]:
    raise SystemExit(bench_main(sys.argv[2:]))
