"""What the producer sends and how: the record type, the Kafka client choice and its settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from infra.topics import kafka_python_delivery, producer_delivery_properties
from schemas.events import Interaction, ItemUpsert

DEFAULT_LINGER_MS: Final = 20
DEFAULT_BATCH_SIZE: Final = 512 * 1024
CLIENTS: Final = ("kafka-python", "confluent")

Record = Interaction | ItemUpsert


@dataclass(frozen=True, slots=True)
class ProducerConfig:
    """How records are sent. ``acks`` is ``"all"`` (the default: the engine's delivery
    settings, :func:`infra.topics.producer_delivery_properties`: every in-sync replica has the
    record, and idempotence, so retries neither duplicate nor reorder), ``1`` (leader only) or
    ``0``; idempotence comes with ``"all"`` only (kafka-python requires that pairing). With
    ``1`` or ``0`` the loss of a broker can lose records it acknowledged.

    ``client`` is ``kafka-python`` (the project's dependency) or ``confluent`` (librdkafka via
    ``confluent-kafka``, when installed: an order of magnitude cheaper per record)."""

    bootstrap: str
    acks: int | str = "all"
    linger_ms: int = DEFAULT_LINGER_MS
    batch_size: int = DEFAULT_BATCH_SIZE
    compression: str | None = None
    client: str = "kafka-python"

    def _acks(self) -> int | str:
        return "all" if self.acks in ("all", -1, "-1") else int(self.acks)

    def kafka_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``kafka.KafkaProducer``."""
        acks = self._acks()
        delivery = (kafka_python_delivery() if acks == "all"
                    else {"acks": acks, "enable_idempotence": False})
        return {
            "bootstrap_servers": self.bootstrap,
            **delivery,
            "linger_ms": self.linger_ms,
            "batch_size": self.batch_size,
            "compression_type": self.compression,
            "max_request_size": max(1024 * 1024, self.batch_size * 2),
        }

    def confluent_conf(self) -> dict[str, Any]:
        """Configuration for ``confluent_kafka.Producer``."""
        acks = self._acks()
        delivery = (producer_delivery_properties() if acks == "all"
                    else {"acks": acks, "enable.idempotence": False})
        return {
            "bootstrap.servers": self.bootstrap,
            **delivery,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "compression.type": self.compression or "none",
            "queue.buffering.max.messages": 1_000_000,
            "delivery.report.only.error": True,
        }
