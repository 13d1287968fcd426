"""Pacing: a token bucket for target rates, event-time replay, and wall-clock deadlines.

Clocks and sleeps are injected, so every pacer is tested without waiting.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from recs.producer.config import Record

MIN_SLEEP_S: Final = 0.002  # sleeping less than this costs more than it paces


class TokenBucket:
    """Rate control: :meth:`take` returns at once while tokens last and sleeps off any debt.

    Tokens refill at ``rate`` per second up to ``burst``. A take may drive the bucket into debt;
    the caller then sleeps until the debt is repaid, but never less than ``min_sleep`` (short
    sleeps overshoot, and the refill credits the overshoot back up to ``burst``), so the long-run
    rate is ``rate`` with one sleep per ``rate * min_sleep`` records at most. Clock and sleep are
    injected for tests.

    >>> now = [0.0]
    >>> bucket = TokenBucket(100, clock=lambda: now[0],
    ...                      sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for _ in range(500):
    ...     _ = bucket.take()
    >>> round(now[0], 1)
    5.0
    """

    def __init__(self, rate: float, burst: float | None = None, *,
                 min_sleep: float = MIN_SLEEP_S,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"token bucket: rate must be a finite number > 0, got {rate}")
        self.rate = rate
        self.min_sleep = min_sleep
        self.burst = burst if burst is not None else max(1.0, rate * 4 * min_sleep)
        self._clock, self._sleep = clock, sleep
        self._tokens = 1.0
        self._last = clock()

    def take(self, n: float = 1.0) -> float:
        """Spend ``n`` tokens, sleeping when in debt; returns the seconds slept."""
        now = self._clock()
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate) - n
        self._last = now
        self._tokens = tokens
        if tokens >= 0:
            return 0.0
        wait = max(-tokens / self.rate, self.min_sleep)
        self._sleep(wait)
        return wait


def replay_paced(events: Iterable[Record], speedup: float, *, origin_ts: int | None = None,
                 start: float | None = None, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> Iterator[Record]:
    """Yield time-sorted records at their event-time gaps divided by ``speedup``.

    ``speedup`` ``0`` or ``inf`` means as fast as possible. Record ``r`` is due at ``start +
    (r.ts - origin_ts) / 1000 / speedup`` (defaults: now and the first record's time); parallel
    replayers given the same ``start`` and ``origin_ts`` stay in step.

    >>> from schemas.events import Interaction
    >>> now = [100.0]
    >>> evs = [Interaction(f"e{d}", "view", "u", "s", 1_000_000_000_000 + d, "i")
    ...        for d in (0, 5000, 5001)]
    >>> released = [(e.event_id, now[0]) for e in replay_paced(
    ...     evs, 10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))]
    >>> released
    [('e0', 100.0), ('e5000', 100.5), ('e5001', 100.5)]
    """
    fast = speedup == 0 or math.isinf(speedup)
    if speedup < 0 or math.isnan(speedup):
        raise ValueError(f"replay: speedup must be > 0, 0 or inf, got {speedup}")
    t0 = clock() if start is None else start
    for rec in events:
        if not fast:
            if origin_ts is None:
                origin_ts = rec.ts
            lag = t0 + (rec.ts - origin_ts) / 1000.0 / speedup - clock()
            if lag >= MIN_SLEEP_S:
                sleep(lag)
        yield rec


def until(records: Iterable[Record], deadline: float,
          clock: Callable[[], float] = time.monotonic) -> Iterator[Record]:
    """``records`` until the ``clock`` reaches ``deadline`` (checked every 256 records)."""
    for i, rec in enumerate(records):
        if i & 255 == 0 and clock() >= deadline:
            return
        yield rec
