"""``recs infra up --cluster`` / ``status`` / ``down`` as a user runs them: the whole cluster
topology (3 Kafka brokers, a Redis Cluster of 3 masters + 3 replicas, a Flink JobManager and
2 TaskManagers) comes up on loopback, answers, is reported, and is stopped by pid."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.cluster import RedisCluster as RedisClusterClient

from infra.flink_rest import JobManagerRest
from infra.procs import port_open, read_json
from infra.topics import admin_client, broker_count
from state.redis_connect import sync_client
from tests.test_infra import _gone, _recs_infra

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_recs_infra_up_status_down_cluster(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    up = _recs_infra(run_dir, "up", "--cluster", timeout=300)
    state = read_json(run_dir / "services.json")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert state is not None and state["topology"] == "cluster"
        pids = state["kafka"]["pids"] + state["redis"]["pids"] + state["flink"]["pids"]
        assert len(state["kafka"]["pids"]) == 3 and len(state["redis"]["pids"]) == 6
        assert len(state["flink"]["pids"]) == 3  # the JobManager and two TaskManagers
        assert len(set(pids)) == 12
        env = (run_dir / "services.env").read_text()
        assert f"export KAFKA_BOOTSTRAP={state['kafka']['bootstrap']}" in env
        assert f"export REDIS_URL={state['redis']['url']}" in env
        assert state["redis"]["url"].startswith("redis+cluster://")

        with admin_client(state["kafka"]["bootstrap"]) as admin:
            assert broker_count(admin) == 3
        client = sync_client(state["redis"]["url"])
        assert isinstance(client, RedisClusterClient)
        try:
            info = client.cluster_info(target_nodes=RedisClusterClient.RANDOM)
            assert int(info["cluster_size"]) == 3 and info["cluster_state"] == "ok", info
            client.set("recs:v1:probe", b"1")
            assert client.get("recs:v1:probe") == b"1"
        finally:
            client.close()
        overview = JobManagerRest(state["flink"]["rest_url"]).overview()
        assert overview is not None
        assert overview["taskmanagers"] == 2 and overview["slots-total"] == 2

        status = _recs_infra(run_dir, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        for name in ("kafka", "redis", "flink"):
            assert f"{name}  up" in status.stdout, status.stdout
        assert "2 TaskManagers" in status.stdout, status.stdout
    finally:
        stopped = _recs_infra(run_dir, "down", timeout=120)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert all(_gone(pid, timeout=30) for pid in pids), [p for p in pids if not _gone(p, 0.1)]
    ports = [int(a.rsplit(":", 1)[1]) for a in state["kafka"]["bootstrap"].split(",")]
    assert not any(port_open(p) for p in ports + state["redis"]["ports"])
    assert not (run_dir / "services.json").exists()
    assert _recs_infra(run_dir, "status").returncode == 3
