"""Loaders for public interaction logs, turning each format into :class:`Interaction` events.

Every reader is a generator over one file, yielding events in the file's order with a
deterministic ``event_id`` (``<dataset>:<line>`` or ``<dataset>:<part>:<line>``), so replaying a
log twice publishes the same ids and the engine's idempotent writers can drop the repeats.
:func:`load` reads a whole data set (folder or file), sorts it by event time (stable, so ties keep
their file order) and returns a :class:`Dataset`.

Formats (the column layouts are those of the original public files):

==============  ===========================================================================
``ml100k``      MovieLens 100K ``u.data`` (``user \\t item \\t rating \\t unix_s``) -> ``rating``
                events, session = user + UTC day; ``u.item`` (``|``-separated, Latin-1) ->
                item upserts with title and category (first genre flag set)
``diginetica``  CIKM Cup 2016 views (``session_id;user_id;item_id;timeframe;eventdate``) ->
                ``view``; purchases (``sessionId;userId;timeframe;eventdate;ordernumber;itemId``)
                -> ``purchase``; ``product-categories.csv`` -> item categories
``rsc15``       session-rec TSV (``SessionId \\t ItemId \\t Time``, unix seconds) -> ``view``;
                a folder holds ``*_train_full.txt`` and ``*_test.txt`` (the last day)
``globo``       Globo.com news clicks CSV (gzip or plain) -> ``click`` with device/os/country/
                region/referrer context
``csv``         any delimited file with a header and a :class:`ColumnMap`
==============  ===========================================================================

Every error is a :class:`DatasetError` naming the file, the line and the value received:

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "u.data").write_text("1\\t10\\t5\\t881250949\\n2\\t10\\tfive\\t881250950\\n")
>>> try:
...     load("ml100k", folder)
... except DatasetError as exc:
...     print(exc.line, exc.value, "|", str(exc).replace(str(folder), "<dir>"))
2 five | <dir>/u.data:2: column rating: expected a number, got 'five'
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import gzip
import io
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import IO, Final

from schemas.events import EVENT_TYPES, MAX_ID_LEN, MAX_TS_MS, Interaction, ItemUpsert

DATASETS: Final = ("ml100k", "diginetica", "rsc15", "globo", "csv")
DAY_MS: Final = 86_400_000

ML100K_GENRES: Final = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)
DIGINETICA_VIEWS_HEADER: Final = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
DIGINETICA_PURCHASES_HEADER: Final = (
    "sessionId", "userId", "timeframe", "eventdate", "ordernumber", "itemId",
)
DIGINETICA_CATEGORIES_HEADER: Final = ("itemId", "categoryId")
SESSION_TSV_HEADER: Final = ("SessionId", "ItemId", "Time")
GLOBO_HEADER: Final = (
    "user_id", "session_id", "session_start", "session_size", "click_article_id",
    "click_timestamp", "click_environment", "click_deviceGroup", "click_os", "click_country",
    "click_region", "click_referrer_type",
)
TS_UNITS: Final = {"s": 1000.0, "ms": 1.0, "us": 0.001}
# Plausible event times for a log. Looser than the wire contract (which starts in 2000) because
# MovieLens 100K is from 1997-98; still catches seconds read as milliseconds (1970-01-21).
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


@dataclass(frozen=True, slots=True)
class Dataset:
    """A loaded log: events sorted by event time (stable), plus item metadata when the set has it.

    ``test_sessions`` names the sessions of a held-out test file (rsc15: the last day) and
    ``test_start_ts`` the first event time among them; both are empty when the set has no split.
    """

    name: str
    events: list[Interaction]
    items: list[ItemUpsert] = field(default_factory=list)
    test_sessions: frozenset[str] = frozenset()
    test_start_ts: int | None = None

    def train_events(self) -> list[Interaction]:
        """Events of the training part (all events when there is no split), time-sorted."""
        test = self.test_sessions
        return [e for e in self.events if e.session_id not in test] if test else self.events

    def test_events(self) -> list[Interaction]:
        """Events of the held-out test part, time-sorted (empty when there is no split)."""
        test = self.test_sessions
        return [e for e in self.events if e.session_id in test]


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Which header column holds which event field in a generic CSV.

    >>> cmap = ColumnMap.parse("user=uid,item=sku,ts=time,type=action")
    >>> cmap.user, cmap.item, cmap.ts, cmap.type, cmap.session
    ('uid', 'sku', 'time', 'action', None)
    """

    user: str
    item: str
    ts: str
    type: str | None = None
    session: str | None = None
    value: str | None = None
    event_id: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        """Parse ``field=column,...`` (fields: user, item, ts, type, session, value, event_id)."""
        known = set(cls.__dataclass_fields__)
        parts: dict[str, str] = {}
        for chunk in filter(None, (c.strip() for c in spec.split(","))):
            name, sep, column = chunk.partition("=")
            name = name.strip()
            if not sep or not column.strip():
                raise ValueError(f"column map: expected field=column, got {chunk!r}")
            if name not in known:
                raise ValueError(f"column map: unknown field {name!r}, expected one of "
                                 f"{sorted(known)}")
            parts[name] = column.strip()
        missing = [n for n in ("user", "item", "ts") if n not in parts]
        if missing:
            raise ValueError(f"column map: {', '.join(missing)} required, got {spec!r}")
        return cls(**parts)


