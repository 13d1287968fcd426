"""Metric readings: scrape Prometheus text endpoints and turn two snapshots into rates, deltas
and quantiles. Shared by ``recs status`` (which judges them against the alert thresholds) and
the server's ``/dashboard`` (which charts them).

Targets: ``RECS_METRICS_TARGETS`` (``name=http://host:port/metrics``, comma-separated), default
the monitor and the loader on loopback at their settings ports.

>>> parse_targets("monitor=http://127.0.0.1:9108/metrics")
[Target(name='monitor', url='http://127.0.0.1:9108/metrics')]
>>> quantile(0.5, [(0.1, 0.0), (1.0, 10.0), (float("inf"), 10.0)])
0.55
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Final

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from recs.settings import Settings

TARGETS_ENV: Final = "RECS_METRICS_TARGETS"
LOOPBACK: Final = "127.0.0.1"
SCRAPE_TIMEOUT_S: Final = 0.5
MAX_SCRAPE_BYTES: Final = 8 << 20


# ---- targets and scrapes ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    bearer: str | None = field(default=None, repr=False)  # an API key sent with the scrape


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Scrape:
    target: Target
    up: bool
    samples: tuple[Sample, ...] = ()
    error: str | None = None
    seconds: float = 0.0  # how long the scrape took


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every target scraped at (about) one moment, ``at`` on a monotonic clock in seconds."""

    at: float
    scrapes: tuple[Scrape, ...]

    def up(self) -> dict[str, Scrape]:
        return {s.target.name: s for s in self.scrapes if s.up}


def parse_targets(spec: str) -> list[Target]:
    """``name=http://host:port/metrics`` pairs, comma-separated; a ``ValueError`` naming the
    entry that is not one."""
    targets: list[Target] = []
    for entry in (e.strip() for e in spec.split(",")):
        if not entry:
            continue
        name, sep, url = (p.strip() for p in entry.partition("="))
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ValueError(f"metrics targets: expected name=http://host:port/metrics, "
                             f"got {entry!r}")
        if any(t.name == name for t in targets):
            raise ValueError(f"metrics targets: name {name!r} is given twice")
        targets.append(Target(name, url))
    return targets


def targets_of(settings: Settings) -> list[Target]:
    """``settings.metrics_targets`` (``RECS_METRICS_TARGETS``), else the monitor and the loader
    on loopback at their settings ports (a port of 0 is not exported)."""
    if settings.metrics_targets:
        return parse_targets(settings.metrics_targets)
    ports = (("monitor", settings.monitor_port), ("loader", settings.loader_metrics_port))
    return [Target(name, f"http://{LOOPBACK}:{port}/metrics") for name, port in ports if port]


def _samples(families: Iterable[Metric]) -> tuple[Sample, ...]:
    return tuple(Sample(s.name, s.labels, float(s.value)) for family in families
                 for s in family.samples if not s.name.endswith("_created"))


def parse_text(text: str) -> tuple[Sample, ...]:
    """The samples of a Prometheus text exposition (``_created`` series left out)."""
    return _samples(text_string_to_metric_families(text))


def samples_of(registry: Collector) -> tuple[Sample, ...]:
    """The samples of an in-process registry, as a scrape of it would give them."""
    return _samples(registry.collect())


def scrape(target: Target, timeout: float = SCRAPE_TIMEOUT_S) -> Scrape:
    """One scrape; a target that does not answer, answers an error or garbage is down."""
    began = time.monotonic()
    try:
        headers = {"Authorization": f"Bearer {target.bearer}"} if target.bearer else {}
        with urllib.request.urlopen(urllib.request.Request(target.url, headers=headers),
                                    timeout=timeout) as resp:
            body = resp.read(MAX_SCRAPE_BYTES + 1)
        if len(body) > MAX_SCRAPE_BYTES:
            raise ValueError(f"more than {MAX_SCRAPE_BYTES} bytes")
        samples = parse_text(body.decode("utf-8", errors="replace"))
    except (OSError, ValueError) as exc:  # refused, timed out, HTTP errors, unparseable text
        why = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else \
            str(exc.reason) if isinstance(exc, urllib.error.URLError) else \
            f"{type(exc).__name__}: {exc}"
        return Scrape(target, False, error=why[:200], seconds=time.monotonic() - began)
    return Scrape(target, True, samples, seconds=time.monotonic() - began)


def scrape_all(targets: Sequence[Target], timeout: float = SCRAPE_TIMEOUT_S,
               clock: Callable[[], float] = time.monotonic) -> Snapshot:
    """All targets at once (one thread each), so a dead one costs one timeout, not several."""
    at = clock()
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(targets)))) as pool:
        return Snapshot(at, tuple(pool.map(lambda t: scrape(t, timeout), targets)))


# ---- readings: what the samples say -----------------------------------------------------------

Quantiles = dict[str, float | None]  # "p50", "p99"


