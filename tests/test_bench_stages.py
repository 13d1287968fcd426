"""`make bench-stages` stays runnable: a tiny run of one row (the JVM front and neighbour stage
behind the generator, through the Python wrappers, the second similar-items list on) prints the
documented JSON line."""

from __future__ import annotations

import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration


def test_bench_stages_prints_the_rate_of_a_row() -> None:
    proc = subprocess.run([sys.executable, "-m", "recs.bench_stages", "--scale", "0.001",
                           "--only", "neighbours", "--runtime", "jvm",
                           "--similar-recent", "3600"], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    rows = {(r["stage"], r["runtime"]): r for r in summary["stages"]}
    assert set(rows) == {("neighbours", "jvm")} and summary["similar_recent_s"] == 3600.0
    for row in rows.values():
        assert row["events"] >= 1_000
        assert row["events_per_s"] > 0 and row["cpu_us_per_event"] > 0
    assert summary["cpu_count"] >= 1 and "load_avg_1m" in summary
