"""The built-in dashboard: ``GET /dashboard`` (a page) and ``GET /dashboard/data`` (its JSON).

The page (``static/dashboard.html``, ``.js``, ``.css``; nothing from elsewhere) polls the data
every :data:`POLL_S` seconds and draws one row per concern: ingest, stream health, freshness,
models, serving; each chart with its current value and the last :data:`HISTORY_S` seconds.

The data is the server's own registry (this process: with several granian workers each has its
own) plus the other processes' ``/metrics``, scraped over HTTP from ``RECS_METRICS_TARGETS``
(``name=http://host:port/metrics``, comma-separated; default the monitor and the loader on
loopback at their settings ports). A target that does not answer is shown as down. The readings
are :func:`recs.status.read`, the same ``recs status`` judges: rates and quantiles over at least
:data:`RATE_WINDOW_S` seconds between two snapshots kept here, in a small ring buffer.

Polls drive the sampling: a poll starts a refresh (at most one at a time, at most one per
:data:`MIN_REFRESH_S`) and waits for it at most :data:`REFRESH_WAIT_S`, then answers with what it
has. A dead target costs the refresh its scrape timeout, never the request: the endpoint stays
well inside the serving latency budget its own histogram is judged against.

>>> chart = next(c for c in CHARTS if c.id == "latency_p99")
>>> chart.row, chart.unit, chart.headline
('serving', 's', 'first')
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from recs.readings import (
    SCRAPE_TIMEOUT_S,
    Readings,
    Sample,
    Scrape,
    Snapshot,
    Target,
    read,
    samples_of,
    scrape_all,
)
from serving.metrics import Metrics
from serving.pages import ASSETS, PAGE_CACHE, PAGE_CSP, Handler, asset_response
from serving.request import Request
from serving.responses import NOT_FOUND, ApiError, Response, json_response
from serving.router import Router

log = logging.getLogger("serving")

PAGE: Final = "dashboard.html"
POLL_S: Final = 2.0           # how often the page asks (dashboard.js reads it from the data)
HISTORY_S: Final = 300.0      # what the charts show
RATE_WINDOW_S: Final = 10.0   # rates and quantiles over at least this much
MIN_REFRESH_S: Final = 1.0    # polls closer than this (several tabs) share one refresh
REFRESH_WAIT_S: Final = 0.02  # a poll waits this long for its refresh, then answers
MAX_POINTS: Final = 600
SELF: Final = Target("server", "in-process")
# the server's pages and probes are left out of its serving charts (not of recs status)
OPERATIONAL: Final = frozenset({"dashboard", "dashboard_data", "metrics_text", "healthz",
                                "readyz", "openapi", "docs", "home", "storefront", "static"})

Series = Mapping[str, float | None]


@dataclass(frozen=True, slots=True)
class Chart:
    row: str
    id: str
    title: str
    unit: str  # "s", "/s", "records", "share", "" (dashboard.js formats by it)
    series: Callable[[Readings], Series]
    headline: Literal["sum", "max", "first"] = "first"  # the current value shown big
    empty: str = "no data"


def _api(values: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if k not in OPERATIONAL}


def _latency(r: Readings, q: str) -> dict[str, float | None]:
    return {"all": r.serving_s.get(q),
            **{e: v[q] for e, v in r.latency_s.items() if e not in OPERATIONAL}}


ROWS: Final = (("ingest", "Ingest"), ("stream", "Stream health"), ("freshness", "Freshness"),
               ("models", "Models"), ("serving", "Serving"))
CHARTS: Final[tuple[Chart, ...]] = (
    Chart("ingest", "topic_rates", "records in, by topic", "/s", lambda r: r.topic_rates, "max"),
    Chart("ingest", "group_rates", "records committed, by group", "/s",
          lambda r: r.group_rates, "max"),
    Chart("ingest", "lag_records", "consumer lag", "records", lambda r: r.lag_records, "max"),
    Chart("ingest", "lag_seconds", "consumer lag (oldest record)", "s",
          lambda r: r.lag_seconds, "max"),
    Chart("stream", "job_rates", "job events in/out", "/s", lambda r: r.job_rates, "max"),
    Chart("stream", "checkpoint_age", "last checkpoint age", "s",
          lambda r: {"age": r.checkpoint_age_s}),
    Chart("stream", "dlq", "dead letters, by reason", "/s", lambda r: r.dlq_per_s, "sum"),
    Chart("stream", "watermark_lag", "watermark lag (worst operator)", "s",
          lambda r: {"lag": r.watermark_lag_s}),
    Chart("freshness", "freshness", "event → Redis (loader) p50/p99", "s",
          lambda r: r.freshness_s, "max"),
    Chart("freshness", "redis_age", "Redis data age, by writer", "s",
          lambda r: r.redis_data_age_s, "max"),
    Chart("freshness", "served_age", "age of data served p50/p99", "s",
          lambda r: r.served_age_s, "max"),
    Chart("models", "model_age", "model age", "s", lambda r: r.model_age_s, "max",
          "no model yet"),
    Chart("models", "ranker_auc", "ranker AUC (prequential)", "",
          lambda r: {"auc": r.ranker_auc}, empty="no model yet"),
    Chart("models", "model_rates", "events learned, by model", "/s",
          lambda r: r.model_events_per_s, "max", "no model yet"),
    Chart("models", "model_sampled", "left out by sampling, by model", "share",
          lambda r: r.model_sampled_share, "max", "no sampling"),
    Chart("models", "model_lag", "forwarded, not learned yet, by model", "records",
          lambda r: r.model_lag_events, "max", "no model yet"),
    Chart("serving", "requests", "requests, by endpoint", "/s",
          lambda r: _api(r.requests_per_s), "sum"),
    Chart("serving", "latency_p50", "latency p50", "s", lambda r: _latency(r, "p50")),
    Chart("serving", "latency_p99", "latency p99", "s", lambda r: _latency(r, "p99")),
    Chart("serving", "degraded", "degraded answers, cache hits", "share",
          lambda r: {"degraded": r.degraded_share, "cache hits": r.cache_hit_ratio}),
    Chart("serving", "sources", "source mix of items served (top)", "share",
          lambda r: r.source_share, "max"),
    Chart("serving", "fallbacks", "fallback answers, by fallback", "/s",
          lambda r: r.fallback_per_s, "sum"),
)


def _round(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else float(f"{v:.4g}")


def _headline(values: Sequence[float | None], how: str) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    return sum(known) if how == "sum" else max(known) if how == "max" else values[0]


class HasMetrics(Protocol):
    metrics: Metrics


class Dashboard:
    """The ring buffers and the two handlers. Clocks are injected: ``clock`` (monotonic
    seconds) for rates, ``wall_ms`` for the points' times."""

    def __init__(self, metrics: Metrics, targets: Sequence[Target], *,
                 timeout: float = SCRAPE_TIMEOUT_S, clock: Callable[[], float] = time.monotonic,
                 wall_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.metrics = metrics
        self.targets = tuple(targets)
        self.timeout = timeout
        self.clock = clock
        self.wall_ms = wall_ms
        self.snapshots: deque[Snapshot] = deque()
        self.points: deque[tuple[int, dict[str, Series]]] = deque(maxlen=MAX_POINTS)
        self.window_s = 0.0
        self.polls = 0
        self._task: asyncio.Task[None] | None = None
        self._started = -math.inf

    # ---- sampling -------------------------------------------------------------------------
    def take(self, scraped: Snapshot, own: tuple[Sample, ...] | None = None) -> None:
        """Add one snapshot (the targets' scrape plus this process' registry, ``own``, sampled
        when the scrape began): a point of every chart, from the readings between it and the
        oldest snapshot kept."""
        mine = samples_of(self.metrics.registry) if own is None else own
        snap = Snapshot(scraped.at, (Scrape(SELF, True, mine), *scraped.scrapes))
        self.snapshots.append(snap)
        while len(self.snapshots) > 2 and snap.at - self.snapshots[1].at >= RATE_WINDOW_S:
            self.snapshots.popleft()
        base = self.snapshots[0]
        readings = read(base, snap)
        now_ms = self.wall_ms()
        self.points.append((now_ms, {c.id: {k: _round(v) for k, v in c.series(readings).items()}
                                     for c in CHARTS}))
        while self.points and self.points[0][0] < now_ms - HISTORY_S * 1000:
            self.points.popleft()
        self.window_s = snap.at - base.at
        self.polls += 1

    async def refresh(self) -> None:
        try:
            # on the loop: the registry's collectors are not thread-safe (Coverage prunes a dict)
            own = samples_of(self.metrics.registry)
            scraped = await asyncio.to_thread(scrape_all, self.targets, self.timeout, self.clock)
            self.take(scraped, own)
        except Exception:  # a bug here must not stop the next polls
            log.exception("serving: dashboard refresh failed")

    def document(self) -> dict[str, object]:
        last = self.snapshots[-1] if self.snapshots else Snapshot(0.0, ())
        rows = []
        for row_id, title in ROWS:
            charts = []
            for chart in (c for c in CHARTS if c.row == row_id):
                names = list(dict.fromkeys(k for _, p in self.points for k in p[chart.id]))
                latest = self.points[-1][1][chart.id] if self.points else {}
                value = _headline([latest.get(n) for n in names], chart.headline)
                series = [{"name": n, "value": latest.get(n),
                           "points": [[t, p[chart.id].get(n)] for t, p in self.points]}
                          for n in names]
                charts.append({"id": chart.id, "title": chart.title, "unit": chart.unit,
                               "value": value, "note": chart.empty if value is None else None,
                               "series": series})
            rows.append({"id": row_id, "title": title, "charts": charts})
        return {
            "now_ms": self.wall_ms(), "poll_ms": int(POLL_S * 1000),
            "history_s": HISTORY_S, "window_s": round(self.window_s, 3), "polls": self.polls,
            "targets": [{"name": s.target.name, "url": s.target.url, "up": s.up,
                         "error": s.error, "scrape_ms": round(s.seconds * 1000, 1)}
                        for s in last.scrapes],
            "rows": rows,
        }

    # ---- the handlers (their names are the endpoint labels of the metrics) ----------------
    async def dashboard(self, req: Request) -> Response:
        asset = ASSETS.get(PAGE)
        if asset is None:
            raise ApiError(404, NOT_FOUND, f"no static file {PAGE!r}", name=PAGE)
        return asset_response(asset, req, PAGE_CACHE, ((b"content-security-policy", PAGE_CSP),))

    async def dashboard_data(self, req: Request) -> Response:
        if (self._task is None or self._task.done()) and \
                self.clock() - self._started >= MIN_REFRESH_S:
            self._started = self.clock()
            self._task = asyncio.create_task(self.refresh())
        if self._task is not None and not self._task.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._task), REFRESH_WAIT_S)
        return json_response(self.document(), headers=((b"cache-control", b"no-store"),))


def add_dashboard_routes(router: Router[Handler], source: HasMetrics,
                         targets: Sequence[Target]) -> Dashboard:
    """``GET /dashboard`` and ``GET /dashboard/data`` on ``router``, reading ``source.metrics``
    (the app's handlers) and ``targets`` (:func:`recs.readings.targets_of` the settings)."""
    dash = Dashboard(source.metrics, targets)
    router.add("GET", "/dashboard", dash.dashboard)
    router.add("GET", "/dashboard/data", dash.dashboard_data)
    return dash
