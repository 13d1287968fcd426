"""Fixtures for tests against real services (mark such tests ``@pytest.mark.integration``).

Session-scoped, started once on first use and stopped at the end of the run:

``kafka``         a running broker with the engine's topics; ``.bootstrap`` ("127.0.0.1:PORT").
                  A local KRaft process (:class:`infra.kafka_broker.KafkaBroker`), or the broker at
                  ``KAFKA_BOOTSTRAP`` when set (``.managed`` is then False).
``redis_server``  a running Redis; ``.url`` (db 0), ``.url_for(db)``, ``.managed``, and when
                  managed ``.kill()`` (SIGKILL) and ``.restart()`` (same port, empty).
                  ``REDIS_URL`` selects an external Redis instead; its db
                  :data:`STORE_DB` is flushed by ``redis_store``.

Function-scoped:

``redis_store``   a :class:`state.redis_store.RedisStore` on db :data:`STORE_DB`, flushed first.
``redis_killable`` the ``redis_server``, skipped unless managed; restarted after the test if the
                  test left it dead (for degradation tests).
``fresh_topics``  a factory making topics with unique names for this test:
                  ``a, b = fresh_topics("in", "out", partitions=2)``;
                  ``fresh_topics.engine()`` returns a :class:`recs.settings.Topics` whose four
                  topics exist (``items`` compacted, ``updates`` one partition).
``live_settings`` :class:`recs.settings.Settings` pointed at ``kafka``, at ``redis_store``'s db
                  and at fresh engine topics, with ``run_dir`` in the test's ``tmp_path``.

Processes live under a ``tmp_path_factory`` directory, are bound to the test process (Linux
kills them if pytest dies) and are stopped by pid. ``RECS_INFRA=docker`` uses testcontainers.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis

with warnings.catch_warnings():  # see pytest_configure
    warnings.filterwarnings("ignore", r"(read_text|open_text) is deprecated", DeprecationWarning)
    importlib.import_module("kafka")  # the fixture below is named `kafka`

from infra.services import Services
from infra.topics import TopicSpec, engine_topics, ensure_topics
from recs.settings import Settings, Topics
from state.redis_store import RedisStore

STORE_DB = 9  # the db redis_store flushes; db 0 stays for tests that use redis_server.url

_started: dict[str, float] = {}


def pytest_configure(config: pytest.Config) -> None:
    # kafka-python 3 loads its protocol schemas with importlib.resources' legacy API: one
    # DeprecationWarning per schema (hundreds) on first import, none of them ours.
    config.addinivalue_line(
        "filterwarnings", r"ignore:(read_text|open_text) is deprecated:DeprecationWarning")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _started:
        parts = ", ".join(f"{name} {secs:.1f} s" for name, secs in _started.items())
        terminalreporter.write_line(f"infra start-up: {parts}")


def _start(run_dir: Path, *, kafka: bool, redis: bool) -> Services:
    began = time.monotonic()
    svc = Services(run_dir, settings=Settings(), bind_to_parent=True, kafka=kafka,
                   redis=redis).start()
    _started["kafka" if kafka else "redis"] = time.monotonic() - began
    return svc


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    svc = _start(tmp_path_factory.mktemp("infra-kafka"), kafka=True, redis=False)
    try:
        yield svc.kafka
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    svc = _start(tmp_path_factory.mktemp("infra-redis"), kafka=False, redis=True)
    try:
        yield svc.redis
    finally:
        svc.stop()


def _ensure_alive(server: Any) -> None:
    if getattr(server, "managed", False) and not server.alive():
        server.restart()


@pytest.fixture
def redis_killable(redis_server: Any) -> Iterator[Any]:
    if not getattr(redis_server, "managed", False):
        pytest.skip("Redis is external (REDIS_URL): it cannot be killed by a test")
    yield redis_server
    _ensure_alive(redis_server)


@pytest.fixture
def redis_store(redis_server: Any) -> Iterator[RedisStore]:
    _ensure_alive(redis_server)
    client = redis.Redis.from_url(redis_server.url_for(STORE_DB))
    client.flushdb()
    try:
        yield RedisStore(client)
    finally:
        client.close()


def _slug(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", node_name).strip("-")[:40]


class TopicFactory:
    """Makes topics named ``t-<test>-<random>-<suffix>`` on the session broker."""

    def __init__(self, bootstrap: str, test_name: str) -> None:
        self.bootstrap = bootstrap
        self._stem = f"t-{_slug(test_name)}-{uuid.uuid4().hex[:8]}"
        self.created: list[str] = []

    def __call__(self, *suffixes: str, partitions: int = 4,
                 configs: Mapping[str, str] | None = None) -> list[str]:
        names = [f"{self._stem}-{s}" for s in (suffixes or ("topic",))]
        ensure_topics(self.bootstrap, [TopicSpec(n, partitions, dict(configs or {}))
                                       for n in names])
        self.created += names
        return names

    def engine(self, partitions: int = 4) -> Topics:
        """A full set of engine topics under a unique prefix, created like the real ones
        (``items`` compacted, ``updates`` with one partition)."""
        topics = Topics.with_prefix(f"{self._stem}-")
        ensure_topics(self.bootstrap, engine_topics(topics, partitions))
        self.created += dataclasses.astuple(topics)
        return topics


@pytest.fixture
def fresh_topics(kafka: Any, request: pytest.FixtureRequest) -> TopicFactory:
    return TopicFactory(kafka.bootstrap, request.node.name)


@pytest.fixture
def live_settings(kafka: Any, redis_server: Any, redis_store: RedisStore,
                  fresh_topics: TopicFactory, tmp_path: Path) -> Settings:
    return dataclasses.replace(
        Settings(), kafka_bootstrap=kafka.bootstrap, redis_url=redis_server.url_for(STORE_DB),
        topics=fresh_topics.engine(), run_dir=tmp_path)
