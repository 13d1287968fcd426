"""Protocols and the replay loop on small generated logs: test-then-train, scoring rules."""

from __future__ import annotations

import io

import pytest

from recs.datasets import Dataset
from recs.evaluation import protocols
from recs.evaluation.api import Query, SelfLearning
from recs.evaluation.harness import Progress, run
from schemas.events import Interaction

DAY = 86_400_000


def ev(session: str, item: str, ts: int, *, user: str | None = None, etype: str = "view",
       value: float | None = None) -> Interaction:
    return Interaction(f"{session}-{ts}", etype, user or f"u{session}", session, ts,
                       item_id=item, value=value)


class Spy(SelfLearning):
    """Recommends what it learned last; records every query and every learned event."""

    name = "spy"
    description = "spy"

    def __init__(self) -> None:
        self.learned: list[Interaction] = []
        self.queries: list[Query] = []
        self.observed: list[Interaction] = []
        self.seen_before: list[int] = []  # newest learned event time at each query

    def learn(self, event: Interaction) -> None:
        self.learned.append(event)

    def observe(self, event: Interaction) -> None:
        self.observed.append(event)

    def recommend(self, query: Query, k: int) -> list[str]:
        self.queries.append(query)
        self.seen_before.append(max((e.ts for e in self.learned), default=-1))
        return [e.item_id for e in reversed(self.learned) if e.item_id][:k]


def session_log() -> list[Interaction]:
    return [ev("a", "x", 1), ev("a", "y", 2), ev("b", "x", 3), ev("a", "x", 4),
            ev("b", "z", 5), ev("c", "y", 6), ev("c", "y", 7)]


def test_next_item_scores_every_prefix_after_the_warmup_and_learns_after() -> None:
    data = Dataset("t", session_log())
    plan = protocols.next_item(data, warmup=0.0)
    spy = Spy()
    out = run(plan, [spy], progress=False)
    # targets: a:y, a:x (repeat), b:z, c:y (repeat) -> four predictions
    assert out.predictions == 4
    assert [q.history for q in spy.queries] == [("x",), ("x", "y"), ("x",), ("y",)]
    assert len(spy.learned) == 7
    # asked before learning: the newest learned event is older than the predicted one
    assert all(seen < q.ts for seen, q in zip(spy.seen_before, spy.queries, strict=True))
    # hits at rank 1: a's x@4 (b's x@3 was learned last) and c's y@7 (c's y@6)
    assert out.curves["spy"][0] == pytest.approx(2 / 4)


def test_next_item_without_repeats_and_with_warmup() -> None:
    data = Dataset("t", session_log())
    no_rep = protocols.next_item(data, warmup=0.0, repeats=False)
    assert run(no_rep, [Spy()], progress=False).predictions == 2
    late = protocols.next_item(data, warmup=0.5)  # sessions starting at or after ts 4: c only
    assert late.scored_sessions == frozenset({"c"})
    assert run(late, [Spy()], progress=False).predictions == 1


def test_time_split_uses_the_data_sets_test_sessions_or_the_last_day() -> None:
    events = [ev("a", "x", 0), ev("a", "y", 1), ev("b", "x", 2 * DAY), ev("b", "y", 2 * DAY + 1),
              ev("c", "y", 3 * DAY - 5), ev("c", "x", 3 * DAY)]
    plan = protocols.time_split(Dataset("t", events))
    assert plan.scored_sessions == frozenset({"b", "c"})  # ending within a day of the last event
    own = protocols.time_split(Dataset("t", events, test_sessions=frozenset({"c"})))
    assert own.scored_sessions == frozenset({"c"})
    spy = Spy()
    # a straggling tail (under 0.1 % of the events) does not move the last day
    tail = [*events * 200, ev("z", "x", 40 * DAY)]
    assert protocols.time_split(Dataset("t", tail)).scored_sessions == frozenset({"b", "c", "z"})
    frozen = protocols.time_split(Dataset("t", events, test_sessions=frozenset({"c"})),
                                  frozen=True)
    out = run(frozen, [spy], progress=False)
    assert out.predictions == 1
    assert [e.session_id for e in spy.learned] == ["a", "a", "b", "b"]
    assert [e.session_id for e in spy.observed] == ["c", "c"]


def test_streaming_keeps_positive_events_and_excludes_known_items() -> None:
    events = [ev(f"s{i}", f"i{i % 4}", i, user=f"u{i % 2}", etype="rating",
                 value=5.0 if i % 3 else 3.0) for i in range(30)]
    plan = protocols.streaming(Dataset("t", events))
    assert len(plan.events) == 20 and plan.score_from == 6
    spy = Spy()
    out = run(plan, [spy], progress=False)
    assert out.predictions == 14
    for q in spy.queries:
        assert set(q.exclude) == set(q.history)
    assert out.metrics["spy"]["mpr"] is not None


def test_methods_sharing_a_learner_learn_once() -> None:
    spy = Spy()

    class Reader:
        name, description = "reader", "reads the spy"

        @property
        def learner(self) -> Spy:
            return spy

        def recommend(self, query: Query, k: int) -> list[str]:
            return []

    run(protocols.next_item(Dataset("t", session_log()), warmup=0.0), [spy, Reader()],
        progress=False)
    assert len(spy.learned) == 7


def test_progress_bar_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    bar = Progress(100, "x", out)
    for i in range(0, 101, 5):
        bar.update(i)
    bar.close()
    lines = out.getvalue().splitlines()
    assert 5 <= len(lines) <= 12
    assert lines[-1].startswith("x [") and "100.0%" in lines[-1]
