"""Duplicate suppression by ``event_id``, keyed by user, on event time.

A producer that retries, or a client that retries ``POST /v1/events``, delivers the same event
twice. ``step(state, event_id, ts, cfg) -> (state, new)`` remembers the ids of a user's events
seen within ``window_ms`` of event time before the user's newest event (at most ``max_ids`` of
them, the newest kept) and answers ``new = False`` for an id it remembers: that copy changes
nothing downstream. A copy that comes later than the window (or after ``max_ids`` newer events
of the same user) is not recognised and counts again: the window is the stated bound of the
guarantee (10 minutes of the user's event time by default, far beyond a client's retries).

Keyed by user because events are partitioned by user: a user's events reach one subtask in log
order, so the decisions are the same in the Flink job (``DedupFunction.java``, its JVM twin) and
in the reference runner.

>>> cfg = DedupConfig(window_ms=1_000, max_ids=2)
>>> s, new = step(None, "e1", 10_000, cfg)
>>> s, again = step(s, "e1", 10_000, cfg)
>>> new, again
(True, False)
>>> s, _ = step(s, "e2", 12_000, cfg)   # e1 falls out of the window
>>> step(s, "e1", 10_000, cfg)[1]
True
"""

from __future__ import annotations

from dataclasses import dataclass

from operators.config import DedupConfig


@dataclass(frozen=True, slots=True)
class DedupState:
    ids: tuple[tuple[str, int], ...]  # (event_id, ts), in arrival order, newest last
    newest: int                       # the newest event time seen for the user


def step(state: DedupState | None, event_id: str, ts: int,
         cfg: DedupConfig) -> tuple[DedupState, bool]:
    """Returns the new state and whether the event is new (``False``: a duplicate)."""
    if state is not None and any(i == event_id for i, _ in state.ids):
        return state, False
    newest = ts if state is None else max(state.newest, ts)
    horizon = newest - cfg.window_ms
    kept = tuple(e for e in (() if state is None else state.ids) if e[1] >= horizon)
    if ts >= horizon:
        kept = (*kept, (event_id, ts))[-cfg.max_ids:]
    return DedupState(kept, newest), True
