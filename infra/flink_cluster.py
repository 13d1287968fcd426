"""A Flink standalone cluster on loopback: one JobManager, N TaskManagers with one slot each.

Started with the scripts PyFlink's wheel ships (``pyflink/bin/jobmanager.sh`` and
``taskmanager.sh`` in ``start-foreground`` mode, which ``exec`` into the JVM, so the pid we
record is the JVM's), configured from a generated ``FLINK_CONF_DIR``. Everything lives under
``<run_dir>/flink/``:

- ``conf/``: ``config.yaml`` (free loopback ports for RPC, blob, REST and data, memory sized for
  a small shared machine, heap state with checkpoints under ``checkpoints/``, a restart
  strategy, the Python interpreter of this environment) and the log4j files;
- ``lib/``: links to the wheel's ``lib/*.jar``, its ``opt/flink-python`` jar and the Kafka
  connector jar (``infra/lib/flink``), the class path of every node and of ``flink run``;
- ``logs/<node>/`` (Flink's log file per node, ``<node>.out`` the JVM's stdout and stderr),
  ``<node>.pid``, ``endpoint.json`` (the ports), ``tmp/<node>/``.

The job's own code travels with the job: ``stream/job.py`` puts the project's JVM stages' jar on
``pipeline.jars`` and the TaskManagers import the project's Python modules from their
``PYTHONPATH`` (this checkout), with ``python.executable`` the interpreter running this code.

>>> with FlinkCluster(run_dir) as cluster:                          # doctest: +SKIP
...     cluster.rest_url, cluster.overview()["slots-total"]
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from infra import paths
from infra.flink_rest import JobManagerRest
from infra.procs import (
    LOOPBACK,
    LocalService,
    Proc,
    free_port,
    port_open,
    read_json,
    spawn,
    tail,
    wait_until,
    write_json,
)

log = logging.getLogger(__name__)

JOBMANAGER: Final = "jobmanager"
JM_CLASS: Final = "StandaloneSessionClusterEntrypoint"
TM_CLASS: Final = "TaskManagerRunner"

# Sized for a 2-core, 24 GiB machine shared with the brokers, Redis and the tests: heap state
# (no RocksDB), so managed memory is small; thread-mode Python lives in the TaskManager process.
CLUSTER_DEFAULTS: Final[Mapping[str, str]] = {
    "jobmanager.memory.process.size": "1024m",
    "taskmanager.memory.process.size": "1400m",
    "taskmanager.memory.managed.fraction": "0.1",
    "taskmanager.memory.network.min": "64m",
    "taskmanager.memory.network.max": "64m",
    "taskmanager.numberOfTaskSlots": "1",
    "parallelism.default": "2",
    "state.backend.type": "hashmap",
    "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
    # a lost TaskManager is noticed within seconds (its RPC connection fails) and the job is
    # restarted from its last checkpoint once slots are back
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "20",
    "restart-strategy.fixed-delay.delay": "2 s",
    "heartbeat.interval": "2000",
    "heartbeat.timeout": "15000",
    "slot.request.timeout": "120000",
    "python.execution-mode": "thread",
    "env.log.max": "2",
    "web.submit.enable": "true",
}


class FlinkNode(LocalService):
    """One JVM of the cluster (the JobManager or a TaskManager), stopped and killed by pid."""

    stop_timeout_s = 20.0

    def __init__(self, cluster: FlinkCluster, name: str, script: str, java_class: str) -> None:
        self.cluster, self.name, self.script, self.java_class = cluster, name, script, java_class
        self.proc: Proc | None = None

    @property
    def pid_path(self) -> Path:
        return self.cluster.dir / f"{self.name}.pid"

    @property
    def log_dir(self) -> Path:
        return self.cluster.dir / "logs" / self.name

    @property
    def logs(self) -> list[Path]:
        return [self.log_dir / f"{self.name}.out", *sorted(self.log_dir.glob("flink-*.log"))]

    def _markers(self) -> tuple[str, ...]:
        return (self.java_class, str(self.cluster.conf_dir), f"recs.node={self.name}")

    def adopt(self) -> bool:
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return False
        proc = Proc(self.name, pid, self._markers())
        if not proc.alive():
            return False
        self.proc = proc
        return True

    def start(self, *, bind_to_parent: bool = False) -> FlinkNode:
        """Run ``<script> start-foreground`` with this node's dynamic properties."""
        if self.alive():
            return self
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = ["bash", str(paths.pyflink_home() / "bin" / self.script), "start-foreground",
                *self.cluster.dynamic_properties(self.name)]
        env = self.cluster.node_env(self)
        self.proc = spawn(self.name, argv, log=self.logs[0], cwd=self.cluster.dir,
                          markers=self._markers(), env=env, bind_to_parent=bind_to_parent)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        return self


