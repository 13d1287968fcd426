"""The blend learner's Prometheus metrics (``GET /metrics`` of ``recs blend-learner`` on
``RECS_BLEND_METRICS_PORT``, 0 = off; the catalogue is docs/observability.md).

Nothing is counted twice: a scrape renders a :class:`LearnerReading` that the learner's shell
(:mod:`stream.blend_learner_run`) builds from its own state, the counts it logs
(:class:`stream.blend_learner.Counts`), the model it publishes, when it last published and
its consumer's lag per partition (taken at most once a second in its loop: the consumer is not
thread-safe, the scrape runs on the exporter's thread).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from operators.learned_blend import BlendModel
from stream.blend_learner import Counts
from stream.loader import serve_registry

PREFIX: Final = "recs_blend_learner_"
# Counts field -> (counter name without prefix and _total, help)
COUNTERS: Final = (
    ("seen", "events_polled", "events polled from the clickstream topic"),
    ("malformed", "events_malformed", "events the schema rejects (skipped; the job "
     "dead-letters them)"),
    ("interest", "events_interest", "events that label the blend (interest events)"),
    ("sampled", "events_sampled", "interest events in the sample (RECS_BLEND_SAMPLE)"),
    ("no_session", "events_no_session", "sampled events without a session before them "
     "(not learned)"),
    ("leaked", "events_leaked", "sampled events a neighbour or trending list read for them "
     "already counts (the race)"),
    ("skipped_leaked", "events_skipped_leaked", "leaked events not learned (the default; "
     "--learn-leaked learns them)"),
    ("unread", "events_unread", "sampled events not learned because Redis did not answer"),
    ("stepped", "examples_stepped", "examples the model compared both orders on"),
    ("publishes", "publishes", "publications of recs:v1:model:blend"),
)


@dataclass(frozen=True, slots=True)
class LearnerReading:
    """What one scrape renders."""

    counts: Counts
    model: BlendModel
    warm: bool
    redis_up: bool
    published_at_s: float | None        # wall-clock time of this process's last publication
    lags: Mapping[tuple[str, int], int]  # (topic, partition) -> records behind its end


class LearnerCollector(Collector):
    """Renders ``reading()`` at each scrape."""

    def __init__(self, reading: Callable[[], LearnerReading]) -> None:
        self._reading = reading

    def collect(self) -> Iterable[Metric]:
        return render(self._reading())


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value)


def render(r: LearnerReading) -> list[Metric]:
    """The metric families of one reading."""
    c, m = r.counts, r.model
    out: list[Metric] = [CounterMetricFamily(PREFIX + name, doc, value=getattr(c, field))
                         for field, name, doc in COUNTERS]
    out += [
        _gauge("labelled", "labelled events the model learned from: the version its next "
               "publication carries (resumed from the published value at start)", m.labelled),
        _gauge("compared", "events the model compared both orders on, since its prior",
               m.events),
        _gauge("warm", "1 when the learned order is served (enough labelled events, learned "
               "gain at least the prior's)", float(r.warm)),
        _gauge("redis_up", "1 when the learner's last Redis call succeeded", float(r.redis_up)),
    ]
    gain = GaugeMetricFamily(PREFIX + "gain", "moving prequential HR@k + MRR@k of each order "
                             "(learned: the model's, prior: the hand-tuned blend's)",
                             labels=["order"])
    gain.add_metric(["learned"], m.learned_gain)
    gain.add_metric(["prior"], m.prior_gain)
    out.append(gain)
    if c.last_publish_version is not None:
        out.append(_gauge("published_version", "version (labelled events) of this process's "
                          "last publication", c.last_publish_version))
    if c.last_publish_as_of is not None:
        out.append(_gauge("published_event_time_seconds", "newest event time the last "
                          "publication reflects", c.last_publish_as_of / 1000.0))
    if r.published_at_s is not None:
        out.append(_gauge("last_publish_timestamp_seconds", "wall-clock time of this "
                          "process's last publication", r.published_at_s))
    lag = GaugeMetricFamily(PREFIX + "lag_records", "records of the partition not yet polled "
                            "(its high watermark - the consumer's position)",
                            labels=["topic", "partition"])
    for (topic, partition), n in sorted(r.lags.items()):
        lag.add_metric([topic, str(partition)], n)
    out.append(lag)
    return out


def serve_metrics(reading: Callable[[], LearnerReading], host: str, port: int) -> bool:
    """Serve the learner's ``/metrics`` on ``host:port``; False when off (port 0) or the port
    is taken (logged: the learner goes on without them)."""
    if port == 0:
        return False
    registry = CollectorRegistry(auto_describe=True)
    registry.register(LearnerCollector(reading))
    return serve_registry(host, port, registry, "blend learner", "blend_metrics_port")
