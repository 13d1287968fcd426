"""Publishing: records to their topics, keyed, paced, counted in :class:`PublishStats`."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from recs.producer.config import ProducerConfig, Record
from recs.producer.pacing import TokenBucket
from recs.producer.senders import Sender, make_producer
from schemas.events import Interaction, ItemUpsert


@dataclass(slots=True)
class PublishStats:
    """What a publishing run did. ``seconds`` is wall time including the final flush."""

    events: int = 0
    items: int = 0
    seconds: float = 0.0
    errors: int = 0
    slept: float = 0.0

    @property
    def rate(self) -> float:
        """Achieved interactions per second."""
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"events": self.events, "items": self.items, "seconds": round(self.seconds, 3),
                "rate": round(self.rate, 1), "errors": self.errors}

    @classmethod
    def combine(cls, parts: Sequence[PublishStats], seconds: float) -> PublishStats:
        """Totals of parallel runs; ``seconds`` is the wall time they took together."""
        return cls(events=sum(p.events for p in parts), items=sum(p.items for p in parts),
                   seconds=seconds, errors=sum(p.errors for p in parts),
                   slept=sum(p.slept for p in parts))


def _encode(rec: Record, retime: bool) -> bytes:
    """The record's canonical JSON; with ``retime``, its ``ts`` replaced by the wall clock (ms)
    (patching the dict is about ten times cheaper than rebuilding the frozen event)."""
    if retime:
        return orjson.dumps({**rec.to_dict(), "ts": int(time.time() * 1000)})
    return rec.to_json()


def publish(events: Iterable[Record], bootstrap: str, topic: str, rate: float | None = None,
            *, items_topic: str | None = None, retime: bool = False,
            config: ProducerConfig | None = None, producer: Sender | None = None,
            flush_timeout_s: float = 120.0) -> PublishStats:
    """Send interactions to ``topic`` (and any item upserts among them to ``items_topic``).

    ``rate`` (interactions per second) paces the loop with a :class:`TokenBucket`; ``None`` or
    ``0`` sends as fast as possible. ``retime`` stamps each record with the wall-clock
    millisecond at which it is sent (after pacing), so the engine's freshness (event time to
    visible effect) can be measured on an old log or a synthetic stream. Pass ``producer`` to
    reuse one (it is flushed, not closed); otherwise one is made from ``config`` (default:
    :class:`ProducerConfig` for ``bootstrap``) and closed at the end. Delivery failures are
    counted in ``errors`` (the first is logged).
    """
    own = producer is None
    sender = producer if producer is not None else make_producer(
        config or ProducerConfig(bootstrap))
    failed_before = len(sender.failures)
    stats = PublishStats()
    bucket = TokenBucket(rate) if rate else None
    take = bucket.take if bucket is not None else None
    send = sender.send
    started = time.perf_counter()
    slept = 0.0
    n_events = n_items = 0
    try:
        for rec in events:
            if type(rec) is Interaction:
                if take is not None:
                    slept += take()
                send(topic, rec.user_id.encode(), _encode(rec, retime))
                n_events += 1
            elif isinstance(rec, ItemUpsert):
                if items_topic is None:
                    raise ValueError(f"publish: got an item upsert ({rec.item_id!r}) but no "
                                     "items_topic to send it to")
                send(items_topic, rec.item_id.encode(), _encode(rec, retime))
                n_items += 1
            else:
                raise TypeError(f"publish: expected Interaction or ItemUpsert, got "
                                f"{type(rec).__name__}")
        sender.flush(flush_timeout_s)
    finally:
        if own:
            sender.close(flush_timeout_s)
    stats.events, stats.items, stats.slept = n_events, n_items, slept
    stats.seconds = time.perf_counter() - started
    stats.errors = len(sender.failures) - failed_before
    return stats


def publish_items(items: Iterable[ItemUpsert], bootstrap: str, topic: str = "items", *,
                  config: ProducerConfig | None = None,
                  producer: Sender | None = None) -> PublishStats:
    """Send item upserts to ``topic`` keyed by ``item_id``, as fast as possible."""
    return publish(items, bootstrap, topic, None, items_topic=topic, config=config,
                   producer=producer)