class FlinkCluster:
    """The standalone cluster; ``start()`` adopts one a previous ``start()`` left running."""

    managed = True

    def __init__(self, run_dir: Path, *, taskmanagers: int = 2,
                 overrides: Mapping[str, str] | None = None,
                 start_timeout_s: float = 120.0) -> None:
        if taskmanagers < 1:
            raise ValueError(f"infra: FlinkCluster taskmanagers={taskmanagers}, expected >= 1")
        self.dir = Path(run_dir).resolve() / "flink"
        self.overrides = dict(overrides or {})
        self.start_timeout_s = start_timeout_s
        self.ports: dict[str, int] = {}
        self.jobmanager = FlinkNode(self, JOBMANAGER, "jobmanager.sh", JM_CLASS)
        self.taskmanagers = [FlinkNode(self, f"taskmanager-{i}", "taskmanager.sh", TM_CLASS)
                             for i in range(taskmanagers)]

    # -- files and addresses -----------------------------------------------------------------
    @property
    def conf_dir(self) -> Path:
        return self.dir / "conf"

    @property
    def lib_dir(self) -> Path:
        return self.dir / "lib"

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def endpoint_path(self) -> Path:
        return self.dir / "endpoint.json"

    @property
    def rest_port(self) -> int:
        if not self.ports.get("rest"):
            raise RuntimeError("infra: FlinkCluster is not started")
        return self.ports["rest"]

    @property
    def rest_address(self) -> str:
        """``127.0.0.1:PORT``, what ``flink run -m`` takes."""
        return f"{LOOPBACK}:{self.rest_port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_address}"

    @property
    def nodes(self) -> list[FlinkNode]:
        return [self.jobmanager, *self.taskmanagers]

    @property
    def pid(self) -> int | None:
        return self.jobmanager.pid

    def describe(self) -> dict[str, Any]:
        """What ``recs infra up --cluster`` records in ``services.json``."""
        return {"rest": self.rest_address, "rest_url": self.rest_url,
                "taskmanagers": len(self.taskmanagers),
                "pids": [node.pid for node in self.nodes], "dir": str(self.dir)}

    def node_env(self, node: FlinkNode) -> dict[str, str]:
        return {**home_env(self.dir, node.log_dir), "FLINK_IDENT_STRING": node.name}

    def dynamic_properties(self, name: str) -> list[str]:
        """``-D key=value`` per node: its identity (a marker in its command line), its ports."""
        props = {"recs.node": name}
        if name != JOBMANAGER:
            props |= {"taskmanager.resource-id": f"{name}-{self.ports.get(name + '.rpc', 0)}",
                      "taskmanager.rpc.port": str(self.ports[name + ".rpc"]),
                      "taskmanager.data.port": str(self.ports[name + ".data"]),
                      "io.tmp.dirs": str(self.dir / "tmp" / name)}
        return [arg for key, value in props.items() for arg in ("-D", f"{key}={value}")]

    # -- lifecycle ---------------------------------------------------------------------------
    def adopt(self) -> bool:
        """Attach to a cluster a previous ``start()`` (maybe another process) left running."""
        ports = read_json(self.endpoint_path) or {}
        if not ports.get("rest") or not self.jobmanager.adopt():
            return False
        self.ports = {k: int(v) for k, v in ports.items() if isinstance(v, int)}
        if not port_open(self.ports["rest"]):
            self.jobmanager.proc = None
            return False
        for tm in self.taskmanagers:
            tm.adopt()
        return True

    def start(self, *, bind_to_parent: bool = False) -> FlinkCluster:
        """Start the JobManager and the TaskManagers; returns once every slot is registered."""
        if not (self.jobmanager.alive() or self.adopt()):
            self._launch_jobmanager(bind_to_parent)
        for i, tm in enumerate(self.taskmanagers):
            if not tm.alive():
                self.start_taskmanager(i, bind_to_parent=bind_to_parent, wait=False)
        try:
            self.wait_for_slots(len(self.taskmanagers))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch_jobmanager(self, bind_to_parent: bool) -> None:
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ports = {"rpc": free_port(), "blob": free_port(), "rest": free_port()}
        self._write_conf()
        write_json(self.endpoint_path, {**self.ports, "rest_url": self.rest_url})
        jm = self.jobmanager.start(bind_to_parent=bind_to_parent)
        assert jm.proc is not None
        try:
            wait_until(lambda: self.overview() is not None, proc=jm.proc,
                       timeout=self.start_timeout_s, what="answering on its REST port",
                       logs=jm.logs)
        except BaseException:
            self.stop()
            raise
        log.info("flink jobmanager up rest=%s pid=%s seconds=%.1f", self.rest_url, jm.pid,
                 time.monotonic() - started)

    def start_taskmanager(self, i: int, *, bind_to_parent: bool = False,
                          wait: bool = True) -> FlinkNode:
        """(Re)start TaskManager ``i``; with ``wait``, until its slot is registered again."""
        tm = self.taskmanagers[i]
        # new ports every start: the JobManager's RPC system quarantines the address of a
        # TaskManager it lost, so one restarted on the same RPC port registers with the
        # ResourceManager but never gets its slots used (the job then waits forever)
        for kind in ("rpc", "data"):
            self.ports[f"{tm.name}.{kind}"] = free_port()
        write_json(self.endpoint_path, {**self.ports, "rest_url": self.rest_url})
        tm.start(bind_to_parent=bind_to_parent)
        if wait:
            self.wait_for_slots(sum(node.alive() for node in self.taskmanagers))
        return tm

    def kill_taskmanager(self, i: int) -> None:
        """SIGKILL TaskManager ``i`` (a crash: no deregistration, its tasks die with it)."""
        self.taskmanagers[i].kill()
        self.taskmanagers[i].proc = None

    def wait_for_slots(self, taskmanagers: int) -> None:
        """Until the REST API reports ``taskmanagers`` registered TaskManagers and as many slots."""
        jm = self.jobmanager
        if jm.proc is None:
            raise RuntimeError("infra: the Flink JobManager is not running")

        def ready() -> bool:
            for tm in self.taskmanagers:
                if tm.proc is not None and not tm.proc.alive():
                    raise RuntimeError(f"infra: Flink {tm.name} exited\n"
                                       + "\n".join(_tails(tm.logs)))
            info = self.overview()
            return (info is not None and info.get("taskmanagers") == taskmanagers
                    and info.get("slots-total") == taskmanagers)

        began = time.monotonic()
        wait_until(ready, proc=jm.proc, timeout=self.start_timeout_s,
                   what=f"reporting {taskmanagers} TaskManagers",
                   logs=[p for node in self.nodes for p in node.logs])
        log.info("flink cluster ready rest=%s taskmanagers=%s seconds=%.1f", self.rest_url,
                 taskmanagers, time.monotonic() - began)

    def stop(self) -> None:
        """TaskManagers, then the JobManager, each by its pid (SIGTERM, SIGKILL after 20 s)."""
        for node in [*self.taskmanagers, self.jobmanager]:
            node.stop()

    def __enter__(self) -> FlinkCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- REST --------------------------------------------------------------------------------
    @property
    def api(self) -> JobManagerRest:
        return JobManagerRest(self.rest_url)

    def overview(self) -> dict[str, Any] | None:
        return self.api.overview() if self.ports.get("rest") else None

    def _write_conf(self) -> None:
        write_home(self.dir, {
            "jobmanager.rpc.address": LOOPBACK,
            "jobmanager.rpc.port": str(self.ports["rpc"]),
            "jobmanager.bind-host": LOOPBACK,
            "taskmanager.bind-host": LOOPBACK,
            "taskmanager.host": LOOPBACK,
            "rest.address": LOOPBACK,
            "rest.bind-address": LOOPBACK,
            "rest.port": str(self.ports["rest"]),
            "blob.server.port": str(self.ports["blob"]),
            "execution.checkpointing.dir": self.checkpoint_dir.as_uri(),
            "env.pid.dir": str(self.dir / "pids"),
            "web.tmpdir": str(self.dir / "tmp" / "web"),
            **CLUSTER_DEFAULTS,
            **self.overrides,
        })


