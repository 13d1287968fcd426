"""A real ``redis-server`` as a local process on a free loopback port, no persistence.

Files under ``<run_dir>/redis/``: ``redis.conf`` (generated), ``redis.log``, ``redis.out``,
``redis.pid`` and ``endpoint.json``. :meth:`RedisServer.kill` SIGKILLs it and
:meth:`RedisServer.restart` brings it back on the same port (empty: nothing is saved), which is
what degradation tests need.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import redis

from infra import paths
from infra.procs import (
    LOOPBACK,
    Proc,
    SinglePortService,
    free_port,
    port_is_free,
    read_json,
    spawn,
    wait_until,
    write_json,
)

log = logging.getLogger(__name__)


class RedisServer(SinglePortService):
    """One local Redis; ``start()`` is a no-op when it already runs for this run dir."""

    name = "redis"

    def __init__(self, run_dir: Path, *, port: int | None = None,
                 start_timeout_s: float = 20.0, subdir: str = "redis") -> None:
        self.dir = Path(run_dir).resolve() / subdir
        self._want_port = port
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.proc: Proc | None = None

    managed = True  # a process this object can kill and restart (external Redis is not)

    @property
    def pid_path(self) -> Path:
        return self.dir / "redis.pid"

    @property
    def endpoint_path(self) -> Path:
        return self.dir / "endpoint.json"

    @property
    def logs(self) -> list[Path]:
        return [self.dir / "redis.out", self.dir / "redis.log"]

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        if not self.port:
            raise RuntimeError("infra: RedisServer is not started")
        return f"redis://{LOOPBACK}:{self.port}/{db}"


    def _markers(self) -> tuple[str, ...]:
        # redis-server rewrites its process title to "redis-server 127.0.0.1:PORT".
        return ("redis-server", f"{LOOPBACK}:{self.port}")


    def ping(self) -> bool:
        if not self.port:
            return False
        client = redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=1.0,
                             socket_connect_timeout=1.0)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def start(self, *, bind_to_parent: bool = False) -> RedisServer:
        if self.alive() or (self.proc is None and self.adopt()):
            return self
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.port:  # a restart keeps its port so clients' URLs stay valid
            previous = int((read_json(self.endpoint_path) or {}).get("port", 0))
            self.port = self._want_port or (
                previous if previous and port_is_free(previous) else free_port())
        conf = self.dir / "redis.conf"
        conf.write_text("\n".join(self.config_lines()) + "\n")
        self.proc = spawn("redis", [paths.redis_server_binary(), str(conf)], log=self.logs[0],
                          cwd=self.dir, markers=self._markers(), bind_to_parent=bind_to_parent)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        write_json(self.endpoint_path, {"port": self.port, "url": self.url})
        try:
            wait_until(self.ping, proc=self.proc, timeout=self.start_timeout_s,
                       what="answering PING", logs=self.logs)
        except BaseException:
            self.stop()
            raise
        log.info("redis up url=%s pid=%s seconds=%.2f", self.url, self.proc.pid,
                 time.monotonic() - started)
        return self

    def config_lines(self) -> list[str]:
        """The generated ``redis.conf`` (subclasses add to it: :mod:`infra.redis_cluster`)."""
        return [
            "# written by infra/redis_server.py",
            f"port {self.port}",
            f"bind {LOOPBACK}",
            "protected-mode yes",
            "daemonize no",
            'save ""',
            "appendonly no",
            f"dir {self.dir}",
            f"logfile {self.logs[1]}",
            "databases 16",
        ]

    def restart(self) -> RedisServer:
        """Start again on the same port after :meth:`kill` or :meth:`stop` (data is gone)."""
        return self.start()