def grouped(samples: Iterable[Sample], name: str, by: tuple[str, ...] = (),
            agg: Callable[[list[float]], float] = sum) -> dict[tuple[str, ...], float]:
    """``agg`` of the samples called ``name``, by the values of the labels ``by``."""
    acc: dict[tuple[str, ...], list[float]] = {}
    for s in samples:
        if s.name == name:
            acc.setdefault(tuple(s.labels.get(k, "") for k in by), []).append(s.value)
    return {k: agg(v) for k, v in acc.items()}


def increases(before: Snapshot, after: Snapshot, name: str, by: tuple[str, ...] = (),
              agg: Callable[[list[float]], float] = sum,
              counter: bool = True) -> dict[tuple[str, ...], float]:
    """How much each group changed between the snapshots, summed over the targets up in both.
    For a counter a drop is a restart (counted from zero). Series seen once only are left out,
    as Prometheus' ``increase`` and ``delta`` do; nothing without a window."""
    out: dict[tuple[str, ...], float] = {}
    old = before.up() if after.at > before.at else {}
    for target, new in after.up().items():
        was = grouped(old[target].samples, name, by, agg) if target in old else {}
        for key, value in grouped(new.samples, name, by, agg).items():
            if key in was:
                grew = value - was[key]
                out[key] = out.get(key, 0.0) + (value if counter and grew < 0 else grew)
    return out


