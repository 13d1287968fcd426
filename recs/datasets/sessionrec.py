"""session-rec TSV logs (``rsc15``): ``SessionId \\t ItemId \\t Time`` -> ``view`` events.

A ``rsc15`` folder holds ``*_train_full.txt`` and ``*_test.txt`` (the last day).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from recs.datasets._errors import check_ts, diagnose
from recs.datasets._files import check_header, need_file
from schemas.events import Interaction

SESSION_TSV_HEADER: Final = ("SessionId", "ItemId", "Time")


def read_session_tsv(path: Path, dataset: str = "rsc15", part: str | None = None
                     ) -> Iterator[Interaction]:
    """``SessionId \\t ItemId \\t Time`` (unix seconds, float) -> ``view`` events.

    The user is the session (``s:<session>``): these logs are anonymous. Event ids are
    ``<dataset>:<part>:<line>``, ``part`` defaulting to the file's suffix after the last ``_``.
    """
    need_file(path, "a session-rec TSV with header SessionId\\tItemId\\tTime (unix seconds)")
    part = part or path.stem.rsplit("_", 1)[-1]
    prefix = f"{dataset}:{part}:"
    with path.open(encoding="utf-8", newline="") as fh:
        check_header(path, fh, "\t", SESSION_TSV_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split("\t")
            try:
                session, item, secs = row
                ts = round(float(secs) * 1000)
            except (ValueError, OverflowError):
                raise diagnose(path, line_no, row, SESSION_TSV_HEADER, "ssf") from None
            if not session or not item:
                raise diagnose(path, line_no, row, SESSION_TSV_HEADER, "ssf")
            check_ts(path, line_no, "Time", ts, "unix seconds")
            yield Interaction(event_id=f"{prefix}{line_no}", type="view",
                              user_id=f"s:{session}", session_id=session, ts=ts, item_id=item)
