"""The server's Prometheus metrics (``GET /metrics``), one registry per application.

Names follow Prometheus conventions: units in names, ``_total`` counters, histograms for
latencies. With several granian workers each process exports its own series (scrape each worker
or run one worker per port); the numbers are per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from serving.models import ModelGauges

LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.010, 0.015, 0.025,
                          0.05, 0.1, 0.25, 0.5, 1.0)
AGE_BUCKETS: Final = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0,
                      86_400.0)
CONTENT_TYPE: Final = b"text/plain; version=0.0.4; charset=utf-8"


class _CacheCollector(Collector):
    def __init__(self, stats: Callable[[], tuple[int, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        hits, misses = self._stats()
        yield CounterMetricFamily("recs_cache_hits", "in-process cache hits of Redis keys",
                                  value=hits)
        yield CounterMetricFamily("recs_cache_misses", "in-process cache misses of Redis keys",
                                  value=misses)
        total = hits + misses
        yield GaugeMetricFamily("recs_cache_hit_ratio", "cache hits / lookups since start",
                                value=hits / total if total else 0.0)


class _AnswerCollector(Collector):
    def __init__(self, stats: Callable[[], tuple[int, int, int]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[CounterMetricFamily]:
        hits, misses, stale = self._stats()
        yield CounterMetricFamily("recs_answer_cache_hits",
                                  "answers served from the answer cache (or shared with the "
                                  "same answer being computed)", value=hits)
        yield CounterMetricFamily("recs_answer_cache_misses",
                                  "cacheable answers computed (none cached, or stale)",
                                  value=misses)
        yield CounterMetricFamily("recs_answer_cache_stale",
                                  "cached answers found but invalid (their data changed)",
                                  value=stale)


class _ModelCollector(Collector):
    """The loaded models (:class:`serving.models.ModelRefresher`): version and age per model,
    the ranker's prequential quality, the vectors in the index. A model not loaded has no
    series. The age is wall-clock now minus the event time the model reflects (its envelope's
    ``as_of``): on a replayed or backfilled log it reads the age of the log, not a delay."""

    def __init__(self, gauges: Callable[[], ModelGauges], now_ms: Callable[[], int]) -> None:
        self._gauges = gauges
        self._now_ms = now_ms

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = self._gauges()
        version = GaugeMetricFamily("recs_model_version",
                                    "version of the loaded model (mf: model version, ranker: "
                                    "examples learned)", labels=["model"])
        age = GaugeMetricFamily("recs_model_age_seconds",
                                "wall-clock now - event time of the loaded model",
                                labels=["model"])
        now = self._now_ms()
        for model, v in sorted(g.versions.items()):
            version.add_metric([model], v)
            as_of = g.as_of_ms.get(model)
            if as_of is not None:
                age.add_metric([model], (now - as_of) / 1000.0)
        yield version
        yield age
        if g.ranker_auc is not None:
            yield GaugeMetricFamily("recs_ranker_auc", "prequential AUC of the loaded ranker",
                                    value=g.ranker_auc)
        if g.ranker_log_loss is not None:
            yield GaugeMetricFamily("recs_ranker_log_loss",
                                    "prequential log-loss of the loaded ranker",
                                    value=g.ranker_log_loss)
        yield GaugeMetricFamily("recs_serving_vectors", "item vectors in the serving index",
                                value=g.vectors)


COVERAGE_WINDOW_S: Final = 3600.0
COVERAGE_MAX_ITEMS: Final = 1_000_000


class Coverage(Collector):
    """Distinct items served in the last hour (``recs_served_distinct_items``); divided by the
    catalogue size the monitor exports it is the catalogue coverage of what was served."""

    def __init__(self) -> None:
        self.last_served: dict[str, float] = {}

    def served(self, item_ids: Iterable[str]) -> None:
        now = time.monotonic()
        seen = self.last_served
        for item_id in item_ids:
            seen[item_id] = now
        if len(seen) > COVERAGE_MAX_ITEMS:
            self._prune(now)

    def _prune(self, now: float) -> None:
        cutoff = now - COVERAGE_WINDOW_S
        self.last_served = {i: t for i, t in self.last_served.items() if t >= cutoff}

    def collect(self) -> Iterable[GaugeMetricFamily]:
        self._prune(time.monotonic())
        yield GaugeMetricFamily("recs_served_distinct_items",
                                "distinct items served in the last hour",
                                value=len(self.last_served))


class Metrics:
    def __init__(self, cache_stats: Callable[[], tuple[int, int]], *,
                 models: Callable[[], ModelGauges] | None = None,
                 now_ms: Callable[[], int] | None = None,
                 answers: Callable[[], tuple[int, int, int]] | None = None,
                 core: str = "python") -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[Any, ...], Any] = {}
        self.requests = Counter("recs_http_requests", "HTTP requests answered",
                                ["endpoint", "status"], registry=r)
        self.latency = Histogram("recs_http_request_duration_seconds",
                                 "time to answer a request, by endpoint", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.degraded = Counter("recs_answers_degraded", "answers flagged degraded",
                                ["endpoint"], registry=r)
        self.fallbacks = Counter("recs_answer_fallbacks", "answers from a fallback source",
                                 ["endpoint", "fallback"], registry=r)
        self.served = Counter("recs_served_items", "items served, by candidate source",
                              ["source"], registry=r)
        self.list_age = Histogram("recs_served_data_age_seconds",
                                  "age of the oldest data behind an answer (now - as_of)",
                                  ["endpoint"], buckets=AGE_BUCKETS, registry=r)
        self.variants = Counter("recs_experiment_responses", "responses per A/B variant",
                                ["variant"], registry=r)
        self.events = Counter("recs_events_published", "events accepted by POST /v1/events",
                              registry=r)
        self.rejected = Counter("recs_events_rejected", "events rejected by POST /v1/events",
                                registry=r)
        self.impressions = Counter("recs_impressions_logged", "impressions sent to Kafka",
                                   registry=r)
        self.impression_errors = Counter("recs_impressions_failed",
                                         "impressions that could not be sent", registry=r)
        self.explorations = Counter("recs_explorations", "answers with an exploration slot",
                                    registry=r)
        self.up = Gauge("recs_redis_up", "1 when the last Redis read succeeded", registry=r)
        self.up.set(1)
        Gauge("recs_serving_core", "1 for the implementation of the pure steps this process "
              "runs (serving/native.py): native or python", ["core"], registry=r
              ).labels(core).set(1)
        r.register(_CacheCollector(cache_stats))
        self.coverage = Coverage()
        r.register(self.coverage)
        if models is not None:
            r.register(_ModelCollector(models, now_ms or _wall_ms))
        if answers is not None:
            r.register(_AnswerCollector(answers))

    def child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, memoised: prometheus_client takes a lock and builds a
        key on every ``labels`` call, a measurable share of a cached answer's cost."""
        key = (id(metric), *values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000