def rates(before: Snapshot, after: Snapshot, name: str,
          by: tuple[str, ...] = ()) -> dict[str, float]:
    """Per-second increase by label values (joined with ``/``); empty without a window."""
    dt = after.at - before.at
    if dt <= 0:
        return {}
    return {"/".join(k): v / dt for k, v in increases(before, after, name, by).items()}


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """Prometheus' ``histogram_quantile`` over cumulative ``(le, count)`` buckets."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for le, count in ordered:
        if count >= rank:
            if le == float("inf"):
                return lower
            return le if count == below else lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def quantiles(before: Snapshot, after: Snapshot, base: str,
              by: tuple[str, ...] = ()) -> dict[str, Quantiles]:
    """p50 and p99 of a histogram over the window, by label values (joined with ``/``); groups
    without observations in the window are left out."""
    if after.at - before.at <= 0:
        return {}
    per: dict[str, list[tuple[float, float]]] = {}
    for (*key, le), n in increases(before, after, base + "_bucket", (*by, "le")).items():
        per.setdefault("/".join(key), []).append((float(le), n))
    return {k: {"p50": quantile(0.5, b), "p99": quantile(0.99, b)} for k, b in per.items()
            if quantile(0.5, b) is not None}


@dataclass(frozen=True, slots=True)
class Readings:
    """What the dashboard charts and ``recs status`` judges: rates, deltas and quantiles over the
    window between two snapshots, gauges from the later one. Keys are label values joined with
    ``/`` (``group/topic``)."""

    lag_records: dict[str, float]        # by group/topic, summed over partitions
    lag_growth: dict[str, float]         # change of lag_records over the window
    lag_seconds: dict[str, float]        # by group/topic, the worst partition
    group_members: dict[str, float]      # consumers of a group that need not run, by group
    topic_rates: dict[str, float]        # records/s appended, by topic (end offsets)
    group_rates: dict[str, float]        # records/s committed, by group
    job_rates: dict[str, float]          # "in"/"out" of the job's operators, events/s
    dlq_per_s: dict[str, float]          # by reason
    checkpoints_failed: float | None     # increase over the window
    checkpoint_age_s: float | None
    watermark_lag_s: float | None        # the worst operator
    freshness_s: Quantiles               # event time -> Redis (loader), all kinds
    freshness_p99_s: dict[str, float | None]  # by kind
    redis_data_age_s: dict[str, float]   # by writer
    served_age_s: Quantiles              # age of the data behind answers (server)
    model_age_s: dict[str, float]        # by model
    ranker_auc: float | None
    model_events_per_s: dict[str, float]  # events learned, by model (the operator's input)
    model_sampled_share: dict[str, float]  # left out by the model's feed, by model
    model_lag_events: dict[str, float]     # forwarded by the feed, not learned yet, by model
    requests_per_s: dict[str, float]     # by endpoint
    latency_s: dict[str, Quantiles]      # by endpoint
    serving_s: Quantiles                 # every endpoint together
    degraded_per_s: dict[str, float]     # by endpoint (the placement)
    degraded_share: float | None         # degraded answers / requests
    fallback_per_s: dict[str, float]     # by fallback
    cache_hit_ratio: float | None
    source_share: dict[str, float]       # share of the items served, by source
    redis_down: float | None             # servers whose last Redis read failed


def read(before: Snapshot, after: Snapshot) -> Readings:
    now = [s for scrape in after.up().values() for s in scrape.samples]
    dt = after.at - before.at

    def rate(name: str, by: tuple[str, ...] = ()) -> dict[str, float]:
        return rates(before, after, name, by)

    def gauge(name: str, by: tuple[str, ...] = (),
              agg: Callable[[list[float]], float] = max) -> dict[str, float]:
        return {"/".join(k): v for k, v in grouped(now, name, by, agg).items()}

    def hist(name: str, by: tuple[str, ...] = ()) -> dict[str, Quantiles]:
        return quantiles(before, after, name, by)

    lag = ("group", "topic")
    topic_rates: dict[str, float] = {}
    for (topic, _), grew in increases(before, after, "recs_kafka_end_offset",
                                      ("topic", "partition"), agg=max, counter=False).items():
        topic_rates[topic] = topic_rates.get(topic, 0.0) + max(grew, 0.0) / dt  # dt > 0: increases
    requests = rate("recs_http_requests_total", ("endpoint",))
    degraded = rate("recs_answers_degraded_total", ("endpoint",))
    hits = sum(rate("recs_cache_hits_total").values())
    lookups = hits + sum(rate("recs_cache_misses_total").values())
    served = rate("recs_served_items_total", ("source",))
    failed = increases(before, after, "recs_checkpoints_failed_total")
    redis_up = [s.value for s in now if s.name == "recs_redis_up"]
    learned, sampled, behind = _models(rate("recs_stream_events_total", ("operator", "direction")),
                                       gauge("recs_stream_events_total", ("operator", "direction"),
                                             sum))
    return Readings(
        lag_records=gauge("recs_kafka_consumer_lag_records", lag, sum),
        lag_growth={"/".join(k): v for k, v in increases(
            before, after, "recs_kafka_consumer_lag_records", lag, counter=False).items()},
        lag_seconds=gauge("recs_kafka_consumer_lag_seconds", lag),
        group_members=gauge("recs_kafka_group_members", ("group",)),
        topic_rates=topic_rates,
        group_rates=rate("recs_kafka_committed_offset", ("group",)),
        job_rates=rate("recs_stream_events_total", ("direction",)),
        dlq_per_s=rate("recs_dlq_events_total", ("reason",)),
        checkpoints_failed=failed.get(()),
        checkpoint_age_s=gauge("recs_checkpoint_age_seconds").get(""),
        watermark_lag_s=gauge("recs_stream_watermark_lag_seconds").get(""),
        freshness_s=hist("recs_freshness_seconds").get("", {}),
        freshness_p99_s={k: q["p99"] for k, q in hist("recs_freshness_seconds", ("kind",)).items()},
        redis_data_age_s=gauge("recs_redis_data_age_seconds", ("writer",)),
        served_age_s=hist("recs_served_data_age_seconds").get("", {}),
        model_age_s=gauge("recs_model_age_seconds", ("model",)),
        ranker_auc=gauge("recs_ranker_auc").get(""),
        model_events_per_s=learned,
        model_sampled_share=sampled,
        model_lag_events=behind,
        requests_per_s=requests,
        latency_s=hist("recs_http_request_duration_seconds", ("endpoint",)),
        serving_s=hist("recs_http_request_duration_seconds").get("", {}),
        degraded_per_s=degraded,
        degraded_share=sum(degraded.values()) / sum(requests.values())
        if sum(requests.values()) > 0 else None,
        fallback_per_s=rate("recs_answer_fallbacks_total", ("fallback",)),
        cache_hit_ratio=hits / lookups if lookups > 0 else
        gauge("recs_cache_hit_ratio", (), lambda v: sum(v) / len(v)).get(""),
        source_share={k: v / sum(served.values()) for k, v in served.items() if v > 0},
        redis_down=float(sum(1 for v in redis_up if v == 0)) if redis_up else None,
    )


# ---- checks: the alert rules, judged now ------------------------------------------------------


# the JVM runtime's model feeds (stream/jvm/ModelFeed.java) and the operator each one feeds
MODEL_FEEDS: Final = (("model", "model-feed", "model"), ("ranker", "ranker-feed", "labels"))


def _models(per_s: Mapping[str, float], totals: Mapping[str, float]
            ) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """From the job's operator counters (``operator/direction``): events learned per second,
    the share the feed left out over the window, and the events forwarded but not learned yet,
    by model. Models without a feed (the python runtime) have a rate only.

    >>> _models({"model-feed/in": 100.0, "model-feed/out": 25.0, "model/in": 20.0},
    ...         {"model-feed/out": 500.0, "model/in": 450.0, "labels/in": 3.0})
    ({'model': 20.0}, {'model': 0.75}, {'model': 50.0})
    """
    learned: dict[str, float] = {}
    sampled: dict[str, float] = {}
    behind: dict[str, float] = {}
    for model, feed, operator in MODEL_FEEDS:
        if f"{operator}/in" in per_s:
            learned[model] = per_s[f"{operator}/in"]
        offered = per_s.get(f"{feed}/in", 0.0)
        if offered > 0:
            sampled[model] = max(0.0, 1.0 - per_s.get(f"{feed}/out", 0.0) / offered)
        if f"{feed}/out" in totals and f"{operator}/in" in totals:
            behind[model] = max(0.0, totals[f"{feed}/out"] - totals[f"{operator}/in"])
    return learned, sampled, behind
