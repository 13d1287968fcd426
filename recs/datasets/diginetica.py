"""Diginetica (CIKM Cup 2016): item views, purchases and product categories.

Views (``session_id;user_id;item_id;timeframe;eventdate``) -> ``view``; purchases
(``sessionId;userId;timeframe;eventdate;ordernumber;itemId``) -> ``purchase``;
``product-categories.csv`` -> item categories. Anonymous rows (user ``NA``) stand in as
``s:<session>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from recs.datasets._days import day_ms
from recs.datasets._errors import check_ts, diagnose
from recs.datasets._files import check_header, need_file
from schemas.events import Interaction, ItemUpsert

DIGINETICA_VIEWS_HEADER: Final = ("session_id", "user_id", "item_id", "timeframe", "eventdate")
DIGINETICA_PURCHASES_HEADER: Final = (
    "sessionId", "userId", "timeframe", "eventdate", "ordernumber", "itemId",
)
DIGINETICA_CATEGORIES_HEADER: Final = ("itemId", "categoryId")


def _user_or_session(user: str, session: str) -> str:
    return f"s:{session}" if user in ("NA", "") else user


def read_diginetica_views(path: Path) -> Iterator[Interaction]:
    """Views -> ``view`` events; ts = eventdate (UTC midnight) + timeframe ms."""
    need_file(path, "Diginetica item views (session_id;user_id;item_id;timeframe;eventdate)")
    days: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        check_header(path, fh, ";", DIGINETICA_VIEWS_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            try:
                session, user, item, frame, date = row
                ts = day_ms(days, date) + int(frame)
            except ValueError:
                raise diagnose(path, line_no, row, DIGINETICA_VIEWS_HEADER, "s-sid") from None
            if not session or not item:
                raise diagnose(path, line_no, row, DIGINETICA_VIEWS_HEADER, "s-sid")
            check_ts(path, line_no, "eventdate+timeframe", ts, "ms")
            yield Interaction(event_id=f"diginetica:views:{line_no}", type="view",
                              user_id=_user_or_session(user, session), session_id=session,
                              ts=ts, item_id=item)


def read_diginetica_purchases(path: Path) -> Iterator[Interaction]:
    """Purchases -> ``purchase`` events (context ``order`` = order number)."""
    need_file(path, "Diginetica purchases "
              "(sessionId;userId;timeframe;eventdate;ordernumber;itemId)")
    days: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        check_header(path, fh, ";", DIGINETICA_PURCHASES_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            try:
                session, user, frame, date, order, item = row
                ts = day_ms(days, date) + int(frame)
            except ValueError:
                raise diagnose(path, line_no, row, DIGINETICA_PURCHASES_HEADER,
                               "s-id-s") from None
            if not session or not item:
                raise diagnose(path, line_no, row, DIGINETICA_PURCHASES_HEADER, "s-id-s")
            check_ts(path, line_no, "eventdate+timeframe", ts, "ms")
            yield Interaction(event_id=f"diginetica:purchases:{line_no}", type="purchase",
                              user_id=_user_or_session(user, session), session_id=session,
                              ts=ts, item_id=item, context={"order": order})


def read_diginetica_categories(path: Path, ts: int) -> Iterator[ItemUpsert]:
    """``product-categories.csv`` -> item upserts at time ``ts`` carrying the category id."""
    need_file(path, "Diginetica product categories (itemId;categoryId)")
    with path.open(encoding="utf-8", newline="") as fh:
        check_header(path, fh, ";", DIGINETICA_CATEGORIES_HEADER)
        for line_no, text in enumerate(fh, 2):
            row = text.rstrip("\r\n").split(";")
            if len(row) != 2 or not row[0] or not row[1]:
                raise diagnose(path, line_no, row, DIGINETICA_CATEGORIES_HEADER, "ss")
            yield ItemUpsert(item_id=row[0], ts=ts, category=row[1])
