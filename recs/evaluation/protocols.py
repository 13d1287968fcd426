"""Evaluation protocols: which events are scored, what a query knows, what is learned.

Every protocol replays the events in event-time order. For each event it may *score* (ask every
method for a list before the event is learned and compare it with the event's item), then it
*learns* the event (or, in a frozen test part, only *observes* it: the engine's session state
moves on, no model learns).

``next-item`` (session-based, prequential)
    Every prefix of every scored session is a query whose target is the session's next item;
    repeat clicks count as targets unless ``--no-repeats``. The first ``warmup`` share of events
    trains without scoring; the sessions starting after it are scored. Queries carry the
    session's items so far.
``time-split``
    Train on all but the last day, test on the last day: the data set's own test sessions where it
    has them (the session-rec rsc15 sample: its ``*_test.txt``), else the sessions that end within
    a day of the log's end (session-rec's rule), where the end is the time by which
    :data:`END_QUANTILE` of the events happened: a straggling tail does not define the last day
    (the whole Globo log's clicks end on 2017-10-17, but 300 stragglers run to 2017-11-13; with
    the newest event as the end, one session was tested). Test sessions are scored like
    ``next-item``; they are learned after being scored (prequential) unless ``frozen``, which
    reproduces session-rec's static evaluation.
``streaming`` (user-level, the MovieLens protocol of Vinagre et al. 2014 / Kitazawa)
    Keep the events with ``value >= min_value`` (5-star ratings), first ``train`` (20 %) learned,
    the next ``fold`` (10 %) learned without scoring, the rest scored one event at a time: the
    user's top list, without the items the user already has, must hold the true item. Also
    reports the mean percentile rank over all items seen so far.
``rating`` (not a top-K plan: :mod:`recs.evaluation.learned` runs it)
    Every rating in time order is predicted, scored (MAE, RMSE), then learned: River's
    progressive validation on MovieLens 100K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from operators.config import INTEREST_TYPES
from recs.datasets import Dataset
from schemas.events import Interaction

NEXT_ITEM: Final = "next-item"
TIME_SPLIT: Final = "time-split"
STREAMING: Final = "streaming"
PROTOCOLS: Final = (NEXT_ITEM, TIME_SPLIT, STREAMING)
RATING: Final = "rating"
DAY_MS: Final = 86_400_000
DEFAULT_PROTOCOL: Final = {"ml100k": STREAMING, "rsc15": TIME_SPLIT}
END_QUANTILE: Final = 0.999  # time-split: the log ends when this share of its events happened


@dataclass(frozen=True)
class Plan:
    """A protocol applied to one log."""

    protocol: str
    events: list[Interaction]
    by_user: bool                            # history per user (streaming) or per session
    scored_sessions: frozenset[str] | None   # None: decided by ``score_from`` alone
    score_from: int                          # index of the first event that may be scored
    learn_scored: bool = True                # False: frozen test part (observe only)
    exclude_known: bool = False              # streaming: never recommend the user's items
    repeats: bool = True                     # a repeat of a session item may be a target
    notes: list[str] = field(default_factory=list)

    def history_key(self, event: Interaction) -> str:
        return event.user_id if self.by_user else event.session_id

    def in_test(self, index: int, event: Interaction) -> bool:
        """Whether the event belongs to the scored part (scored if it also has a query)."""
        if index < self.score_from:
            return False
        return self.scored_sessions is None or event.session_id in self.scored_sessions

    def scores(self, index: int, event: Interaction, history: Sequence[str]) -> bool:
        if event.item_id is None or event.type not in INTEREST_TYPES:
            return False
        if not self.in_test(index, event):
            return False
        if self.by_user:
            return True
        if not history:
            return False  # the first event of a session has no prefix to predict from
        return self.repeats or event.item_id not in history

    def learns(self, index: int, event: Interaction) -> bool:
        return self.learn_scored or not self.in_test(index, event)


def _interest(events: Sequence[Interaction]) -> list[Interaction]:
    return [e for e in events if e.item_id is not None and e.type in INTEREST_TYPES]


def next_item(data: Dataset, *, warmup: float = 0.2, repeats: bool = True) -> Plan:
    events = _interest(data.events)
    if not 0 <= warmup < 1:
        raise ValueError(f"next-item: warmup must be in [0, 1), got {warmup!r}")
    cut = int(len(events) * warmup)
    start_ts = events[cut].ts if cut < len(events) else float("inf")
    first: dict[str, int] = {}
    for e in events:
        first.setdefault(e.session_id, e.ts)
    scored = frozenset(s for s, ts in first.items() if ts >= start_ts)
    note = (f"next-item, prequential: the first {warmup:.0%} of events ({cut:,}) train only; "
            f"{len(scored):,} sessions starting after them are scored at every prefix")
    return Plan(NEXT_ITEM, events, False, scored, cut, repeats=repeats, notes=[note])


def time_split(data: Dataset, *, frozen: bool = False, repeats: bool = True) -> Plan:
    events = _interest(data.events)
    if data.test_sessions:
        test = frozenset(data.test_sessions)
        how = "the data set's own test sessions"
    else:
        last_ts: dict[str, int] = {}
        for e in events:
            last_ts[e.session_id] = max(e.ts, last_ts.get(e.session_id, e.ts))
        times = sorted(e.ts for e in events)
        end = times[int(END_QUANTILE * (len(times) - 1))] if times else 0
        cutoff = end - DAY_MS
        test = frozenset(s for s, ts in last_ts.items() if ts >= cutoff)
        how = (f"sessions ending within the last day (the day before the time by which "
               f"{END_QUANTILE:.1%} of events happened)")
    mode = "frozen (models learn only the training part, as session-rec)" if frozen else \
        "test-then-train inside the test day"
    note = f"time split: train on all but the last day; test on {how} ({len(test):,}); {mode}"
    return Plan(TIME_SPLIT, events, False, test, 0, learn_scored=not frozen, repeats=repeats,
                notes=[note])


def streaming(data: Dataset, *, min_value: float = 5.0, train: float = 0.2,
              fold: float = 0.1) -> Plan:
    events = [e for e in _interest(data.events)
              if e.value is None or e.value >= min_value]
    kept = "all events" if len(events) == len(data.events) else \
        f"events with value >= {min_value:g} ({len(events):,} of {len(data.events):,})"
    start = int(len(events) * (train + fold))
    note = (f"streaming (user-level, Vinagre et al. / Kitazawa): {kept}; first {train:.0%} "
            f"train, next {fold:.0%} learned unscored, last {1 - train - fold:.0%} "
            f"({len(events) - start:,} events) recommend-then-learn, the user's own items "
            "excluded")
    return Plan(STREAMING, events, True, None, start, exclude_known=True, notes=[note])


def make_plan(protocol: str, data: Dataset, *, warmup: float = 0.2, frozen: bool = False,
              repeats: bool = True) -> Plan:
    if protocol == NEXT_ITEM:
        return next_item(data, warmup=warmup, repeats=repeats)
    if protocol == TIME_SPLIT:
        return time_split(data, frozen=frozen, repeats=repeats)
    if protocol == STREAMING:
        return streaming(data)
    raise ValueError(f"protocol: expected one of {list(PROTOCOLS)}, got {protocol!r}")


def default_protocol(dataset: str) -> str:
    return DEFAULT_PROTOCOL.get(dataset, NEXT_ITEM)
