"""Shared pieces of the end-to-end stream tests: logs, publishing, draining, comparing stores
(:func:`differences` and :func:`model_differences` live in ``stream/parity.py``)."""

from __future__ import annotations

import dataclasses
import random
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from infra.procs import free_port
from infra.topics import engine_topics, ensure_topics, kafka_python_delivery
from operators.config import EngineConfig
from recs.settings import Settings, Topics
from schemas.events import Interaction, ItemUpsert
from stream.parity import diagnosis as diagnosis  # re-exported
from stream.parity import differences as differences  # re-exported
from stream.parity import model_differences as model_differences  # re-exported
from stream.reference import ReferenceRunner

T0 = 1_700_000_000_000
MINUTE = 60_000
DAY = 86_400_000


def create_engine_topics(settings: Settings, partitions: int = 4) -> None:
    ensure_topics(settings.kafka_bootstrap, engine_topics(settings.topics, partitions))


def settings_for(kafka_bootstrap: str, redis_url: str, run_dir: Path, **kw: Any) -> Settings:
    """Settings for one end-to-end run: fresh engine topics under a unique prefix (created),
    free ports for the job's REST API and every metrics endpoint, and the models learning every
    event unless ``kw`` says otherwise (``model_max_events_per_s``)."""
    ports = {"flink_rest_port": free_port(), "flink_metrics_port": free_port(),
             "loader_metrics_port": free_port(), "monitor_port": free_port()}
    settings = dataclasses.replace(Settings(), kafka_bootstrap=kafka_bootstrap,
                                   redis_url=redis_url,
                                   topics=Topics.with_prefix(f"e2e-{uuid.uuid4().hex[:8]}."),
                                   run_dir=run_dir,
                                   **{"model_max_events_per_s": 0.0, **ports, **kw})
    create_engine_topics(settings)
    return settings


@dataclass(frozen=True)
class Log:
    items: list[ItemUpsert]
    events: list[Interaction]


def generated_log(n_events: int, *, n_users: int = 1500, n_items: int = 800,
                  seed: int = 7) -> Log:
    """Sessions over a Zipf-popular catalogue with funnels and small out-of-order jitter;
    impressions (recorded in sessions' ``shown``) and device/country context (trending scopes).
    Items are first seen at distinct times, then come :func:`catalogue_changes`."""
    rng = random.Random(seed)
    # distinct first-seen times, one minute apart over the last n_items minutes (7_919 is prime)
    first = [T0 - 1_000 - (i * 7_919 % n_items) * MINUTE for i in range(n_items)]
    items = [ItemUpsert(f"i{i}", first[i], title=f"Item {i}", category=f"c{i % 12}",
                        brand=f"b{i % 30}", price=float(5 + i % 95), stock=i % 7)
             for i in range(n_items)]
    items += catalogue_changes(items)
    weights = [1.0 / (r + 1) ** 1.1 for r in range(n_items)]
    events: list[Interaction] = []
    clock: dict[str, int] = {}
    session_no: dict[str, int] = {}
    t = T0
    for n in range(n_events):
        user = f"u{rng.randrange(n_users)}"
        t += rng.randrange(1, 20)
        last = clock.get(user, 0)
        if t - last > 20 * 60_000 or rng.random() < 0.05:
            session_no[user] = session_no.get(user, 0) + 1
        clock[user] = t
        item = f"i{rng.choices(range(n_items), weights)[0]}"
        etype = rng.choices(["view", "click", "add_to_cart", "purchase", "impression"],
                            [70, 12, 8, 4, 6])[0]
        ts = t - rng.randrange(0, 1_500)  # out of order by up to 1.5 s
        sid = f"{user}-s{session_no[user]}"
        if etype == "impression":
            shown = tuple(f"i{rng.randrange(n_items)}" for _ in range(5))
            events.append(Interaction(f"e{n}", etype, user, sid, ts, item_ids=shown))
        else:
            # context trending: mixed case and padding normalise to one scope per value
            context = {"device": rng.choice(["web", "ios", "Web "]),
                       "country": rng.choice(["de", "us", "FR"])}
            events.append(Interaction(f"e{n}", etype, user, sid, ts, item_id=item,
                                      context=context))
    return Log(items, events)


def with_duplicates(log: Log, lag: int = 3) -> Log:
    """Every event delivered twice, the copy ``lag`` events after the original (a producer's
    retry); the catalogue once."""
    events = list(log.events)
    out: list[Interaction] = []
    for n, event in enumerate(events):
        out.append(event)
        if n >= lag:
            out.append(events[n - lag])
    out += events[len(events) - lag:]
    return Log(log.items, out)


