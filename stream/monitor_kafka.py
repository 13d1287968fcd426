"""The Kafka side of ``recs monitor`` (:mod:`stream.monitor`): consumer lag of the watched
groups against the end offsets, and the dead letters of ``interactions.dlq`` by reason, read
with a private consumer (no group, no commits) and the admin client."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

DLQ_MAX_PER_COLLECT: Final = 100_000
MAX_REASONS: Final = 100  # distinct reason labels; the rest count as "other"
TIMEOUT_S: Final = 2.0  # per REST call, record fetch or Redis command
KAFKA_TIMEOUT_MS: Final = 5_000  # a broker that does not answer fails the reading, not the loop
_FIELD_ROOT: Final = re.compile(r"[.\[]")  # item_ids[3] -> item_ids, context.page -> context
BLEND_GROUP: Final = "recs-blend-learner"  # stream.blend_learner_run.GROUP (not imported: faiss)


@dataclass(frozen=True, slots=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    end: int
    committed: int | None  # None: the group has committed nothing for this partition
    lag_records: int
    first_uncommitted_ms: int | None  # record timestamp; None when caught up


def dlq_reason(raw: bytes) -> str:
    """A bounded label for a dead letter: ``<contract>.<field>``, without indexes or keys.

    >>> dlq_reason(b'{"contract": "interaction", "field": "item_ids[3]", "reason": "x"}')
    'interaction.item_ids'
    >>> dlq_reason(b'{"contract": "item", "field": "tint", "reason": "item.tint: unknown field"}')
    'item.unknown_field'
    >>> dlq_reason(b'not json')
    'unreadable'
    """
    try:
        doc = orjson.loads(raw)
        contract, name, reason = str(doc["contract"]), str(doc["field"]), str(doc["reason"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return "unreadable"
    if reason.startswith(f"{contract}.{name}: unknown field"):
        name = "unknown_field"
    return contract + "." + _FIELD_ROOT.split(name, maxsplit=1)[0]


class KafkaSide:
    """Consumer lag of the watched groups and dead letters by reason, read with a private
    consumer (no group, no commits) and the admin client. An ``optional`` group (one that need
    not run: the blend learner's) has lag series only for the partitions it committed, and its
    members are counted (:meth:`members`)."""

    def __init__(self, bootstrap: str, groups: Mapping[str, str], dlq_topic: str,
                 optional: Mapping[str, str] | None = None) -> None:
        from kafka import KafkaAdminClient, KafkaConsumer

        self.optional = dict(optional or {})
        self.groups = {**groups, **self.optional}  # group id -> topic it consumes
        self.dlq_topic = dlq_topic
        timeouts = {"bootstrap_timeout_ms": KAFKA_TIMEOUT_MS,
                    "request_timeout_ms": KAFKA_TIMEOUT_MS}
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="recs-monitor",
                                       **timeouts)
        opts: dict[str, Any] = {"bootstrap_servers": bootstrap, "group_id": None,
                                "enable_auto_commit": False, "client_id": "recs-monitor",
                                **timeouts}
        self._probe = KafkaConsumer(**opts, max_poll_records=1)
        self._dlq = KafkaConsumer(**opts, max_poll_records=5000)
        self._ts_cache: dict[tuple[str, int], tuple[int, int | None]] = {}
        self.dlq_counts: dict[str, int] = {}

    def lags(self) -> list[PartitionLag]:
        from kafka import TopicPartition

        committed_by_group = self._admin.list_group_offsets({g: None for g in self.groups})
        out = []
        for group, topic in sorted(self.groups.items()):
            tps = [TopicPartition(topic, p)
                   for p in sorted(self._probe.partitions_for_topic(topic))]
            ends = self._probe.end_offsets(tps)
            starts = self._probe.beginning_offsets(tps)
            committed = committed_by_group.get(group, {})
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else None
                if done is None and group in self.optional:
                    continue
                lag = max(0, ends[tp] - (starts[tp] if done is None else done))
                # the first uncommitted record still in the log (retention may have taken more)
                first = starts[tp] if done is None else max(starts[tp], done)
                ts = self._timestamp_at(tp, first) if first < ends[tp] else None
                out.append(PartitionLag(group, topic, tp.partition, ends[tp], done, lag, ts))
        return out

    def members(self) -> dict[str, int]:
        """The consumers in each optional group (0: the group is empty or does not exist)."""
        if not self.optional:
            return {}
        described = self._admin.describe_groups(sorted(self.optional))
        return {g: len((described.get(g) or {}).get("members") or ()) for g in self.optional}

    def _timestamp_at(self, tp: Any, offset: int) -> int | None:
        cached = self._ts_cache.get((tp.topic, tp.partition))
        if cached is not None and cached[0] == offset:
            return cached[1]
        self._probe.assign([tp])
        self._probe.seek(tp, offset)
        ts = None
        deadline = time.monotonic() + TIMEOUT_S
        while ts is None and time.monotonic() < deadline:
            for records in self._probe.poll(timeout_ms=200, max_records=1).values():
                ts = int(records[0].timestamp)
        self._ts_cache[(tp.topic, tp.partition)] = (offset, ts)
        return ts

    def read_dlq(self) -> dict[str, int]:
        """Count the dead letters written since the last call (at most DLQ_MAX_PER_COLLECT)."""
        from kafka import TopicPartition

        tps = [TopicPartition(self.dlq_topic, p)
               for p in sorted(self._probe.partitions_for_topic(self.dlq_topic))]
        if set(tps) != self._dlq.assignment():
            self._dlq.assign(tps)
            self._dlq.seek_to_beginning(*tps)
        ends, budget = self._dlq.end_offsets(tps), DLQ_MAX_PER_COLLECT
        while budget > 0 and any(self._dlq.position(tp) < ends[tp] for tp in tps):
            polled = self._dlq.poll(timeout_ms=500)
            if not polled:
                break
            for records in polled.values():
                budget -= len(records)
                for rec in records:
                    reason = dlq_reason(rec.value)
                    if reason not in self.dlq_counts and len(self.dlq_counts) >= MAX_REASONS:
                        reason = "other"
                    self.dlq_counts[reason] = self.dlq_counts.get(reason, 0) + 1
        return dict(self.dlq_counts)

    def close(self) -> None:
        for client in (self._probe, self._dlq, self._admin):
            client.close()
