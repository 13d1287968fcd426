"""Globo.com news clicks: CSV (gzip or plain) -> ``click`` events with their context.

The context carries device, os, country, region and referrer; a folder holds either the combined
``globo_clicks*.csv.gz`` or the hourly ``clicks/clicks_hour_*.csv``.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from recs.datasets._errors import LOG_MAX_TS_MS, LOG_MIN_TS_MS, DatasetError, check_ts, diagnose
from recs.datasets._files import check_header, need_file, open_text
from schemas.events import Interaction

GLOBO_HEADER: Final = (
    "user_id", "session_id", "session_start", "session_size", "click_article_id",
    "click_timestamp", "click_environment", "click_deviceGroup", "click_os", "click_country",
    "click_region", "click_referrer_type",
)


def read_globo(path: Path, *, limit: int | None = None, part: str | None = None
               ) -> Iterator[Interaction]:
    """Globo clicks CSV (``.csv`` or ``.csv.gz``) -> ``click`` events, streaming.

    Context: ``device`` (deviceGroup), ``os``, ``country``, ``region``, ``referrer`` (referrer
    type) as the data set's integer codes in strings. Events with the same context share one
    context dict (millions of rows, a handful of distinct contexts): treat it as read-only.
    Event ids are ``globo:<line>`` (``globo:<part>:<line>`` when ``part`` is given).
    """
    need_file(path, "Globo.com clicks CSV (user_id,session_id,...,click_referrer_type)")
    prefix = f"globo:{part}:" if part else "globo:"
    contexts: dict[tuple[str, ...], dict[str, str]] = {}
    intern = sys.intern
    with open_text(path) as fh:
        check_header(path, fh, ",", GLOBO_HEADER)
        for line_no, text in enumerate(itertools.islice(fh, limit), 2):
            row = text.rstrip("\r\n").split(",")
            try:
                user, session, _, _, item, ts_raw, _, device, os_, country, region, ref = row
                ts = int(ts_raw)
            except ValueError:
                raise diagnose(path, line_no, row, GLOBO_HEADER, "ssiisi------") from None
            if not user or not session or not item:
                raise diagnose(path, line_no, row, GLOBO_HEADER, "ssiisi------")
            if not LOG_MIN_TS_MS <= ts <= LOG_MAX_TS_MS:
                check_ts(path, line_no, "click_timestamp", ts, "ms")
            key = (device, os_, country, region, ref)
            context = contexts.get(key)
            if context is None:
                context = contexts[key] = {"device": device, "os": os_, "country": country,
                                           "region": region, "referrer": ref}
            yield Interaction(event_id=f"{prefix}{line_no}", type="click", user_id=intern(user),
                              session_id=intern(session), ts=ts, item_id=intern(item),
                              context=context)


def globo_files(path: Path) -> list[Path]:
    """The click files of a Globo folder: the combined ``*.csv.gz`` or the hourly ``clicks/``."""
    if path.is_file():
        return [path]
    if path.is_dir():
        for pattern in ("globo_clicks*.csv*", "clicks/clicks_hour_*.csv", "clicks_hour_*.csv"):
            found = sorted(path.glob(pattern))
            if found:
                return found
    raise DatasetError(path, "no Globo click log here; expected globo_clicks_all.csv.gz, "
                       "a clicks/ folder of clicks_hour_*.csv, or one such file")


def iter_globo(path: Path | str, *, limit: int | None = None) -> Iterator[Interaction]:
    """All Globo click files under ``path`` in file order, streaming, at most ``limit`` events."""
    files = globo_files(Path(path))
    many = len(files) > 1
    events = itertools.chain.from_iterable(
        read_globo(f, part=f.name.split(".")[0] if many else None, limit=limit) for f in files)
    return itertools.islice(events, limit)