def catalogue_changes(items: Sequence[ItemUpsert]) -> list[ItemUpsert]:
    """New arrivals and catalogue corrections after the initial catalogue, chosen so that every
    new-arrivals list is exact whatever order Flink interleaves items in (operators/arrivals.py):

    - ``n0``..``n5``: the newest items, never interacted with (what exploration shows);
      ``n1`` then moves from ``c1`` to ``c7``;
    - late, older upserts of ``n3`` and of the 4th and 401st newest catalogue items: they lower
      first-seen times by less than the gap to the next item, so no rank changes;
    - ``x0``: first seen 40 days ago (far outside the global top 100), then deleted.

    Categories hold fewer than ``new_top_k`` (100) items, so their lists are never trimmed.
    """
    out = [ItemUpsert(f"n{k}", T0 - 500 + 10 * k, title=f"New {k}", category=f"c{k}",
                      price=10.0 + k, stock=3) for k in range(6)]
    out.append(ItemUpsert("n1", T0 - 100, title="New 1", category="c7", price=11.0, stock=3))
    by_age = sorted(items, key=lambda u: -u.ts)
    for up in (out[3], by_age[3], by_age[400]):
        late = up.ts - (5 if up.item_id.startswith("n") else 30_000)
        out.append(dataclasses.replace(up, ts=late, title=f"{up.title} (draft)"))
    out.append(ItemUpsert("x0", T0 - 40 * DAY, title="Retired", category="c2"))
    out.append(ItemUpsert("x0", T0 - 200, title="Retired", category="c2", deleted=True))
    return out


# Each malformed record and the field its DLQ reason must name.
MALFORMED: Sequence[tuple[bytes, str]] = (
    (b'{"event_id": "m1", "type": "view"', "<document>"),                       # bad JSON
    (b'[1, 2, 3]', "<document>"),                                               # not an object
    (b'{"event_id":"m3","type":"view","session_id":"s","item_id":"i1","ts":1700000000000}',
     "user_id"),                                                                # missing field
    (b'{"event_id":"m4","type":"view","user_id":7,"session_id":"s","item_id":"i1",'
     b'"ts":1700000000000}', "user_id"),                                         # wrong type
    (b'{"event_id":"m5","type":"like","user_id":"u","session_id":"s","item_id":"i1",'
     b'"ts":1700000000000}', "type"),                                            # unknown type
    (b'{"event_id":"m6","type":"view","user_id":"u","session_id":"s","item_id":"i1",'
     b'"ts":1700000000}', "ts"),                                                 # seconds, not ms
    (b'{"event_id":"m7","type":"view","user_id":"u","session_id":"s","item_id":"i1",'
     b'"ts":32503680000000}', "ts"),                                             # year 3000
    (b'{"event_id":"m8","type":"view","user_id":"u","session_id":"s","item_id":"i1",'
     b'"ts":1700000000000,"context":{"blob":"' + b"x" * 20_000 + b'"}}', "<document>"),  # 20 KB
    (b'{"event_id":"m9","type":"impression","user_id":"u","session_id":"s",'
     b'"ts":1700000000000}', "item_ids"),                                        # no items shown
    (b'{"event_id":"m10","type":"view","user_id":"u","session_id":"s","item_id":"i1",'
     b'"ts":1700000000000,"colour":"red"}', "colour"),                           # unknown field
)


def publish(settings: Settings, log: Log, malformed: Iterable[bytes] = (),
            *, every: int = 2_000, start: int = 0, stop: int | None = None,
            rate: float | None = None) -> None:
    """Items first (when ``start`` is 0), then events ``start:stop`` keyed by user, at most
    ``rate`` a second when given; one malformed record every ``every`` events."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, linger_ms=10,
                             batch_size=256 * 1024, max_request_size=2 * 1024 * 1024,
                             **kafka_python_delivery())
    sent = []  # every send's future: a send that failed must fail the test, not thin the log
    if start == 0:
        for item in log.items:
            sent.append(producer.send(settings.topics.items, key=item.item_id.encode(),
                                      value=item.to_json()))
    bad = list(malformed)
    began = time.monotonic()
    for n, event in enumerate(log.events[start:stop]):
        if rate is not None and n % 100 == 0:
            time.sleep(max(0.0, began + n / rate - time.monotonic()))
        sent.append(producer.send(settings.topics.interactions, key=event.user_id.encode(),
                                  value=event.to_json()))
        if bad and n % every == every - 1:
            sent.append(producer.send(settings.topics.interactions, key=b"bad",
                                      value=bad.pop()))
    for raw in bad:
        sent.append(producer.send(settings.topics.interactions, key=b"bad", value=raw))
    producer.flush()
    producer.close()
    failed = [f for f in sent if not f.succeeded()]
    if failed:
        raise RuntimeError(f"publish: {len(failed)} of {len(sent)} records were not written, "
                           f"the first because {failed[0].exception!r}")


def drain(settings: Settings, topic: str, expect: int, timeout_s: float = 30.0) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=settings.kafka_bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             group_id=None, consumer_timeout_ms=1_000)
    out: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        out += [rec.value for rec in consumer]
    consumer.close()
    return out


def reference(log: Log, cfg: EngineConfig | None = None) -> ReferenceRunner:
    runner = ReferenceRunner(cfg, models=True)
    runner.run([*log.items, *log.events])
    return runner


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
FLINK_OPERATOR: str = "flink_taskmanager_job_task_operator_operator_"  # Flink's metric prefix


def scrape(port: int) -> Samples:
    """A Prometheus endpoint's samples on the loopback ``port``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def metric_value(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum of ``name`` over the series that carry ``labels`` (None when there are none)."""
    found = [v for (n, ls), v in samples.items()
             if n == name and set(labels.items()) <= set(ls)]
    return sum(found) if found else None
