"""Fixtures of the server tests. Redis is the ``redis_server`` of ``tests/conftest.py``; data
goes in through its ``redis_store`` (read back on the db it flushed)."""

from __future__ import annotations

from typing import Any

import pytest

from state.redis_store import RedisStore
from tests.serving.kit import fill


@pytest.fixture
def store(redis_store: RedisStore) -> RedisStore:
    return redis_store


@pytest.fixture
def redis_url(redis_server: Any, redis_store: RedisStore) -> str:
    db = redis_store.db
    return str(redis_server.url_for(db))


@pytest.fixture
def filled(store: RedisStore, redis_url: str) -> str:
    fill(store)
    return redis_url

