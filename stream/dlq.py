"""Dead-letter records: the raw input, why it was rejected, and where.

>>> from schemas.events import SchemaError
>>> rec = orjson.loads(dead_letter('{"ts": 5}', SchemaError("interaction", "ts", "too old", 5)))
>>> rec["field"], rec["value"], rec["raw"]
('ts', 5, '{"ts": 5}')
"""

from __future__ import annotations

from typing import Any

import orjson

from schemas.events import SchemaError


def dead_letter(raw: str, exc: SchemaError, stage: str = "parse") -> str:
    """The DLQ message for ``raw``; the raw text is kept whole so nothing is lost."""
    value: Any = exc.value
    if not isinstance(value, str | int | float | bool | type(None)):
        value = repr(value)[:200]
    return orjson.dumps({
        "reason": str(exc),
        "contract": exc.contract,
        "field": exc.field,
        "value": value,
        "stage": stage,
        "raw": raw,
    }).decode()
