"""Process plumbing shared by the local services: free ports, spawning, pid files, stopping.

Every process is stopped by its recorded pid, and only after checking that the pid still runs
the command we started (its command line contains our markers), so a recycled pid is never
signalled. Nothing here matches processes by name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

LOOPBACK = "127.0.0.1"


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PICK = 10_000  # free_port's picks lie between this and the ephemeral range
_picked: set[int] = set()  # ports this process handed out (never handed out twice)


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux's default when unreadable)."""
    try:
        low, high = EPHEMERAL_RANGE_FILE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32_768, 60_999


def free_port(host: str = LOOPBACK) -> int:
    """A port nobody listens on or connects from right now, for a service started later.

    Picked at random *below* the kernel's ephemeral range: a port of that range (the kernel's
    pick for a bind to port 0) can be taken by any outgoing connection between this check and
    the service's own bind, which is how a test's Flink REST endpoint once failed to start
    under load ("Could not start rest endpoint on any port"). Outgoing connections never take
    a port below the range. Falls back to the kernel's pick when no such port is free."""
    low, _ = ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(64 if low > LOWEST_PICK + 1_000 else 0):
        port = rng.randrange(LOWEST_PICK, low)
        if port not in _picked and _bindable(port, host):
            _picked.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _bindable(port: int, host: str) -> bool:
    """Whether ``port`` can be bound without SO_REUSEADDR (no listener, no socket on it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could listen on ``port`` (SO_REUSEADDR, as Kafka and Redis set it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    """Atomically replace ``path`` (readers in other processes never see half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def command_line(pid: int) -> str | None:
    """The command line of ``pid``, or None when no such (live) process exists."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            if _is_zombie(proc):
                return None
            return proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            return None
    if sys.platform.startswith("linux"):
        return None
    out = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True,
                         text=True, check=False)
    return out.stdout.strip() or None


def _is_zombie(proc: Path) -> bool:
    stat = proc.joinpath("stat").read_text()
    return stat[stat.rindex(")") + 2:].startswith("Z")


def pid_matches(pid: int, markers: Sequence[str]) -> bool:
    """``pid`` is alive and its command line contains every marker."""
    cmd = command_line(pid)
    return cmd is not None and all(m in cmd for m in markers)


@dataclass(slots=True)
class Proc:
    """One process we started (``popen`` set) or adopted from a pid file (``popen`` None)."""

    name: str
    pid: int
    markers: tuple[str, ...]
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:  # our child: its pid cannot be recycled before we reap it
            return self.popen.poll() is None
        return pid_matches(self.pid, self.markers)

    def signal(self, sig: signal.Signals) -> bool:
        """Send ``sig`` if the pid is still ours; False when it is already gone."""
        if not self.alive():
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)
        return True

    def wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=0.05)
            if not self.alive():
                return True
            time.sleep(0.05)
        return not self.alive()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL."""
        if self.signal(signal.SIGTERM) and not self.wait_gone(timeout):
            self.kill()

    def kill(self) -> None:
        """SIGKILL and wait until the process is gone (no graceful shutdown)."""
        if self.signal(signal.SIGKILL) and not self.wait_gone(10.0):
            raise RuntimeError(f"infra: {self.name} (pid {self.pid}) survived SIGKILL")


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)  # loaded before fork, used after
    pr_set_pdeathsig = 1

    def hook() -> None:
        libc.prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def spawn(name: str, argv: Sequence[str], *, log: Path, cwd: Path, markers: Sequence[str],
          env: Mapping[str, str] | None = None, bind_to_parent: bool = False) -> Proc:
    """Start ``argv`` in its own session, stdout+stderr appended to ``log``.

    ``bind_to_parent`` (Linux) makes the child exit when this process dies, so a test run that
    is killed does not leave brokers behind; ``recs infra up`` leaves it off so the services
    outlive the command.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        popen = subprocess.Popen(
            list(argv), cwd=cwd, env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_hook() if bind_to_parent else None,
        )
    return Proc(name, popen.pid, tuple(markers), popen)


def wait_until(ready: Callable[[], bool], *, proc: Proc, timeout: float, what: str,
               logs: Sequence[Path]) -> None:
    """Poll ``ready`` until true; fail early, with the logs' tails, if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if ready():
            return
        if not proc.alive():
            code = proc.popen.poll() if proc.popen is not None else None
            raise RuntimeError(f"infra: {proc.name} exited (code {code}) before {what}\n"
                               + _log_tails(logs))
        if time.monotonic() > deadline:
            raise TimeoutError(f"infra: {proc.name} (pid {proc.pid}) not {what} after "
                               f"{timeout:.0f} s\n" + _log_tails(logs))
        time.sleep(0.1)


def _log_tails(logs: Sequence[Path]) -> str:
    return "\n".join(f"--- {p} ---\n{tail(p)}" for p in logs)


class LocalService:
    """Lifecycle shared by the services the project runs as local processes.

    Subclasses set ``proc`` when they start or adopt a process and define ``pid_path``,
    :meth:`adopt` and :meth:`start`; stopping, killing and the context manager live here.
    """

    proc: Proc | None = None
    stop_timeout_s: float = 10.0

    @property
    def pid_path(self) -> Path:
        raise NotImplementedError

    def adopt(self) -> bool:
        raise NotImplementedError

    def start(self, *, bind_to_parent: bool = False) -> Self:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def stop(self, timeout_s: float | None = None) -> None:
        """Stop the process by its pid (adopting one a previous run left, if any)."""
        if self.proc is None:
            self.adopt()
        if self.proc is not None:
            self.proc.stop(self.stop_timeout_s if timeout_s is None else timeout_s)
            self.proc = None
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL (crash simulation); ``start()`` brings the service back on the same ports."""
        if self.proc is not None:
            self.proc.kill()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SinglePortService(LocalService):
    """A local service with one port, recorded as ``{"port": N}`` in ``endpoint_path`` next to
    its pid file, so a later process can adopt what an earlier ``start()`` left running."""

    name = "service"
    port = 0

    @property
    def endpoint_path(self) -> Path:
        raise NotImplementedError

    def _markers(self) -> tuple[str, ...]:
        raise NotImplementedError

    def adopt(self) -> bool:
        """Attach to a server a previous ``start()`` (maybe another process) left running."""
        ports = read_json(self.endpoint_path) or {}
        try:
            pid, port = int(self.pid_path.read_text().strip()), int(ports["port"])
        except (OSError, ValueError, KeyError):
            return False
        self.port = port
        proc = Proc(self.name, pid, self._markers())
        if not proc.alive() or not port_open(port):
            self.port = 0
            return False
        self.proc = proc
        return True
