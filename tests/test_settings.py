from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recs.settings import Settings, Topics


def test_env_round_trip() -> None:
    s = dataclasses.replace(Settings(), kafka_bootstrap="127.0.0.1:1", redis_url="redis://x/2",
                            run_dir=Path("/tmp/r"), topics=Topics.with_prefix("p."),
                            parallelism=2, emit_interval_ms=50, state_backend="rocksdb",
                            state_expiry_lateness_ms=60_000)
    assert Settings.from_env(s.to_env()) == s


def test_topic_prefix_and_overrides() -> None:
    s = Settings.from_env({"RECS_TOPIC_PREFIX": "shop1.", "RECS_TOPIC_DLQ": "dead"})
    assert s.topics == Topics("shop1.interactions", "shop1.items", "dead", "shop1.recs.updates")


def test_defaults_need_no_environment() -> None:
    assert Settings.from_env({}) == Settings()


def test_state_backend_is_hashmap_or_rocksdb() -> None:
    assert Settings.from_env({"RECS_STATE_BACKEND": " RocksDB"}).state_backend == "rocksdb"
    with pytest.raises(ValueError, match=r"RECS_STATE_BACKEND .* got 'rocks'"):
        Settings.from_env({"RECS_STATE_BACKEND": "rocks"})
