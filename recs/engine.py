"""Start and stop the engine's own processes: the Flink job, the update loader, the server, the
stream monitor and the blend learner.

Each runs as ``recs <command>`` in a new process group (the Flink job's Python process starts a
JVM child), configured through :meth:`recs.settings.Settings.to_env`, logging to a file. Stopping
signals that group by the PID we recorded, never by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from recs.settings import Settings


@dataclass
class EngineProcess:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the process group, then SIGKILL what is left after ``timeout`` seconds."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._reap_group()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once: a crash, as a test wants it."""
        self._signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._reap_group()

    def _signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def _reap_group(self) -> None:
        # children (the JVM) may outlive the leader for a moment: make sure the group is gone
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.popen.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(name: str, args: list[str], settings: Settings, log_dir: Path,
          extra_env: dict[str, str] | None = None) -> EngineProcess:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    env = {**os.environ, **settings.to_env(), **(extra_env or {})}
    with open(log_path, "ab") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "recs.cli", *args], stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, env=env, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
    return EngineProcess(name, popen, log_path)


def start_job(settings: Settings, log_dir: Path, *, parallelism: int = 1,
              bounded: bool = False, checkpoint_dir: Path | None = None,
              restore: str | None = None, name: str = "job") -> EngineProcess:
    args = ["job", "--parallelism", str(parallelism)]
    if bounded:
        args.append("--bounded")
    if checkpoint_dir is None:
        args.append("--no-checkpoints")
    else:
        args += ["--checkpoint-dir", str(checkpoint_dir)]
    if restore:
        args += ["--restore", restore]
    return spawn(name, args, settings, log_dir)


def start_loader(settings: Settings, log_dir: Path, *, group_id: str = "recs-loader",
                 idle_exit_s: float | None = None) -> EngineProcess:
    args = ["load", "--group-id", group_id]
    if idle_exit_s is not None:
        args += ["--idle-exit", str(idle_exit_s)]
    return spawn("loader", args, settings, log_dir)


def start_monitor(settings: Settings, log_dir: Path, *, interval_s: float = 5.0,
                  stream_group: str = "recs-stream",
                  loader_group: str = "recs-loader") -> EngineProcess:
    """``recs monitor`` on ``settings.monitor_port`` (see docs/observability.md)."""
    return spawn("monitor", ["monitor", "--interval", str(interval_s), "--stream-group",
                             stream_group, "--loader-group", loader_group], settings, log_dir)


def start_server(settings: Settings, log_dir: Path, *, workers: int = 1) -> EngineProcess:
    return spawn("server", ["serve", "--host", settings.http_host, "--port",
                            str(settings.http_port), "--workers", str(workers)],
                 settings, log_dir)


def start_blend_learner(settings: Settings, log_dir: Path) -> EngineProcess:
    """``recs blend-learner`` with the settings' sample and publication interval."""
    return spawn("blend-learner", ["blend-learner"], settings, log_dir)
