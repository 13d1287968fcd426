"""Planted click data for the online ranker, an in-process replay, and its micro benchmark.

``python -m operators.ranker bench [--impressions N] [--seed S]`` replays a generated log through
:func:`operators.ranker.label_step` and a :class:`operators.ranker.Ranker` for each model and
prints examples/s, prequential AUC and log-loss, the AUC River's ``metrics.ROCAUC`` (10
thresholds) reports for the same predictions, and the AUC of the true click probabilities (the
best any model can do). This harness, not the operators, reads a clock (``perf_counter``).

**The planted signal** (:func:`planted_log`): a shown item is clicked with probability 0.35 when
its category is ``hot`` (one item in five) and the device ``mobile``, 0.02 otherwise, times a
factor of its candidate source (``session`` 2.5, ``bought_together`` 1.5, ``new_arrival`` 0.6,
``explore`` 0.25, others 1). A click is
followed by an add-to-cart a quarter of the time, and that by a purchase a third of the time.
Everything else (user, hour, country, placement, slot) is noise. Fully determined by the seed.
"""

from __future__ import annotations

import argparse
import bisect
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from operators.ranker import (
    Labels,
    LabelState,
    Ranker,
    RankerConfig,
    close,
    label_step,
)
from operators.ranker_models import ADAGRAD, FACTORIZATION_MACHINE, FTRL
from schemas.events import Interaction

T0: Final = 1_700_000_000_000
MINUTE: Final = 60_000
HOT: Final = "hot"
CATEGORIES: Final = (HOT, *(f"c{n}" for n in range(1, 5)))  # hot is one item in five
DEVICES: Final = (("mobile", 0.5), ("web", 0.35), ("tablet", 0.15))
COUNTRIES: Final = ("de", "us", "fr", "gb")
PLACEMENTS: Final = ("homepage", "homepage", "similar", "session")
SOURCE_FACTORS: Final = {"session": 2.5, "bought_together": 1.5, "recently_viewed": 1.0,
                         "trending": 1.0, "trending_category": 1.0, "trending_context": 1.0,
                         "new_arrival": 0.6, "explore": 0.25}


def click_probability(category: str, device: str, source: str) -> float:
    base = 0.35 if category == HOT and device == "mobile" else 0.02
    return min(base * SOURCE_FACTORS[source], 0.95)


@dataclass(frozen=True, slots=True)
class PlantedLog:
    events: list[Interaction]            # by event time
    meta: dict[str, dict[str, Any]]      # item -> catalogue value (category, price)
    truth: dict[tuple[str, str], float]  # (rec_id, item) -> true click probability


def planted_log(seed: int, impressions: int, *, users: int = 500, items: int = 300,
                slots: int = 10) -> PlantedLog:
    """``impressions`` impressions of ``slots`` items and the engagements they caused."""
    rng = random.Random(seed)
    meta: dict[str, dict[str, Any]] = {f"i{n}": {"category": rng.choice(CATEGORIES),
                      "price": round(rng.uniform(2.0, 200.0), 2)} for n in range(items)}
    catalogue = sorted(meta)
    sources = sorted(SOURCE_FACTORS)
    events: list[Interaction] = []
    truth: dict[tuple[str, str], float] = {}
    ts = T0
    for n in range(impressions):
        ts += rng.randint(1_000, 20_000)
        user = f"u{rng.randrange(users)}"
        device = rng.choices([d for d, _ in DEVICES], [w for _, w in DEVICES])[0]
        shown = rng.sample(catalogue, slots)
        srcs = [rng.choice(sources) for _ in shown]
        rec_id = f"r{n}"
        context = {"placement": rng.choice(PLACEMENTS), "device": device,
                   "country": rng.choice(COUNTRIES), "sources": ",".join(srcs)}
        events.append(Interaction(f"imp-{rec_id}", "impression", user, f"s-{user}", ts,
                                  item_ids=tuple(shown), rec_id=rec_id, variant="A",
                                  context=context))
        for item, src in zip(shown, srcs, strict=True):
            p = click_probability(meta[item]["category"], device, src)
            truth[(rec_id, item)] = p
            if rng.random() >= p:
                continue
            t = ts + rng.randint(2_000, 10 * MINUTE)
            chain = [("click", t)]
            if rng.random() < 0.25:
                chain.append(("add_to_cart", t := t + rng.randint(10_000, 5 * MINUTE)))
                if rng.random() < 1 / 3:
                    chain.append(("purchase", t + rng.randint(10_000, 5 * MINUTE)))
            for etype, at in chain:
                events.append(Interaction(f"{etype}-{rec_id}-{item}", etype, user, f"s-{user}",
                                          at, item_id=item, rec_id=rec_id,
                                          context={"device": device}))
    events.sort(key=lambda e: e.ts)  # stable: an impression precedes its clicks at equal ts
    return PlantedLog(events, meta, truth)


