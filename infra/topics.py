"""The engine's Kafka topics and the admin calls around them, for any broker (local or not).

>>> [(t.name, t.partitions) for t in engine_topics(Topics(), 4)]
[('interactions', 4), ('items', 4), ('interactions.dlq', 4), ('recs.updates', 1)]
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


def ensure_topics(bootstrap: str, specs: Sequence[TopicSpec], timeout_s: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet and wait until each has leaders; idempotent.

    Returns the names it created. Existing topics are left as they are (their partition count is
    not changed).
    """
    deadline = time.monotonic() + timeout_s
    created: list[str] = []
    with admin_client(bootstrap, timeout_s) as admin:
        while True:
            existing = set(admin.list_topics())
            missing = [s for s in specs if s.name not in existing]
            if not missing:
                break
            try:
                admin.create_topics(
                    {s.name: {"num_partitions": s.partitions, "replication_factor": 1,
                              "configs": dict(s.configs)} for s in missing},
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
