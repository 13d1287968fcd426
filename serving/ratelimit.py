"""Token buckets: per API key and per client address, in this process.

A bucket holds at most ``burst`` tokens and gains ``rate`` per second; a request takes one. When
the bucket is empty the request is refused with the seconds until a token is back (the
``Retry-After`` of the 429). The clock is passed in (monotonic seconds), so the arithmetic is a
pure function of the calls.

>>> b = Buckets(rate=2.0, burst=3.0)
>>> [b.take("a", 0.0) for _ in range(4)]
[0.0, 0.0, 0.0, 0.5]
>>> b.take("a", 0.5), b.take("b", 0.5)
(0.0, 0.0)

The table is bounded: past ``max_entries`` names, the buckets that are full again (idle long
enough to have forgotten their caller) are dropped, and when none is, the whole table is, which
errs on the side of letting requests through rather than growing without bound.

With several server workers each keeps its own buckets, so the limit a client sees is the
configured one times the number of workers.
"""

from __future__ import annotations

from typing import Final

DEFAULT_MAX_ENTRIES: Final = 100_000


class Buckets:
    __slots__ = ("_state", "burst", "max_entries", "rate")

    def __init__(self, rate: float, burst: float,
                 max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"ratelimit: rate must be > 0 and burst >= 1, got rate={rate} "
                             f"burst={burst}")
        self.rate = rate
        self.burst = burst
        self.max_entries = max_entries
        self._state: dict[str, list[float]] = {}  # name -> [tokens, time of that count]

    def take(self, name: str, now: float, rate: float | None = None,
             burst: float | None = None) -> float:
        """Take one token from ``name``'s bucket: 0.0 when granted, else the seconds until one
        is back. ``rate``/``burst`` override the defaults for this name (a key's own limit)."""
        r = rate or self.rate
        cap = burst or self.burst
        st = self._state.get(name)
        if st is None:
            if len(self._state) >= self.max_entries:
                self._evict(now)
            self._state[name] = [cap - 1.0, now]
            return 0.0
        tokens = st[0] + (now - st[1]) * r
        if tokens > cap:
            tokens = cap
        st[1] = now
        if tokens >= 1.0:
            st[0] = tokens - 1.0
            return 0.0
        st[0] = tokens
        return (1.0 - tokens) / r

    def __len__(self) -> int:
        return len(self._state)

    def _evict(self, now: float) -> None:
        full = [name for name, (tokens, t) in self._state.items()
                if tokens + (now - t) * self.rate >= self.burst]
        if not full:
            self._state.clear()
            return
        for name in full:
            del self._state[name]
