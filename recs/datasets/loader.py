"""Whole data sets: :func:`load` finds a set's files, reads them and sorts the events by time."""

from __future__ import annotations

import dataclasses
import itertools
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Final

from recs.datasets._errors import LOG_MIN_TS_MS, DatasetError
from recs.datasets.diginetica import (
    read_diginetica_categories,
    read_diginetica_purchases,
    read_diginetica_views,
)
from recs.datasets.generic_csv import ColumnMap, parse_type_map, read_csv
from recs.datasets.globo import iter_globo
from recs.datasets.movielens import read_ml100k_items, read_ml100k_ratings
from recs.datasets.sessionrec import read_session_tsv
from schemas.events import Interaction, ItemUpsert

DATASETS: Final = ("ml100k", "diginetica", "rsc15", "globo", "csv")


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


    def user_sample(self, share: float) -> Dataset:
        """The events of a stable sample of the users: those whose CRC-32 of the user id falls
        below ``share`` of 2**32 (whole histories kept, every day of the log; the same users
        in every run). The held-out test sessions are those of the kept users.

        >>> d = Dataset("x", [Interaction(f"e{u}", "view", f"u{u}", "s", u, item_id="i")
        ...                   for u in range(8)])
        >>> [e.user_id for e in d.user_sample(0.5).events]
        ['u0', 'u1', 'u4', 'u5']
        """
        if not 0.0 < share <= 1.0:
            raise ValueError(f"user sample: share must be in (0, 1], got {share!r}")
        if share == 1.0:
            return self
        cut = share * 2**32
        return self._keeping([e for e in self.events if zlib.crc32(e.user_id.encode()) < cut])

    def last_days(self, days: float, quantile: float = 0.999) -> Dataset:
        """The events of the log's last ``days`` days, every user: recent traffic at its full
        density, at a fraction of the cost of the whole log. The log ends at the time by which
        ``quantile`` of its events happened (as ``recs eval``'s time split ends it); the few
        stray events after that are dropped, so the split of the shortened log falls where the
        whole log's does. The held-out test sessions are those still holding an event.

        >>> day = 86_400_000
        >>> d = Dataset("x", [Interaction(f"e{n}", "view", "u", "s", n * day, item_id="i")
        ...                   for n in range(5)])
        >>> [e.ts // day for e in d.last_days(2, quantile=1.0).events]
        [2, 3, 4]
        >>> [e.ts // day for e in d.last_days(2, quantile=0.75).events]
        [1, 2, 3]
        """
        if not (0 < days < float("inf")):
            raise ValueError(f"last days: days must be a finite number > 0, got {days!r}")
        if not 0.0 < quantile <= 1.0:
            raise ValueError(f"last days: quantile must be in (0, 1], got {quantile!r}")
        if not self.events:
            return self
        end = self.events[int(quantile * (len(self.events) - 1))].ts
        cut = end - int(days * 86_400_000)
        return self._keeping([e for e in self.events if cut <= e.ts <= end])

    def _keeping(self, events: list[Interaction]) -> Dataset:
        """This log reduced to ``events`` (in order): its test sessions those still holding
        an event, the test start their first event."""
        test = self.test_sessions & {e.session_id for e in events}
        first = min((e.ts for e in events if e.session_id in test), default=None)
        return dataclasses.replace(self, events=events, test_sessions=test,
                                   test_start_ts=first if test else None)


def sort_by_time(events: Iterable[Interaction]) -> list[Interaction]:
    """Events sorted by ``ts``; stable, so events with equal times keep their input order."""
    return sorted(events, key=attrgetter("ts"))


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
         delimiter: str = ",", type_map: Mapping[str, str] | str | None = None) -> Dataset:
    """Load a public data set from its folder (or main file), events sorted by time.

    ``limit`` caps the events read from each file, in file order, before sorting. Item upserts
    (MovieLens ``u.item``, Diginetica categories) are kept for the items the events mention and
    stamped with the first event time, so a replay publishes them before any event. Diginetica
    purchases are kept for the sessions whose views were loaded (the public sample has views for
    a few thousand sessions but purchases for all), and each Diginetica session gets one user:
    the first real user id among its rows, else ``s:<session>``. ``columns``, ``ts_unit``,
    ``delimiter`` and ``type_map`` (a mapping or ``raw=type,...``) apply to ``csv`` only.
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
        types = parse_type_map(type_map) if isinstance(type_map, str) else type_map
        return Dataset(dataset_name, sort_by_time(take(
            read_csv(path, cmap, ts_unit=ts_unit, delimiter=delimiter, type_map=types))))
    raise ValueError(f"dataset: expected one of {list(DATASETS)}, got {dataset_name!r}")
