"""The update record every writer applies, and the envelope stored under each key.

An :class:`Update` is a whole materialized value (never a delta) with a ``version`` that never
decreases per key and the event time ``as_of`` it reflects. The stream uses the event time itself
as the version: a store applies an update only when its version is not below the stored one, so a
replay after a crash cannot move a key back in time (its older updates are ignored) and converges
to the same final value (the last update of the replay carries the newest event time, and an equal
version is applied). Updates of one key reach the loader in the order they were emitted (the
``recs.updates`` topic has one partition), so among equal versions the newest wins.

>>> u = Update("recs:v1:item:i1", 3, 1_700_000_000_000, {"title": "Mug"})
>>> encode_envelope(u)
b'{"v":3,"t":1700000000000,"d":{"title":"Mug"}}'
>>> decode_envelope(encode_envelope(u))
Envelope(version=3, as_of=1700000000000, data={'title': 'Mug'})
>>> Update.from_wire(u.to_wire()) == u
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Update:
    """Set ``key`` to ``data`` at ``version`` (``data is None`` deletes the key)."""

    key: str
    version: int
    as_of: int
    data: Any

    def to_wire(self) -> bytes:
        """One line on the ``recs.updates`` topic."""
        return orjson.dumps({"k": self.key, "v": self.version, "t": self.as_of, "d": self.data})

    @classmethod
    def from_wire(cls, raw: bytes | str) -> Update:
        doc = orjson.loads(raw)
        try:
            return cls(doc["k"], int(doc["v"]), int(doc["t"]), doc["d"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"state.records: malformed update {raw[:80]!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Envelope:
    version: int
    as_of: int
    data: Any


def encode_envelope(update: Update) -> bytes:
    """Stored bytes; ``"v"`` comes first so the conditional-write script can read it cheaply."""
    return orjson.dumps({"v": update.version, "t": update.as_of, "d": update.data})


def decode_envelope(raw: bytes | str) -> Envelope:
    doc = orjson.loads(raw)
    return Envelope(int(doc["v"]), int(doc["t"]), doc["d"])
