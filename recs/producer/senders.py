"""The Kafka clients behind one small :class:`Sender` protocol, made by :func:`make_producer`."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from recs.producer.config import CLIENTS, ProducerConfig

log = logging.getLogger("recs.producer")


class Sender(Protocol):
    """The little the publisher needs from a Kafka client."""

    failures: list[BaseException]

    def send(self, topic: str, key: bytes, value: bytes) -> None: ...
    def flush(self, timeout_s: float) -> None: ...
    def close(self, timeout_s: float) -> None: ...


class KafkaPythonSender:
    """``kafka-python``: pure Python, about 20-65k records/s per process (install ``crc32c``,
    which it picks up automatically: its pure-Python CRC otherwise costs about 40 µs a record)."""

    def __init__(self, config: ProducerConfig) -> None:
        from kafka import KafkaProducer

        self.failures: list[BaseException] = []
        self._producer = KafkaProducer(**config.kafka_kwargs())

    def _on_error(self, exc: BaseException) -> None:
        if not self.failures:
            log.error("kafka delivery failed error=%s", exc)
        self.failures.append(exc)

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self._producer.send(topic, key=key, value=value).add_errback(self._on_error)

    def flush(self, timeout_s: float) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float) -> None:
        self._producer.close(timeout=timeout_s)


class ConfluentSender:
    """``confluent-kafka`` (librdkafka): enqueueing costs a microsecond or two per record."""

    def __init__(self, config: ProducerConfig) -> None:
        from confluent_kafka import Producer

        self.failures: list[BaseException] = []
        self._producer = Producer({**config.confluent_conf(), "on_delivery": self._on_delivery})
        self._sent = 0

    def _on_delivery(self, err: Any, _msg: Any) -> None:
        if err is not None:
            if not self.failures:
                log.error("kafka delivery failed error=%s", err)
            self.failures.append(RuntimeError(str(err)))

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
        self._sent += 1
        if self._sent & 1023 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        left = self._producer.flush(timeout_s)
        if left:
            self.failures.append(TimeoutError(f"{left} records undelivered after {timeout_s} s"))

    def close(self, timeout_s: float) -> None:
        self.flush(timeout_s)


def make_producer(config: ProducerConfig) -> Sender:
    """A :class:`Sender` for ``config`` (clients are imported lazily: the CLI help stays fast)."""
    if config.client == "kafka-python":
        return KafkaPythonSender(config)
    if config.client == "confluent":
        return ConfluentSender(config)
    raise ValueError(f"producer: client must be one of {list(CLIENTS)}, got {config.client!r}")