# -- a Flink "home" of our own: conf/ and lib/ for the scripts of PyFlink's wheel --------------

def write_home(home: Path, conf: Mapping[str, str]) -> None:
    """``home/conf`` (``config.yaml`` from ``conf`` plus what every node and client needs, the
    wheel's log4j files) and ``home/lib`` (links to the wheel's jars, flink-python and the Kafka
    connector). Also what ``flink run`` against an external JobManager uses."""
    conf_dir, lib_dir = home / "conf", home / "lib"
    conf_dir.mkdir(parents=True, exist_ok=True)
    full = {"env.java.opts.all": shipped_java_opts(), "python.executable": sys.executable,
            "python.client.executable": sys.executable, **conf}
    (conf_dir / "config.yaml").write_text(
        "# written by infra/flink_cluster.py\n"
        + "".join(f"{key}: {_yaml_scalar(value)}\n" for key, value in full.items()))
    shipped = paths.pyflink_home() / "conf"
    for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties",
                 "logback-console.xml", "logback.xml"):
        text = (shipped / name).read_text()
        if name == "log4j-console.properties":  # the node's log file only; .out keeps stderr
            text = text.replace("rootLogger.appenderRef.console.ref = ConsoleAppender\n", "")
        (conf_dir / name).write_text(text)
    wheel = paths.pyflink_home()
    jars = [*sorted((wheel / "lib").glob("*.jar")),
            *sorted((wheel / "opt").glob("flink-python-*.jar")), paths.flink_connector_jar()]
    lib_dir.mkdir(parents=True, exist_ok=True)
    for old in lib_dir.iterdir():
        old.unlink()
    for jar in jars:
        (lib_dir / jar.name).symlink_to(jar.resolve())


