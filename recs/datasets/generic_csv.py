"""Any delimited file with a header row, its columns named by a :class:`ColumnMap`.

A shop's export usually names its event types in its own words and carries the request's
context: :func:`parse_type_map` maps the raw types onto the engine's, and the optional context
columns (``device``, ``country``, ``referrer``, ``page``) land in the event's ``context``, where the
context trending lists (``recs:v1:trending:ctx:...``) read them.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from recs.datasets._days import day_label
from recs.datasets._errors import DatasetError, check_ts
from recs.datasets._files import need_file, open_text
from schemas.events import EVENT_TYPES, MAX_ID_LEN, Interaction

TS_UNITS: Final = {"s": 1000.0, "ms": 1.0, "us": 0.001}
CONTEXT_FIELDS: Final = ("device", "country", "referrer", "page")  # schema context strings


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
    device: str | None = None     # context columns (optional)
    country: str | None = None
    referrer: str | None = None
    page: str | None = None

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        """Parse ``field=column,...`` (fields: user, item, ts, type, session, value, event_id,
        and the context columns device, country, referrer, page)."""
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


def parse_type_map(spec: str) -> dict[str, str]:
    """Parse ``raw=type,...``: the file's event type names mapped onto the engine's.

    >>> parse_type_map("pageview=view, addtocart=add_to_cart, transaction=purchase")
    {'pageview': 'view', 'addtocart': 'add_to_cart', 'transaction': 'purchase'}
    """
    out: dict[str, str] = {}
    for chunk in filter(None, (c.strip() for c in spec.split(","))):
        raw, sep, etype = chunk.partition("=")
        if not sep or not raw.strip():
            raise ValueError(f"type map: expected raw=type, got {chunk!r}")
        etype = etype.strip()
        if etype not in EVENT_TYPES or etype == "impression":
            raise ValueError(f"type map: {raw.strip()!r} maps to {etype!r}, expected one of "
                             f"{sorted(EVENT_TYPES - {'impression'})}")
        out[raw.strip()] = etype
    if not out:
        raise ValueError(f"type map: no raw=type pair in {spec!r}")
    return out


def read_csv(path: Path, columns: ColumnMap, *, ts_unit: str = "s", delimiter: str = ",",
             default_type: str = "view", type_map: Mapping[str, str] | None = None,
             ) -> Iterator[Interaction]:
    """Any delimited file with a header row, fields picked by ``columns``.

    ``ts_unit`` is ``s``, ``ms``, ``us`` (epoch numbers) or ``iso`` (ISO-8601, UTC when no zone).
    Without a session column the session is ``<user>:<UTC day>``; without a type column every
    event is ``default_type``; without an event id column ids are ``csv:<file stem>:<line>``.
    ``type_map`` (:func:`parse_type_map`) translates the type column's values first; a value
    it does not name must be an engine type. Context columns go to ``context`` (empty values
    are left out; events with the same context share one dict: treat it as read-only).
    """
    need_file(path, f"a delimited file with a header naming {columns.user!r}, "
              f"{columns.item!r} and {columns.ts!r}")
    if ts_unit not in TS_UNITS and ts_unit != "iso":
        raise ValueError(f"ts_unit: expected one of {[*TS_UNITS, 'iso']}, got {ts_unit!r}")
    if default_type not in EVENT_TYPES or default_type == "impression":
        raise ValueError(f"default_type: expected a single-item event type, got {default_type!r}")
    days: dict[int, str] = {}
    with open_text(path) as fh:
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
        types = dict(type_map or {})
        ctx_pos = [(name, pos[name]) for name in CONTEXT_FIELDS if name in pos]
        contexts: dict[tuple[str, ...], dict[str, str]] = {}
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
            check_ts(path, line_no, columns.ts, ts, ts_unit)
            user, item = row[pos["user"]].strip(), row[pos["item"]].strip()
            for column, val in ((columns.user, user), (columns.item, item)):
                if not val or len(val) > MAX_ID_LEN:
                    raise DatasetError(path, f"column {column}: expected an id of 1.."
                                       f"{MAX_ID_LEN} characters", line=line_no, value=val)
            etype = row[pos["type"]].strip() if "type" in pos else default_type
            etype = types.get(etype, etype)
            if etype not in EVENT_TYPES or etype == "impression":
                mapped = f" or a type map key ({', '.join(types)})" if types else ""
                raise DatasetError(path, f"column {columns.type}: expected one of "
                                   f"{sorted(EVENT_TYPES - {'impression'})}{mapped}",
                                   line=line_no, value=etype)
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
                       else f"{user}:{day_label(days, ts)}")
            event_id = row[pos["event_id"]].strip() if "event_id" in pos else ""
            context: dict[str, str] = {}
            if ctx_pos:
                key = tuple(row[i].strip() for _, i in ctx_pos)
                found = contexts.get(key)
                if found is None:
                    found = contexts[key] = {name: v for (name, _), v in zip(ctx_pos, key,
                                                                              strict=True) if v}
                context = found
            yield Interaction(event_id=event_id or f"{prefix}{line_no}", type=etype,
                              user_id=user, session_id=session or f"s:{user}", ts=ts,
                              item_id=item, value=value, context=context)


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
