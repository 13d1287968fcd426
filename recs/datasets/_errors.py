"""What a broken data file looks like: :class:`DatasetError` and the checks that raise it.

Every error names the file, the line and the value received, so a reader's caller can point at
the exact row to fix.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Final

from schemas.events import MAX_TS_MS

# Plausible event times for a log: the same floor as the wire contract (schemas.events.MIN_TS_MS,
# 1990-01-01), low enough for MovieLens 100K (1997-98) and still catching seconds read as
# milliseconds (1970-01-21). Kept as its own constant: a log's floor must never rise above the
# contract's, or loaded events would be rejected on the wire.
LOG_MIN_TS_MS: Final = 631_152_000_000  # 1990-01-01
LOG_MAX_TS_MS: Final = MAX_TS_MS


class DatasetError(ValueError):
    """A data file is missing or breaks its format. ``path``, ``line`` and ``value`` say where."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None,
                 value: object = None) -> None:
        self.path = Path(path)
        self.line = line
        self.value = value
        where = f"{path}:{line}" if line is not None else str(path)
        got = f", got {value!r}" if value is not None else ""
        super().__init__(f"{where}: {message}{got}")


def check_ts(path: Path, line: int, column: str, ts: int, unit: str) -> int:
    """``ts`` (epoch ms) when it lies in the plausible window, else a :class:`DatasetError`."""
    if not LOG_MIN_TS_MS <= ts <= LOG_MAX_TS_MS:
        raise DatasetError(path, f"column {column}: {ts} ms lies outside 1990..2100 "
                           f"(is the unit really {unit}?)", line=line, value=ts)
    return ts


def diagnose(path: Path, line: int, row: list[str], columns: tuple[str, ...],
             kinds: str) -> DatasetError:
    """Name the first bad column of a row the fast path could not parse.

    ``kinds`` has one letter per column: ``i`` integer, ``f`` number, ``s`` non-empty string,
    ``d`` ISO date, ``-`` anything.
    """
    if len(row) != len(columns):
        return DatasetError(path, f"expected {len(columns)} columns "
                            f"({', '.join(columns)}), found {len(row)}", line=line,
                            value=row if len(row) > 1 else (row[0] if row else ""))
    for name, kind, raw in zip(columns, kinds, row, strict=True):
        try:
            if kind == "i":
                int(raw)
            elif kind == "f":
                float(raw)
            elif kind == "d":
                dt.date.fromisoformat(raw)
        except ValueError:
            expected = {"i": "an integer", "f": "a number", "d": "a date (YYYY-MM-DD)"}[kind]
            return DatasetError(path, f"column {name}: expected {expected}", line=line,
                                value=raw)
        if kind == "s" and not raw.strip():
            return DatasetError(path, f"column {name}: expected a non-empty value", line=line,
                                value=raw)
    return DatasetError(path, "cannot parse row", line=line, value=row)