def home_env(home: Path, log_dir: Path) -> dict[str, str]:
    """The environment PyFlink's ``bin/`` scripts need to use ``home``'s conf and lib, with the
    project and this interpreter's site-packages on ``PYTHONPATH`` (for the ``flink run``
    client and for thread-mode Python in the TaskManagers)."""
    wheel = paths.pyflink_home()
    current = os.environ.get("PYTHONPATH")
    return {**os.environ,
            "FLINK_CONF_DIR": str(home / "conf"), "FLINK_LIB_DIR": str(home / "lib"),
            "FLINK_OPT_DIR": str(wheel / "opt"), "FLINK_PLUGINS_DIR": str(wheel / "plugins"),
            "FLINK_PID_DIR": str(home / "pids"), "FLINK_LOG_DIR": str(log_dir),
            "PYTHONPATH": os.pathsep.join(paths.python_path() + ([current] if current else []))}


def shipped_java_opts() -> str:
    """``env.java.opts.all`` of the wheel's ``conf/config.yaml``: the ``--add-opens`` and
    ``--add-exports`` Flink needs on Java 17 (the client fails without them)."""
    text = (paths.pyflink_home() / "conf" / "config.yaml").read_text()
    found = re.search(r"^\s*all:\s*(--add-\S.*)$", text, re.MULTILINE)
    if found is None:
        raise paths.MissingDependency("infra: no env.java.opts.all in PyFlink's conf/config.yaml")
    return found.group(1).strip()


def _yaml_scalar(value: str) -> str:
    """A config.yaml value: quoted when YAML would read it as something else than a string."""
    return json.dumps(value) if any(c in value for c in ":#{}[],&*!|>'\"%@`") else value


def _tails(logs: list[Path]) -> list[str]:
    return [f"--- {p} ---\n{tail(p)}" for p in logs]
