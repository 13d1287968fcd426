"""``make demo``-style smoke test: the whole path (Kafka -> Flink -> loader -> Redis -> HTTP) as
the demo runs it, against the test session's broker and Redis, checked through its summary."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from infra.procs import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_end_to_end_and_serves_fresh_session_recommendations(
        kafka: Any, redis_server: Any, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DEMO_SECONDS": "40",
        "DEMO_RATE": "200",
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "REDIS_URL": redis_server.url_for(11),
        "RECS_TOPIC_PREFIX": f"demo-{uuid.uuid4().hex[:6]}.",
        "RECS_RUN_DIR": str(tmp_path),
        "RECS_HTTP_PORT": str(free_port()),
        "RECS_CHECKPOINT_INTERVAL_MS": "2000",
    }
    proc = subprocess.run([sys.executable, "-m", "recs.cli", "demo"], env=env, cwd=ROOT,
                          capture_output=True, timeout=300, check=False)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out[-3000:] + proc.stderr.decode(errors="replace")[-3000:]
    summary = orjson.loads(out.strip().splitlines()[-1])
    assert summary["events_produced"] > 1_000
    assert summary["events_processed"] > 1_000
    assert summary["dlq"] >= 1  # the demo mixes malformed events in; they must land in the DLQ
    assert summary["dlq"] == summary["malformed_produced"]
    assert summary["users_with_session_recs"] > 100
    assert summary["http_requests_ok"] > 10
    assert summary["http_requests_failed"] == 0
    assert summary["clicks"] >= 1, "the demo shopper's recommendations never changed"
    assert 0 < summary["freshness_p50_ms"] < 10_000
    # the online models learnt in the running job and published what they learnt
    assert summary["model_events_learned"] > 500
    assert summary["model_items"] > 50 and summary["model_users"] > 50
    assert summary["ranker_examples"] > 100
    # the blend learner beside the server learnt from the clickstream and published its value
    assert summary["blend_labelled"] > 100
    # a brand-new item (launched at 15 s and 30 s) became retrievable by its content placement
    assert summary["new_items_launched_retrievable"] >= 1
    assert summary["new_item_retrievable_max_ms"] < 60_000
