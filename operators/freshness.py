"""How fresh the session's recent items are: the learned blend's age features.

The learned blend's ``sim*`` and ``seen*`` features (:mod:`operators.learned_blend`) weigh the
session's r-th most recent distinct item the same whether it was read a minute or three days
ago. On a news log a returning user's "recent" items are often days old, and their similar
lists' votes are then mostly noise. :func:`freshness` gives each recent item two weights that
halve with its age, one per hour and one per day (age: the request time ``now`` minus the time
of the item's newest event in the session, never below 0), which the learned blend multiplies
its votes by when ``LearnedBlendConfig.ages`` is on. Pure: ``now`` is passed in (the request's
time on the server, the event's time when learning or evaluating).

>>> session = {"events": [["a", "view", 0], ["b", "view", 3_600_000], ["a", "view", 7_200_000]]}
>>> freshness(session, ["a", "b"], 7_200_000)
[(1.0, 1.0), (0.5, 0.9715319411536059)]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

HOUR_S: Final = 3_600.0   # half-life of the first weight (``simh``, ``simrh``, ``seenh``)
DAY_S: Final = 86_400.0   # half-life of the second (``simd``, ``simrd``, ``seend``)


def freshness(session: Mapping[str, Any], history: Sequence[str],
              now: int) -> list[tuple[float, float]]:
    """For each item of ``history`` (the session's recent items,
    :func:`operators.candidates.recent_items`), ``(0.5 ** (age / HOUR_S), 0.5 ** (age /
    DAY_S))`` with ``age`` in seconds since its newest event in ``session["events"]`` (entries
    ``[item, type, ts]``, ts in ms; the last one in the list, as ``recent_items`` reads
    recency). A history item absent from the events (not a session's) is refused."""
    wanted, newest = set(history), dict[str, int]()
    for item_id, _etype, ts in reversed(session.get("events", ())):
        if item_id in wanted and item_id not in newest:
            newest[item_id] = int(ts)
            if len(newest) == len(wanted):
                break
    out: list[tuple[float, float]] = []
    for item_id in history:
        ts = newest.get(item_id)
        if ts is None:
            raise ValueError(f"operators.freshness: recent item {item_id!r} has no event in "
                             f"the session")
        age = max(now - ts, 0) / 1000.0
        out.append((0.5 ** (age / HOUR_S), 0.5 ** (age / DAY_S)))
    return out
