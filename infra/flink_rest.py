"""A JobManager's REST API, the calls the cluster tooling needs: overview, job state, cancel.

``stream/monitor.FlinkRest`` extends it with the running job's checkpoints, counters and watermarks.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Final

TIMEOUT_S: Final = 5.0
UNREADABLE: Final = (OSError, urllib.error.URLError, ValueError)


class JobManagerRest:
    """``JobManagerRest("http://127.0.0.1:8081").job_state(job_id)``."""

    def __init__(self, base_url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s

    def call(self, path: str, *, method: str = "GET") -> Any:
        """JSON from ``path`` (like ``/jobs/overview``); None for an empty body."""
        req = urllib.request.Request(self.base + path, method=method)
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def overview(self) -> dict[str, Any] | None:
        """``/overview`` (TaskManagers, slots, jobs by state), or None when it does not answer."""
        try:
            doc = self.call("/overview")
        except UNREADABLE:
            return None
        return doc if isinstance(doc, dict) else None

    def job_state(self, job_id: str) -> str:
        return str(self.call(f"/jobs/{job_id}")["state"])

    def running(self, job_id: str) -> bool:
        """The job and every one of its tasks are RUNNING (a job can be RUNNING while its
        tasks wait for slots)."""
        doc = self.call(f"/jobs/{job_id}")
        return doc["state"] == "RUNNING" and all(v["status"] == "RUNNING"
                                                 for v in doc["vertices"])

    def cancel(self, job_id: str) -> None:
        """Cancel a job; its retained checkpoints stay on disk."""
        self.call(f"/jobs/{job_id}?mode=cancel", method="PATCH")

    def wait_for_job(self, job_id: str, states: tuple[str, ...], timeout_s: float) -> str:
        """Poll the job's state until it is one of ``states``; fail early on FAILED."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.job_state(job_id)
            if state in states:
                return state
            if state == "FAILED" or time.monotonic() > deadline:
                raise RuntimeError(f"infra: Flink job {job_id} is {state} after waiting for "
                                   f"{'/'.join(states)}; exceptions: {self.exceptions(job_id)}")
            time.sleep(0.5)

    def exceptions(self, job_id: str) -> str:
        """The first lines of the job's latest failures, for error messages."""
        try:
            doc = self.call(f"/jobs/{job_id}/exceptions") or {}
        except UNREADABLE as exc:
            return f"(unreadable: {exc})"
        lines = []
        for entry in doc.get("exceptionHistory", {}).get("entries", [])[:3]:
            trace = str(entry.get("stacktrace", "")).splitlines()
            causes = [t for t in trace if t.startswith("Caused by")]
            lines.append((causes or trace or ["?"])[-1])
        return "; ".join(lines) or "(none)"

    def restarts(self, job_id: str) -> int:
        """Flink's ``numRestarts`` of the job, as the JobManager's metric store last fetched it
        (it lags, and read 0 after a TaskManager's loss in one bench run: prefer
        :meth:`failures` as evidence of a failover)."""
        doc = self.call(f"/jobs/{job_id}/metrics?get=numRestarts") or []
        return int(float(doc[0]["value"])) if doc else 0

    def failures(self, job_id: str) -> int:
        """Entries in the job's exception history: the failures it restarted from (or died of)."""
        doc = self.call(f"/jobs/{job_id}/exceptions") or {}
        return len(doc.get("exceptionHistory", {}).get("entries", []))

    def completed_checkpoints(self, job_id: str) -> int:
        doc = self.call(f"/jobs/{job_id}/checkpoints") or {}
        return int(doc.get("counts", {}).get("completed", 0))
