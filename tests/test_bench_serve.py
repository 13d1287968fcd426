"""Smoke test of ``recs bench-serve``: a tiny dataset, a short load, and the summary it prints as
its last line. It checks the shape and the consistency of the figures, never their size:
performance is measured by running the benchmark, not by timed tests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from recs.bench_serve import main

pytestmark = pytest.mark.integration

REQUIRED = ("rps", "p50_ms", "p99_ms", "baseline_rps", "baseline_p99_ms", "ratio", "cpu_count",
            "connections", "duration_s", "workers", "load_generator", "non_2xx", "dataset",
            "platform", "cpu_model", "endpoints", "baseline", "headline",
            "p99_ms_at_half_load", "baseline_p99_ms_at_half_load", "half_load")


@pytest.mark.parametrize("generator", ["wrk", "python"])
def test_bench_serve_prints_a_consistent_summary_as_its_last_line(
        generator: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (bash infra/ensure-redis.sh)")
    if generator == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not on PATH (bash infra/ensure-wrk.sh)")
    monkeypatch.setenv("RECS_RUN_DIR", str(tmp_path))

    code = main(["--events", "3000", "--items", "100", "--users", "300", "--duration", "2",
                 "--warmup", "1", "--rounds", "1", "--connections", "4",
                 "--endpoints", "homepage,session", "--load-generator", generator])

    out = capsys.readouterr().out
    assert code == 0, out
    summary: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    assert [k for k in REQUIRED if k not in summary] == []
    assert summary["load_generator"] == generator
    assert (summary["connections"], summary["duration_s"], summary["workers"]) == (4, 2, 1)
    assert summary["cpu_count"] >= 1
    assert summary["rps"] > 0 and summary["baseline_rps"] > 0
    assert summary["p99_ms"] >= summary["p50_ms"] > 0
    assert summary["baseline_p99_ms"] >= summary["baseline_p50_ms"] > 0
    assert summary["ratio"] == pytest.approx(summary["rps"] / summary["baseline_rps"], rel=1e-3)
    assert summary["non_2xx"] == 0 and summary["socket_errors"] == 0
    # the open loop offered both targets half the baseline's closed-loop throughput
    half = summary["half_load"]
    assert set(half) == {"baseline", summary["headline"]}
    for row in half.values():
        assert row["offered_rps"] == pytest.approx(summary["baseline_rps"] / 2, rel=1e-3)
        assert row["requests"] > 0 and row["non_2xx"] == 0
    assert summary["p99_ms_at_half_load"] == half[summary["headline"]]["p99_ms"] > 0
    assert summary["dataset"]["events"] == 3000 and summary["dataset"]["sessions"] > 0
    assert "ReferenceRunner" in summary["dataset"]["source"]
    # the session endpoint exists; the homepage is measured once served, reported skipped before
    endpoints = summary["endpoints"]
    assert "session" in endpoints
    assert set(endpoints) | set(summary["skipped_endpoints"]) == {"homepage", "session"}
    assert summary["headline"] == ("homepage" if "homepage" in endpoints else "session")
    assert summary["rps"] == endpoints[summary["headline"]]["rps"]
    for row in endpoints.values():
        assert row["preflight_statuses"] == {"200": 100}
        assert row["p99_ms"] >= row["p50_ms"] > 0 and row["non_2xx"] == 0
    # most users requested have a session: the session endpoint answers from it
    sources = endpoints["session"]["preflight_sources"]
    assert sources.get("session", 0) > sum(sources.values()) // 2
    assert not list((tmp_path / "bench-serve" / "redis").glob("*.pid")), "Redis left running"


def test_the_second_list_bench_measures_the_homepage_off_and_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m recs.bench_serve_simr``: Redis holds the second lists and a warm learned
    blend, both servers answer every preflight request and are measured, and only the one
    with the list on looks up more keys."""
    from recs import bench_serve_simr

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not on PATH (bash infra/ensure-redis.sh)")
    monkeypatch.setenv("RECS_RUN_DIR", str(tmp_path))
    code = bench_serve_simr.main(["--events", "3000", "--items", "300", "--users", "300",
                                  "--duration", "1", "--warmup", "0", "--rounds", "1",
                                  "--connections", "4", "--load-generator", "python"])
    out = capsys.readouterr().out
    assert code == 0, out
    summary: dict[str, Any] = orjson.loads(out.strip().splitlines()[-1])
    assert summary["bench"] == "serve_simr" and summary["similar_recent_keys"] > 0
    assert set(summary["targets"]) == {"off", "on"}
    for row in summary["targets"].values():
        assert row["rps"] > 0 and row["non_2xx"] == 0 and row["socket_errors"] == 0
        assert row["redis_keys_per_req"] > 0 and row["server_cpu_us_per_req"] > 0
    assert summary["on_vs_off"]["rps_ratio"] == pytest.approx(
        summary["targets"]["on"]["rps"] / summary["targets"]["off"]["rps"], abs=1e-3)
    assert summary["load_avg_before"] is not None and summary["load_avg_after"] is not None