def replay(events: Iterable[Interaction], ranker: Ranker,
           meta: dict[str, dict[str, Any]]) -> list[tuple[bool, float, float]]:
    """Fold the log through the keyed join and the ranker (the in-process reference of the
    stream's topology), closing every window at the end. Returns ``(label, prediction, weight)``
    of every evaluated example, in learning order."""
    cfg = ranker.cfg
    states: dict[str, LabelState | None] = {}
    out: list[tuple[bool, float, float]] = []

    def learn(labels: Labels) -> None:
        for ex, p in zip(labels.examples, ranker.observe(labels, meta), strict=True):
            out.append((ex.label, p, ex.weight))

    last = 0
    for ev in events:
        states[ev.user_id], labels = label_step(states.get(ev.user_id), ev, cfg)
        learn(labels)
        last = max(last, ev.ts)
    for user, st in states.items():
        _, labels = close(st, last + cfg.window_ms + 1, user, cfg)
        learn(labels)
    return out


def exact_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """The exact ROC AUC, ties counting half (the reference the metrics are checked against)."""
    neg = sorted(s for y, s in zip(labels, scores, strict=True) if not y)
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    if not pos or not neg:
        return 0.5
    wins = sum(bisect.bisect_left(neg, s) + 0.5 * (bisect.bisect_right(neg, s)
                                                  - bisect.bisect_left(neg, s)) for s in pos)
    return wins / (len(pos) * len(neg))


def oracle_auc(log: PlantedLog) -> float:
    """The AUC of the true click probabilities on the shown items of ``log``."""
    clicked = {(e.rec_id, e.item_id) for e in log.events if e.type == "click"}
    keys = list(log.truth)
    return exact_auc([k in clicked for k in keys], [log.truth[k] for k in keys])


def _river_auc(out: Sequence[tuple[bool, float, float]]) -> float:
    from river import metrics

    river_metrics: Any = metrics  # River 0.23's metrics are untyped
    m = river_metrics.ROCAUC()
    for y, p, _ in out:
        m.update(y, p)
    return float(m.get())


VARIANTS: Final = {
    "lr-sgd": RankerConfig(),  # the default
    "lr-adagrad": RankerConfig(optimizer=ADAGRAD, lr=0.05),
    "lr-ftrl": RankerConfig(optimizer=FTRL, lr=0.1, l2=1.0),
    "fm-sgd": RankerConfig(model=FACTORIZATION_MACHINE, lr=0.05),
}


def bench(impressions: int, seed: int, names: Sequence[str]) -> list[dict[str, Any]]:
    log = planted_log(seed, impressions)
    rows = []
    for name in names:
        ranker = Ranker(VARIANTS[name])
        began = time.perf_counter()
        out = replay(log.events, ranker, log.meta)
        secs = time.perf_counter() - began
        learnt = ranker.positives + ranker.negatives
        stats = ranker.stats()
        rows.append({"model": name, "examples": learnt, "examples_per_s": learnt / secs,
                     "auc": stats["auc"], "exact_auc": exact_auc([o[0] for o in out],
                                                                 [o[1] for o in out]),
                     "river_rocauc": _river_auc(out), "log_loss": stats["log_loss"],
                     "oracle_auc": oracle_auc(log), "warm": stats["warm"]})
    return rows


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m operators.ranker")
    parser.add_argument("command", choices=["bench"])
    parser.add_argument("--impressions", type=int, default=3_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models", default=",".join(VARIANTS),
                        help=f"comma-separated, of {', '.join(VARIANTS)}")
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"--models: unknown model {unknown[0]!r}, expected one of {list(VARIANTS)}")
    rows = bench(args.impressions, args.seed, names)
    print(f"planted log: {args.impressions} impressions x 10 slots, seed {args.seed}; "
          f"oracle AUC {rows[0]['oracle_auc']:.3f} (true click probabilities)")
    print(f"{'model':<12} {'examples/s':>10} {'AUC':>6} {'exact':>6} {'River10':>7} "
          f"{'log-loss':>8} {'warm':>5}")
    for r in rows:
        print(f"{r['model']:<12} {r['examples_per_s']:>10.0f} {r['auc']:>6.3f} "
              f"{r['exact_auc']:>6.3f} {r['river_rocauc']:>7.3f} {r['log_loss']:>8.4f} "
              f"{r['warm']!s:>5}")
    return 0
