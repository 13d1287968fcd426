"""MovieLens 100K: ``u.data`` ratings and ``u.item`` titles and genres.

``u.data`` (``user \\t item \\t rating \\t unix_s``) -> ``rating`` events, session = user + UTC
day; ``u.item`` (``|``-separated, Latin-1) -> item upserts with title and category (the first
genre flag set).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from recs.datasets._days import day_label
from recs.datasets._errors import DatasetError, check_ts, diagnose
from recs.datasets._files import need_file
from schemas.events import Interaction, ItemUpsert

ML100K_GENRES: Final = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
_ML_COLUMNS: Final = ("user", "item", "rating", "timestamp")


def read_ml100k_ratings(path: Path) -> Iterator[Interaction]:
    """``u.data`` -> ``rating`` events (value = stars, session = ``<user>:<UTC day>``)."""
    need_file(path, "MovieLens 100K u.data (user \\t item \\t rating \\t unix seconds)")
    days: dict[int, str] = {}
    with path.open(encoding="latin-1") as fh:
        for line_no, text in enumerate(fh, 1):
            row = text.rstrip("\r\n").split("\t")
            try:
                user, item, rating, secs = row
                value = float(rating)
                ts = int(secs) * 1000
            except ValueError:
                raise diagnose(path, line_no, row, _ML_COLUMNS, "ssfi") from None
            if not user or not item:
                raise diagnose(path, line_no, row, _ML_COLUMNS, "ssfi")
            if not 0 <= value <= 10:
                raise DatasetError(path, "column rating: expected 0..10", line=line_no,
                                   value=rating)
            check_ts(path, line_no, "timestamp", ts, "unix seconds")
            yield Interaction(event_id=f"ml100k:{line_no}", type="rating", user_id=user,
                              session_id=f"{user}:{day_label(days, ts)}", ts=ts, item_id=item,
                              value=value)


def read_ml100k_items(path: Path, ts: int) -> Iterator[ItemUpsert]:
    """``u.item`` -> item upserts at time ``ts``: title, category = first genre set, tags = all."""
    need_file(path, "MovieLens 100K u.item (id|title|date|video date|url|19 genre flags)")
    n_fixed = 5
    with path.open(encoding="latin-1") as fh:
        for line_no, text in enumerate(fh, 1):
            row = text.rstrip("\r\n").split("|")
            if len(row) != n_fixed + len(ML100K_GENRES) or not row[0]:
                raise DatasetError(path, f"expected {n_fixed + len(ML100K_GENRES)} "
                                   "'|'-separated columns with an item id first",
                                   line=line_no, value=text.rstrip("\r\n")[:120])
            flags = row[n_fixed:]
            bad = [f for f in flags if f not in ("0", "1")]
            if bad:
                raise DatasetError(path, "genre flags: expected 0 or 1", line=line_no,
                                   value=bad[0])
            genres = tuple(g for g, f in zip(ML100K_GENRES, flags, strict=True) if f == "1")
            yield ItemUpsert(item_id=row[0], ts=ts, title=row[1][:512] or None,
                             category=genres[0] if genres else None, tags=genres)
