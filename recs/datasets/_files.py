"""Opening a data file: existence, gzip-aware text streams and header checks."""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import IO

from recs.datasets._errors import DatasetError


def open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    """``path`` as text, decompressing ``.gz`` files on the fly."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return path.open(encoding=encoding, newline="")


def need_file(path: Path, expected: str) -> Path:
    """``path`` when it is a file, else a :class:`DatasetError` saying what was ``expected``."""
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DatasetError(path, f"{what}; expected {expected}")
    return path


def check_header(path: Path, fh: IO[str], sep: str, expected: tuple[str, ...]) -> None:
    """Read the first line of ``fh`` and require it to be exactly the ``expected`` columns."""
    first = fh.readline().rstrip("\r\n")
    got = tuple(c.strip() for c in first.split(sep))
    if got != expected:
        raise DatasetError(path, f"header: expected {sep.join(expected)!r}", line=1, value=first)
