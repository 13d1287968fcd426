"""The replay loop: for each event, ask every method (test), score, then learn (train).

All methods see the same events in the same order. Methods that share a learner (the engine's
sources) learn each event once. A progress bar goes to stderr.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from recs.evaluation.api import Learner, Method, Query
from recs.evaluation.metrics import CURVE_K, DEFAULT_KS, Accumulator
from recs.evaluation.protocols import Plan
from schemas.events import ItemUpsert


@dataclass
class Outcome:
    """Results of one run: metrics and HR@1..50 curve per method, timings."""

    metrics: dict[str, dict[str, Any]]
    curves: dict[str, list[float]]
    method_seconds: dict[str, float]
    events: int
    predictions: int
    seconds: float
    catalogue: int
    notes: list[str] = field(default_factory=list)


class Progress:
    """A one-line progress bar on a terminal; a line per 10 % otherwise."""

    def __init__(self, total: int, label: str, out: IO[str] | None = None,
                 enabled: bool = True) -> None:
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.out = out or sys.stderr
        self.tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.started = time.perf_counter()
        self._next_t = 0.0
        self._next_share = 0.1

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        share = done / self.total
        now = time.perf_counter()
        if self.tty:
            if now < self._next_t and done < self.total:
                return
            self._next_t = now + 0.2
        elif share < self._next_share and done < self.total:
            return
        else:
            self._next_share = (int(share * 10) + 1) / 10
        elapsed = now - self.started
        eta = elapsed / share - elapsed if share > 0 else 0.0
        bar = "#" * int(30 * share)
        line = (f"{self.label} [{bar:<30}] {share:6.1%} {done:,}/{self.total:,} events "
                f"{elapsed:5.0f}s elapsed, ~{eta:.0f}s left")
        self.out.write(("\r" + line) if self.tty else line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.out.write("\n")
            self.out.flush()


def run(plan: Plan, methods: Sequence[Method], *, items: Sequence[ItemUpsert] = (),
        ks: tuple[int, ...] = DEFAULT_KS, curve_k: int = CURVE_K, label: str = "eval",
        progress: bool = True, out: IO[str] | None = None) -> Outcome:
    started = time.perf_counter()
    learners: list[Learner] = []
    for m in methods:
        if not any(m.learner is seen for seen in learners):
            learners.append(m.learner)
    categories = {u.item_id: u.category for u in items if u.category is not None}
    for upsert in items:
        for learner in learners:
            learner.on_item(upsert)
    accs = {m.name: Accumulator(ks, curve_k, categories or None) for m in methods}
    spent = dict.fromkeys([m.name for m in methods], 0.0)
    learn_spent = [0.0] * len(learners)
    histories: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    total = 0
    all_items = {e.item_id for e in plan.events if e.item_id is not None}
    mpr_den = len(all_items) - 1 if plan.exclude_known else None
    depth = max(curve_k, *ks)
    bar = Progress(len(plan.events), label, out, progress)
    predictions = 0
    clock = time.perf_counter
    for index, event in enumerate(plan.events):
        key = plan.history_key(event)
        history = histories.get(key)
        if history is None:
            history = histories[key] = []
        target = event.item_id
        if target is not None and plan.scores(index, event, history):
            predictions += 1
            exclude: frozenset[str] = frozenset(history) if plan.exclude_known else frozenset()
            n_cand = None
            want = depth
            if plan.exclude_known:
                n_cand = len(counts) - len(exclude) + (0 if target in counts else 1)
                want = max(depth, n_cand)
            query = Query(event.user_id, event.session_id, event.ts, tuple(history), exclude)
            for m in methods:
                t0 = clock()
                ranked = m.recommend(query, want)
                spent[m.name] += clock() - t0
                accs[m.name].add(ranked, target, counts=counts, total=total,
                                 n_candidates=n_cand, mpr_denominator=mpr_den)
        learn = plan.learns(index, event)
        for i, learner in enumerate(learners):
            t0 = clock()
            if learn:
                learner.learn(event)
            else:
                learner.observe(event)
            learn_spent[i] += clock() - t0
        if target is not None:
            history.append(target)
            if learn:
                counts[target] = counts.get(target, 0) + 1
                total += 1
        if index % 256 == 0:
            bar.update(index + 1)
    bar.update(len(plan.events))
    bar.close()
    # a method's time: its own recommending plus its learner's learning (shared: counted once
    # for each method that reads it)
    for m in methods:
        idx = next(i for i, lr in enumerate(learners) if lr is m.learner)
        spent[m.name] += learn_spent[idx]
    return Outcome(
        metrics={m.name: accs[m.name].result(len(all_items)) for m in methods},
        curves={m.name: accs[m.name].curve() for m in methods},
        method_seconds=spent, events=len(plan.events), predictions=predictions,
        seconds=time.perf_counter() - started, catalogue=len(all_items), notes=list(plan.notes),
    )
