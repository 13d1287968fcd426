"""Loaders for public interaction logs, turning each format into :class:`Interaction` events.

Every reader is a generator over one file, yielding events in the file's order with a
deterministic ``event_id`` (``<dataset>:<line>`` or ``<dataset>:<part>:<line>``), so replaying a
log twice publishes the same ids and the engine's idempotent writers can drop the repeats.
:func:`load` reads a whole data set (folder or file), sorts it by event time (stable, so ties keep
their file order) and returns a :class:`Dataset`.

Formats (the column layouts are those of the original public files), one module each:

==============  ===========================================================================
``ml100k``      MovieLens 100K ``u.data`` (``user \\t item \\t rating \\t unix_s``) -> ``rating``
                events, session = user + UTC day; ``u.item`` (``|``-separated, Latin-1) ->
                item upserts with title and category (first genre flag set)
                (:mod:`recs.datasets.movielens`)
``diginetica``  CIKM Cup 2016 views (``session_id;user_id;item_id;timeframe;eventdate``) ->
                ``view``; purchases (``sessionId;userId;timeframe;eventdate;ordernumber;itemId``)
                -> ``purchase``; ``product-categories.csv`` -> item categories
                (:mod:`recs.datasets.diginetica`)
``rsc15``       session-rec TSV (``SessionId \\t ItemId \\t Time``, unix seconds) -> ``view``;
                a folder holds ``*_train_full.txt`` and ``*_test.txt`` (the last day)
                (:mod:`recs.datasets.sessionrec`)
``globo``       Globo.com news clicks CSV (gzip or plain) -> ``click`` with device/os/country/
                region/referrer context (:mod:`recs.datasets.globo`)
``csv``         any delimited file with a header and a :class:`ColumnMap`
                (:mod:`recs.datasets.generic_csv`)
==============  ===========================================================================

:mod:`recs.datasets.loader` holds :func:`load` and :class:`Dataset`; the private ``_errors``,
``_files`` and ``_days`` hold what the readers share (the error and its checks, opening files,
UTC days). Every public name is importable from ``recs.datasets``.

Every error is a :class:`DatasetError` naming the file, the line and the value received:

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> _ = (folder / "u.data").write_text("1\\t10\\t5\\t881250949\\n2\\t10\\tfive\\t881250950\\n")
>>> try:
...     load("ml100k", folder)
... except DatasetError as exc:
...     print(exc.line, exc.value, "|", str(exc).replace(str(folder), "<dir>"))
2 five | <dir>/u.data:2: column rating: expected a number, got 'five'
"""

from __future__ import annotations

from recs.datasets._days import DAY_MS
from recs.datasets._errors import LOG_MAX_TS_MS, LOG_MIN_TS_MS, DatasetError
from recs.datasets.diginetica import (
    DIGINETICA_CATEGORIES_HEADER,
    DIGINETICA_PURCHASES_HEADER,
    DIGINETICA_VIEWS_HEADER,
    read_diginetica_categories,
    read_diginetica_purchases,
    read_diginetica_views,
)
from recs.datasets.generic_csv import CONTEXT_FIELDS, TS_UNITS, ColumnMap, parse_type_map, read_csv
from recs.datasets.globo import GLOBO_HEADER, globo_files, iter_globo, read_globo
from recs.datasets.loader import DATASETS, Dataset, load, sort_by_time
from recs.datasets.movielens import ML100K_GENRES, read_ml100k_items, read_ml100k_ratings
from recs.datasets.sessionrec import SESSION_TSV_HEADER, read_session_tsv

__all__ = [
    "CONTEXT_FIELDS",
    "DATASETS",
    "DAY_MS",
    "DIGINETICA_CATEGORIES_HEADER",
    "DIGINETICA_PURCHASES_HEADER",
    "DIGINETICA_VIEWS_HEADER",
    "GLOBO_HEADER",
    "LOG_MAX_TS_MS",
    "LOG_MIN_TS_MS",
    "ML100K_GENRES",
    "SESSION_TSV_HEADER",
    "TS_UNITS",
    "ColumnMap",
    "Dataset",
    "DatasetError",
    "globo_files",
    "iter_globo",
    "load",
    "parse_type_map",
    "read_csv",
    "read_diginetica_categories",
    "read_diginetica_purchases",
    "read_diginetica_views",
    "read_globo",
    "read_ml100k_items",
    "read_ml100k_ratings",
    "read_session_tsv",
    "sort_by_time",
]