def sort_by_time(events: Iterable[Interaction]) -> list[Interaction]:
    """Events sorted by ``ts``; stable, so events with equal times keep their input order."""
    return sorted(events, key=attrgetter("ts"))


# --- file helpers --------------------------------------------------------------------------------

def _open_text(path: Path, encoding: str = "utf-8") -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding=encoding, newline="")
    return path.open(encoding=encoding, newline="")


def _need_file(path: Path, expected: str) -> Path:
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise DatasetError(path, f"{what}; expected {expected}")
    return path


def _header(path: Path, fh: IO[str], sep: str, expected: tuple[str, ...]) -> None:
    first = fh.readline().rstrip("\r\n")
    got = tuple(c.strip() for c in first.split(sep))
    if got != expected:
        raise DatasetError(path, f"header: expected {sep.join(expected)!r}", line=1, value=first)


def _ts_check(path: Path, line: int, column: str, ts: int, unit: str) -> int:
    if not LOG_MIN_TS_MS <= ts <= LOG_MAX_TS_MS:
        raise DatasetError(path, f"column {column}: {ts} ms lies outside 1990..2100 "
                           f"(is the unit really {unit}?)", line=line, value=ts)
    return ts


def _diagnose(path: Path, line: int, row: list[str], columns: tuple[str, ...],
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


def _day_ms(cache: dict[str, int], text: str) -> int:
    ms = cache.get(text)
    if ms is None:
        day = dt.date.fromisoformat(text)
        ms = cache[text] = (day - dt.date(1970, 1, 1)).days * DAY_MS
    return ms


def _day_label(cache: dict[int, str], ts_ms: int) -> str:
    day = ts_ms // DAY_MS
    label = cache.get(day)
    if label is None:
        label = cache[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    return label


# --- MovieLens 100K ------------------------------------------------------------------------------

_ML_COLUMNS: Final = ("user", "item", "rating", "timestamp")


def read_ml100k_ratings(path: Path) -> Iterator[Interaction]:
    """``u.data`` -> ``rating`` events (value = stars, session = ``<user>:<UTC day>``)."""
    _need_file(path, "MovieLens 100K u.data (user \\t item \\t rating \\t unix seconds)")
    days: dict[int, str] = {}
    with path.open(encoding="latin-1") as fh:
        for line_no, text in enumerate(fh, 1):
            row = text.rstrip("\r\n").split("\t")
            try:
                user, item, rating, secs = row
                value = float(rating)
                ts = int(secs) * 1000
            except ValueError:
                raise _diagnose(path, line_no, row, _ML_COLUMNS, "ssfi") from None
            if not user or not item:
                raise _diagnose(path, line_no, row, _ML_COLUMNS, "ssfi")
            if not 0 <= value <= 10:
                raise DatasetError(path, "column rating: expected 0..10", line=line_no,
                                   value=rating)
            _ts_check(path, line_no, "timestamp", ts, "unix seconds")
            yield Interaction(event_id=f"ml100k:{line_no}", type="rating", user_id=user,
                              session_id=f"{user}:{_day_label(days, ts)}", ts=ts, item_id=item,
                              value=value)


def read_ml100k_items(path: Path, ts: int) -> Iterator[ItemUpsert]:
    """``u.item`` -> item upserts at time ``ts``: title, category = first genre set, tags = all."""
    _need_file(path, "MovieLens 100K u.item (id|title|date|video date|url|19 genre flags)")
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


# --- Diginetica ----------------------------------------------------------------------------------

def _user_or_session(user: str, session: str) -> str:
    return f"s:{session}" if user in ("NA", "") else user


def read_diginetica_views(path: Path) -> Iterator[Interaction]:
    """Views -> ``view`` events; ts = eventdate (UTC midnight) + timeframe ms."""
    _need_file(path, "Diginetica item views (session_id;user_id;item_id;timeframe;eventdate)")
    days: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        _header(path, fh, ";", DIGINETICA_VIEWS_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            try:
                session, user, item, frame, date = row
                ts = _day_ms(days, date) + int(frame)
            except ValueError:
                raise _diagnose(path, line_no, row, DIGINETICA_VIEWS_HEADER, "s-sid") from None
            if not session or not item:
                raise _diagnose(path, line_no, row, DIGINETICA_VIEWS_HEADER, "s-sid")
            _ts_check(path, line_no, "eventdate+timeframe", ts, "ms")
            yield Interaction(event_id=f"diginetica:views:{line_no}", type="view",
                              user_id=_user_or_session(user, session), session_id=session,
                              ts=ts, item_id=item)


def read_diginetica_purchases(path: Path) -> Iterator[Interaction]:
    """Purchases -> ``purchase`` events (context ``order`` = order number)."""
    _need_file(path, "Diginetica purchases "
               "(sessionId;userId;timeframe;eventdate;ordernumber;itemId)")
    days: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        _header(path, fh, ";", DIGINETICA_PURCHASES_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            try:
                session, user, frame, date, order, item = row
                ts = _day_ms(days, date) + int(frame)
            except ValueError:
                raise _diagnose(path, line_no, row, DIGINETICA_PURCHASES_HEADER,
                                "s-id-s") from None
            if not session or not item:
                raise _diagnose(path, line_no, row, DIGINETICA_PURCHASES_HEADER, "s-id-s")
            _ts_check(path, line_no, "eventdate+timeframe", ts, "ms")
            yield Interaction(event_id=f"diginetica:purchases:{line_no}", type="purchase",
                              user_id=_user_or_session(user, session), session_id=session,
                              ts=ts, item_id=item, context={"order": order})


def read_diginetica_categories(path: Path, ts: int) -> Iterator[ItemUpsert]:
    """``product-categories.csv`` -> item upserts at time ``ts`` carrying the category id."""
    _need_file(path, "Diginetica product categories (itemId;categoryId)")
    with path.open(encoding="utf-8", newline="") as fh:
        _header(path, fh, ";", DIGINETICA_CATEGORIES_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            if len(row) != 2 or not row[0] or not row[1]:
                raise _diagnose(path, line_no, row, DIGINETICA_CATEGORIES_HEADER, "ss")
            yield ItemUpsert(item_id=row[0], ts=ts, category=row[1])


# --- session-rec TSV (rsc15) ---------------------------------------------------------------------

def read_session_tsv(path: Path, dataset: str = "rsc15", part: str | None = None
                     ) -> Iterator[Interaction]:
    """``SessionId \\t ItemId \\t Time`` (unix seconds, float) -> ``view`` events.

    The user is the session (``s:<session>``): these logs are anonymous. Event ids are
    ``<dataset>:<part>:<line>``, ``part`` defaulting to the file's suffix after the last ``_``.
    """
    _need_file(path, "a session-rec TSV with header SessionId\\tItemId\\tTime (unix seconds)")
    part = part or path.stem.rsplit("_", 1)[-1]
    prefix = f"{dataset}:{part}:"
    with path.open(encoding="utf-8", newline="") as fh:
        _header(path, fh, "\t", SESSION_TSV_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split("\t")
            try:
                session, item, secs = row
                ts = round(float(secs) * 1000)
            except (ValueError, OverflowError):
                raise _diagnose(path, line_no, row, SESSION_TSV_HEADER, "ssf") from None
            if not session or not item:
                raise _diagnose(path, line_no, row, SESSION_TSV_HEADER, "ssf")
            _ts_check(path, line_no, "Time", ts, "unix seconds")
            yield Interaction(event_id=f"{prefix}{line_no}", type="view",
                              user_id=f"s:{session}", session_id=session, ts=ts, item_id=item)


# --- Globo.com news ------------------------------------------------------------------------------

def read_globo(path: Path, *, limit: int | None = None, part: str | None = None
               ) -> Iterator[Interaction]:
    """Globo clicks CSV (``.csv`` or ``.csv.gz``) -> ``click`` events, streaming.

    Context: ``device`` (deviceGroup), ``os``, ``country``, ``region``, ``referrer`` (referrer
    type) as the data set's integer codes in strings. Events with the same context share one
    context dict (millions of rows, a handful of distinct contexts): treat it as read-only.
    Event ids are ``globo:<line>`` (``globo:<part>:<line>`` when ``part`` is given).
    """
    _need_file(path, "Globo.com clicks CSV (user_id,session_id,...,click_referrer_type)")
    prefix = f"globo:{part}:" if part else "globo:"
    contexts: dict[tuple[str, ...], dict[str, str]] = {}
    intern = sys.intern
    with _open_text(path) as fh:
        _header(path, fh, ",", GLOBO_HEADER)
        for line_no, text in enumerate(itertools.islice(fh, limit), 2):
            row = text.rstrip("\r\n").split(",")
            try:
                user, session, _, _, item, ts_raw, _, device, os_, country, region, ref = row
                ts = int(ts_raw)
            except ValueError:
                raise _diagnose(path, line_no, row, GLOBO_HEADER, "ssiisi------") from None
            if not user or not session or not item:
                raise _diagnose(path, line_no, row, GLOBO_HEADER, "ssiisi------")
            if not LOG_MIN_TS_MS <= ts <= LOG_MAX_TS_MS:
                _ts_check(path, line_no, "click_timestamp", ts, "ms")
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


# --- generic CSV ---------------------------------------------------------------------------------

def read_csv(path: Path, columns: ColumnMap, *, ts_unit: str = "s", delimiter: str = ",",
             default_type: str = "view") -> Iterator[Interaction]:
    """Any delimited file with a header row, fields picked by ``columns``.

    ``ts_unit`` is ``s``, ``ms``, ``us`` (epoch numbers) or ``iso`` (ISO-8601, UTC when no zone).
    Without a session column the session is ``<user>:<UTC day>``; without a type column every
    event is ``default_type``; without an event id column ids are ``csv:<file stem>:<line>``.
    """
    _need_file(path, f"a delimited file with a header naming {columns.user!r}, "
               f"{columns.item!r} and {columns.ts!r}")
    if ts_unit not in TS_UNITS and ts_unit != "iso":
        raise ValueError(f"ts_unit: expected one of {[*TS_UNITS, 'iso']}, got {ts_unit!r}")
    if default_type not in EVENT_TYPES or default_type == "impression":
        raise ValueError(f"default_type: expected a single-item event type, got {default_type!r}")
    days: dict[int, str] = {}
    with _open_text(path) as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise DatasetError(path, "empty file; expected a header row", line=1)
        index = {name.strip(): i for i, name in enumerate(header)}
        wanted = {f: getattr(columns, f) for f in ColumnMap.__dataclass_fields__}
        pos: dict[str, int] = {}
        for fname, column in wanted.items():
            if column is None:
                continue
            if column not in index:
                raise DatasetError(path, f"header: no column {column!r} for {fname} "
                                   f"(columns: {', '.join(index)})", line=1,
                                   value=delimiter.join(header))
            pos[fname] = index[column]
        width = max(pos.values()) + 1
        to_ts = _ts_parser(ts_unit)
        prefix = f"csv:{path.name.split('.')[0]}:"
        for line_no, row in enumerate(reader, 2):
            if len(row) < width:
                raise DatasetError(path, f"expected at least {width} columns, found {len(row)}",
                                   line=line_no, value=delimiter.join(row))
            raw_ts = row[pos["ts"]]
            try:
                ts = to_ts(raw_ts)
            except (ValueError, OverflowError):
                raise DatasetError(path, f"column {columns.ts}: expected a timestamp in "
                                   f"{ts_unit}", line=line_no, value=raw_ts) from None
            _ts_check(path, line_no, columns.ts, ts, ts_unit)
            user, item = row[pos["user"]].strip(), row[pos["item"]].strip()
            for column, val in ((columns.user, user), (columns.item, item)):
                if not val or len(val) > MAX_ID_LEN:
                    raise DatasetError(path, f"column {column}: expected an id of 1.."
                                       f"{MAX_ID_LEN} characters", line=line_no, value=val)
            etype = row[pos["type"]].strip() if "type" in pos else default_type
            if etype not in EVENT_TYPES or etype == "impression":
                raise DatasetError(path, f"column {columns.type}: expected one of "
                                   f"{sorted(EVENT_TYPES - {'impression'})}", line=line_no,
                                   value=etype)
            value = None
            if "value" in pos and row[pos["value"]].strip():
                try:
                    value = float(row[pos["value"]])
                except ValueError:
                    raise DatasetError(path, f"column {columns.value}: expected a number",
                                       line=line_no, value=row[pos["value"]]) from None
            if etype == "rating" and (value is None or not 0 <= value <= 10):
                raise DatasetError(path, f"column {columns.value}: a rating needs a value in "
                                   "0..10", line=line_no, value=value)
            session = (row[pos["session"]].strip() if "session" in pos
                       else f"{user}:{_day_label(days, ts)}")
            event_id = row[pos["event_id"]].strip() if "event_id" in pos else ""
            yield Interaction(event_id=event_id or f"{prefix}{line_no}", type=etype,
                              user_id=user, session_id=session or f"s:{user}", ts=ts,
                              item_id=item, value=value)


def _ts_parser(unit: str) -> Callable[[str], int]:
    if unit == "iso":
        def iso(raw: str) -> int:
            stamp = dt.datetime.fromisoformat(raw.strip())
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            return round(stamp.timestamp() * 1000)
        return iso
    scale = TS_UNITS[unit]
    return lambda raw: round(float(raw) * scale)


# --- whole data sets -----------------------------------------------------------------------------

def _find(folder: Path, names: Iterable[str], expected: str) -> Path:
    if folder.is_file():
        return folder
    for name in names:
        found = sorted(folder.glob(name)) if folder.is_dir() else []
        if found:
            return found[0]
    what = "folder" if folder.is_dir() else "path (does not exist)"
    raise DatasetError(folder, f"{what} holds no {expected}")


def _one_user_per_session(events: list[Interaction]) -> list[Interaction]:
    """Give every event of a session the session's first known user id (``NA`` rows otherwise
    stand in as ``s:<session>``), so a shopper who logs in mid-session stays one key."""
    known: dict[str, str] = {}
    for e in events:
        if not e.user_id.startswith("s:"):
            known.setdefault(e.session_id, e.user_id)
    return [dataclasses.replace(e, user_id=known[e.session_id])
            if e.session_id in known and e.user_id != known[e.session_id] else e
            for e in events]


def _first_ts(events: list[Interaction]) -> int:
    return events[0].ts if events else LOG_MIN_TS_MS


def load(dataset_name: str, path: Path | str, *, limit: int | None = None,
         columns: ColumnMap | str | None = None, ts_unit: str = "s",
         delimiter: str = ",") -> Dataset:
    """Load a public data set from its folder (or main file), events sorted by time.

    ``limit`` caps the events read from each file, in file order, before sorting. Item upserts
    (MovieLens ``u.item``, Diginetica categories) are kept for the items the events mention and
    stamped with the first event time, so a replay publishes them before any event. Diginetica
    purchases are kept for the sessions whose views were loaded (the public sample has views for
    a few thousand sessions but purchases for all), and each Diginetica session gets one user:
    the first real user id among its rows, else ``s:<session>``. ``columns``, ``ts_unit`` and
    ``delimiter`` apply to ``csv`` only.
    """
    path = Path(path)

    def take(events: Iterable[Interaction]) -> Iterator[Interaction]:
        return itertools.islice(events, limit)

    if dataset_name == "ml100k":
        data = _find(path, ["u.data"], "MovieLens 100K u.data")
        events = sort_by_time(take(read_ml100k_ratings(data)))
        items: list[ItemUpsert] = []
        if (data.parent / "u.item").is_file():
            seen = {e.item_id for e in events}
            items = [i for i in read_ml100k_items(data.parent / "u.item", _first_ts(events))
                     if i.item_id in seen]
        return Dataset(dataset_name, events, items)
    if dataset_name == "diginetica":
        views = _find(path, ["train-item-views.csv", "*item-views*.csv"],
                      "Diginetica item views (train-item-views.csv)")
        events = list(take(read_diginetica_views(views)))
        folder = views.parent
        purchases_file = folder / "train-purchases.csv"
        if purchases_file.is_file():
            sessions = {e.session_id for e in events}
            events += [p for p in take(read_diginetica_purchases(purchases_file))
                       if p.session_id in sessions]
        events = _one_user_per_session(sort_by_time(events))
        items = []
        if (folder / "product-categories.csv").is_file():
            seen = {e.item_id for e in events}
            items = [i for i in read_diginetica_categories(folder / "product-categories.csv",
                                                           _first_ts(events))
                     if i.item_id in seen]
        return Dataset(dataset_name, events, items)
    if dataset_name == "rsc15":
        if path.is_file():
            return Dataset(dataset_name, sort_by_time(take(read_session_tsv(path))))
        train = _find(path, ["*_train_full.txt"], "session-rec training file *_train_full.txt")
        test = _find(path, ["*_test.txt"], "session-rec test file *_test.txt")
        train_events = list(take(read_session_tsv(train, "rsc15", "train")))
        test_events = list(take(read_session_tsv(test, "rsc15", "test")))
        return Dataset(dataset_name, sort_by_time(train_events + test_events),
                       test_sessions=frozenset(e.session_id for e in test_events),
                       test_start_ts=min((e.ts for e in test_events), default=None))
    if dataset_name == "globo":
        return Dataset(dataset_name, sort_by_time(iter_globo(path, limit=limit)))
    if dataset_name == "csv":
        if columns is None:
            raise ValueError("csv: a column map is required (e.g. user=uid,item=sku,ts=time)")
        cmap = ColumnMap.parse(columns) if isinstance(columns, str) else columns
        return Dataset(dataset_name, sort_by_time(take(
            read_csv(path, cmap, ts_unit=ts_unit, delimiter=delimiter))))
    raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset_name!r}")


def iter_globo(path: Path | str, *, limit: int | None = None) -> Iterator[Interaction]:
    """All Globo click files under ``path`` in file order, streaming, at most ``limit`` events."""
    files = globo_files(Path(path))
    many = len(files) > 1
    events = itertools.chain.from_iterable(
        read_globo(f, part=f.name.split(".")[0] if many else None, limit=limit) for f in files)
    return itertools.islice(events, limit)
