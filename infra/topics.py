"""The engine's Kafka topics, their replication, and the admin calls around them, for any
broker or cluster (local or not).

>>> [(t.name, t.partitions) for t in engine_topics(Topics(), 4)]
[('interactions', 4), ('items', 4), ('interactions.dlq', 4), ('recs.updates', 1)]

Replication follows the number of brokers: one broker keeps one copy; three or more keep three,
and a write is acknowledged once two of them have it, so one broker can be lost without losing
an acknowledged record or refusing writes:

>>> replication(1), replication(3)
(Replication(factor=1, min_insync=1), Replication(factor=3, min_insync=2))
>>> replication(3).topic_configs()
{'min.insync.replicas': '2', 'unclean.leader.election.enable': 'false'}
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from recs.settings import Settings, Topics


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    configs: Mapping[str, str] = field(default_factory=dict)


UPDATES_PARTITIONS: Final = 1
MAX_REPLICATION: Final = 3


@dataclass(frozen=True, slots=True)
class Replication:
    """How many copies a topic keeps and how many must have a record before it is acknowledged
    to an ``acks=all`` producer."""

    factor: int
    min_insync: int

    def topic_configs(self) -> dict[str, str]:
        """Per-topic settings: the minimum in-sync replicas, and never electing a leader that
        is not in sync (it would drop acknowledged records)."""
        if self.factor == 1:
            return {}
        return {"min.insync.replicas": str(self.min_insync),
                "unclean.leader.election.enable": "false"}

    def broker_configs(self) -> dict[str, str]:
        """The same for the brokers' defaults and internal topics (group offsets,
        transactions, share groups)."""
        factor, isr = str(self.factor), str(self.min_insync)
        return {"default.replication.factor": factor, "min.insync.replicas": isr,
                "offsets.topic.replication.factor": factor,
                "transaction.state.log.replication.factor": factor,
                "transaction.state.log.min.isr": isr,
                "share.coordinator.state.topic.replication.factor": factor,
                "share.coordinator.state.topic.min.isr": isr,
                "unclean.leader.election.enable": "false"}


def replication(brokers: int) -> Replication:
    """RF = min(3, brokers), and every copy but one in sync: a write waits for all but one
    replica, so losing any one broker neither loses it nor stops writes (at RF 2 a record
    acknowledged while the ISR had shrunk to one copy is lost with that copy).

    >>> [(r.factor, r.min_insync) for r in map(replication, (1, 2, 3, 5))]
    [(1, 1), (2, 1), (3, 2), (3, 2)]
    """
    if brokers < 1:
        raise ValueError(f"infra.topics: brokers must be at least 1, got {brokers!r}")
    factor = min(MAX_REPLICATION, brokers)
    return Replication(factor, max(1, factor - 1))


def producer_delivery_properties() -> dict[str, str]:
    """What every producer of the engine asks of the brokers, as Java client / librdkafka
    properties (the Flink job's Kafka sinks, ``confluent-kafka``): a record is acknowledged once
    every in-sync replica has it, and retries cannot duplicate or reorder it (idempotence).
    ``kafka-python`` spells them ``acks="all", enable_idempotence=True``.

    >>> producer_delivery_properties()["acks"], producer_delivery_properties()["enable.idempotence"]
    ('all', 'true')
    """
    return {"acks": "all", "enable.idempotence": "true",
            "max.in.flight.requests.per.connection": "5"}


def kafka_python_delivery() -> dict[str, Any]:
    """:func:`producer_delivery_properties` as ``kafka.KafkaProducer`` keyword arguments.

    >>> kafka_python_delivery()
    {'acks': 'all', 'enable_idempotence': True, 'max_in_flight_requests_per_connection': 5}
    """
    def value(text: str) -> Any:
        if text in ("true", "false"):
            return text == "true"
        return int(text) if text.isdigit() else text

    return {k.replace(".", "_"): value(v) for k, v in producer_delivery_properties().items()}


def engine_topics(topics: Topics, partitions: int) -> list[TopicSpec]:
    """The engine's topics.

    ``items`` is compacted (the latest upsert per item id wins). ``recs.updates`` has one
    partition: the loader relies on the updates of a key arriving in emission order, so that
    among equal versions the newest wins (see :mod:`state.records`).
    """
    return [TopicSpec(topics.interactions, partitions),
            TopicSpec(topics.items, partitions, {"cleanup.policy": "compact"}),
            TopicSpec(topics.dlq, partitions),
            TopicSpec(topics.updates, UPDATES_PARTITIONS)]


def default_topics(settings: Settings) -> list[TopicSpec]:
    return engine_topics(settings.topics, settings.partitions)


@contextlib.contextmanager
def admin_client(bootstrap: str, timeout_s: float = 30.0) -> Iterator[KafkaAdminClient]:
    client = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="recs-infra",
                              bootstrap_timeout_ms=int(timeout_s * 1000),
                              request_timeout_ms=int(timeout_s * 1000))
    try:
        yield client
    finally:
        client.close()


def broker_count(admin: KafkaAdminClient) -> int:
    """The brokers the cluster's metadata lists right now (fenced ones left out)."""
    doc: Any = admin.describe_cluster()
    return sum(1 for b in doc["brokers"] if not b.get("is_fenced"))


def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec], timeout_s: float = 30.0, *,
                  brokers: int | None = None) -> list[str]:
    """Create the topics that do not exist yet and wait until each has leaders; idempotent.

    Their replication is :func:`replication` of ``brokers``, by default of the brokers the
    cluster lists (a cluster that has lost a broker should pass its full size). Returns the
    names it created. Existing topics are left as they are (their partition count and
    replication are not changed).
    """
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    with admin_client(bootstrap, timeout_s) as admin:
        copies = replication(brokers if brokers is not None else broker_count(admin))
        while True:
            existing = set(admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if not missing:
                break
            try:
                admin.create_topics(
                    {s.name: {"num_partitions": s.partitions,
                              "replication_factor": copies.factor,
                              "configs": {**copies.topic_configs(), **s.configs}}
                     for s in missing},
                    timeout_ms=int(timeout_s * 1000))
            except TopicAlreadyExistsError:
                continue  # raced with another creator: look again
            except KafkaError as exc:  # e.g. the controller is not ready yet right after start
                if time.monotonic() > deadline:
                    raise RuntimeError(f"infra: creating topics {[s.name for s in missing]} on "
                                       f"{bootstrap} failed: {exc!r}") from exc
                time.sleep(0.2)
                continue
            created += [s.name for s in missing]
            break
        admin.wait_for_topics([s.name for s in specs],
                              timeout_ms=max(1000, int((deadline - time.monotonic()) * 1000)))
    return created


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's configs that differ from the broker defaults (``{"cleanup.policy": ...}``)."""
    with admin_client(bootstrap) as admin:
        doc: Any = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    entries = doc["topic"][topic]
    return {name: str(entry["value"]) for name, entry in entries.items()}


def partition_counts(bootstrap: str, topics: Sequence[str]) -> dict[str, int]:
    with admin_client(bootstrap) as admin:
        described = admin.describe_topics(list(topics))
    return {t["name"]: len(t["partitions"]) for t in described}


@dataclass(frozen=True, slots=True)
class PartitionState:
    """One partition's leader, replicas and in-sync replicas (broker node ids)."""

    partition: int
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


def partition_states(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[PartitionState]:
    """Where ``topic``'s partitions live right now (leader -1: no leader). A broker of
    ``bootstrap`` that is down fails the client's first requests: retried until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with admin_client(bootstrap, timeout_s=5.0) as admin:
                (described,) = admin.describe_topics([topic])
            break
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"infra: describing topic {topic!r} on {bootstrap} failed "
                                   f"for {timeout_s:.0f} s: {exc!r}") from exc
            time.sleep(0.2)
    states = [PartitionState(p["partition_index"], p["leader_id"], tuple(p["replica_nodes"]),
                             tuple(p["isr_nodes"])) for p in described["partitions"]]
    return sorted(states, key=lambda p: p.partition)
