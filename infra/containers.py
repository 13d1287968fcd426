"""Kafka and Redis in Docker containers (testcontainers), for machines with a Docker engine.

Chosen by :class:`infra.services.Services` when ``RECS_INFRA=docker``, or in the default ``auto``
mode when the local prerequisites (Java, the resolved broker jars, ``redis-server``) are missing
but a Docker engine answers. Not exercised on the machines this project is developed on (they
have no Docker engine); the local processes in :mod:`infra.kafka_broker` and
:mod:`infra.redis_server` are what the tests run.
"""

from __future__ import annotations

import contextlib
from typing import Any, Final

KAFKA_IMAGE: Final = "confluentinc/cp-kafka:7.6.0"  # testcontainers' KRaft-capable default
REDIS_IMAGE: Final = "redis:7"


def docker_available(timeout_s: float = 3.0) -> bool:
    """Whether a Docker engine answers a ping within ``timeout_s`` (False when no SDK/engine)."""
    try:
        import docker
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=int(max(1.0, timeout_s)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # docker.errors.DockerException, connection refused, missing socket
        return False


def _kafka_container_class() -> Any:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14 had it at the top level
        from testcontainers.kafka import KafkaContainer
    return KafkaContainer


def _redis_container_class() -> Any:
    try:
        from testcontainers.community.redis import RedisContainer
    except ImportError:
        from testcontainers.redis import RedisContainer
    return RedisContainer


class KafkaInDocker:
    """A single-node KRaft Kafka container; ``.bootstrap`` like :class:`KafkaBroker`."""

    managed = True

    def __init__(self, image: str = KAFKA_IMAGE, start_timeout_s: int = 120) -> None:
        self._container = _kafka_container_class()(image).with_kraft()
        self._timeout = start_timeout_s
        self.bootstrap = ""

    def start(self) -> KafkaInDocker:
        self._container.start(timeout=self._timeout)
        self.bootstrap = str(self._container.get_bootstrap_server())
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._container.stop()


class RedisInDocker:
    """A Redis container; ``.url``, ``kill()`` and ``restart()`` like :class:`RedisServer`."""

    managed = True

    def __init__(self, image: str = REDIS_IMAGE) -> None:
        self._container = _redis_container_class()(image)
        self.port = 0
        self.host = ""

    def start(self) -> RedisInDocker:
        self._container.start()
        self.host = str(self._container.get_container_host_ip())
        self.port = int(self._container.get_exposed_port(6379))
        return self

    @property
    def url(self) -> str:
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f"redis://{self.host}:{self.port}/{db}"

    def alive(self) -> bool:
        wrapped = self._container.get_wrapped_container()
        wrapped.reload()
        return bool(wrapped.status == "running")

    def kill(self) -> None:
        self._container.get_wrapped_container().kill()

    def restart(self) -> RedisInDocker:
        """Start the killed container again (Docker may map a new host port: re-read ``url``)."""
        wrapped = self._container.get_wrapped_container()
        wrapped.start()
        wrapped.reload()
        self.port = int(self._container.get_exposed_port(6379))
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._container.stop()
