"""UTC days: ISO dates to epoch milliseconds and back, cached (logs repeat a few days a lot)."""

from __future__ import annotations

import datetime as dt
from typing import Final

DAY_MS: Final = 86_400_000


def day_ms(cache: dict[str, int], text: str) -> int:
    """Epoch ms of UTC midnight of the ISO date ``text``."""
    ms = cache.get(text)
    if ms is None:
        day = dt.date.fromisoformat(text)
        ms = cache[text] = (day - dt.date(1970, 1, 1)).days * DAY_MS
    return ms


def day_label(cache: dict[int, str], ts_ms: int) -> str:
    """The ISO date (UTC) of epoch ms ``ts_ms``."""
    day = ts_ms // DAY_MS
    label = cache.get(day)
    if label is None:
        label = cache[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return label
