"""Helpers of the ranker tests: events, running the join over a log, reading its output."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from operators.ranker import Labels, LabelState, RankerConfig, close, label_step
from schemas.events import Interaction

T0 = 1_700_000_000_000
MIN = 60_000
CFG = RankerConfig()
WINDOW = CFG.window_ms


def imp(rec_id: str, ts: int, items: Sequence[str], *, user: str = "u",
        **context: Any) -> Interaction:
    return Interaction(f"imp-{rec_id}-{ts}", "impression", user, "s", ts, item_ids=tuple(items),
                       rec_id=rec_id, variant="A", context=dict(context))


def eng(etype: str, rec_id: str | None, item: str, ts: int, *, user: str = "u") -> Interaction:
    return Interaction(f"{etype}-{rec_id}-{item}-{ts}", etype, user, "s", ts, item_id=item,
                       rec_id=rec_id)


def run(events: Sequence[Interaction], cfg: RankerConfig = CFG, *,
        flush: bool = True) -> tuple[LabelState | None, list[Labels]]:
    state: LabelState | None = None
    out = []
    for ev in events:
        state, labels = label_step(state, ev, cfg)
        out.append(labels)
    if flush:
        state, labels = close(state, 10**15, "u", cfg)
        out.append(labels)
    return state, out


def examples(out: Sequence[Labels]) -> list[tuple[str, str, bool, float, int]]:
    return [(e.rec_id, e.item, e.label, e.weight, e.slot) for lab in out for e in lab.examples]


def ignored(out: Sequence[Labels]) -> list[str]:
    return [lab.ignored for lab in out if lab.ignored is not None]
