"""A real Kafka broker (KRaft, one combined broker+controller node) as a local process.

Alone (the default) the node is a one-voter quorum of its own; given a :class:`QuorumMember` it is
one node of a multi-node quorum (see :mod:`infra.kafka_cluster`), in its own directory.

Everything lives under ``<run_dir>/kafka/`` (``<run_dir>/<name>/``): ``server.properties``,
``data/`` (the log dirs), ``logs/server.log`` (log4j2, see ``infra/log4j2.properties``),
``kafka.out`` (the JVM's stdout and stderr), ``kafka.pid`` and ``endpoint.json`` (ports), so
another process can find, reuse or stop the broker. Storage is formatted once; a restart keeps
topics and data.

Topic helpers live in :mod:`infra.topics` (re-exported here).
"""

from __future__ import annotations

import base64
import logging
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kafka.errors import KafkaError

from infra import paths
from infra.procs import (
    LOOPBACK,
    LocalService,
    Proc,
    free_port,
    port_is_free,
    port_open,
    read_json,
    spawn,
    wait_until,
    write_json,
)
from infra.topics import (
    TopicSpec,
    admin_client,
    default_topics,
    engine_topics,
    ensure_topics,
    partition_counts,
    topic_configs,
)
from recs.settings import Settings

__all__ = ["KafkaBroker", "QuorumMember", "TopicSpec", "default_topics", "engine_topics",
           "ensure_topics", "partition_counts", "topic_configs"]

log = logging.getLogger(__name__)

NODE_ID: Final = 1
# kafka-run-class.sh's defaults for the broker JVM (the heap is fixed per broker: -Xms = -Xmx).
JVM_OPTS: Final = ("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                   "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent",
                   "-Djava.awt.headless=true")

# Sized for a 2-core machine and fast tests: few internal partitions (the first consumer group
# otherwise waits for 50 offsets partitions), no rebalance delay, explicit topics only.
BROKER_DEFAULTS: Final[Mapping[str, str]] = {
    "num.partitions": "4",
    "default.replication.factor": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "auto.create.topics.enable": "false",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.recovery.threads.per.data.dir": "1",
    "log.segment.bytes": str(64 * 1024 * 1024),
    "log.retention.hours": "24",
    "log.retention.check.interval.ms": "60000",
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    "log.cleaner.backoff.ms": "1000",
}


@dataclass(frozen=True, slots=True)
class QuorumMember:
    """A node's place in a multi-node KRaft quorum with a static voter set: its id, every
    voter as ``id@host:controller_port`` (comma-separated), and the cluster id all voters'
    storage is formatted with."""

    node_id: int
    voters: str
    cluster_id: str


def cluster_id() -> str:
    """A random KRaft cluster id (22-char URL-safe base64 of a UUID, like ``random-uuid``).
    One in 64 starts with ``-``, so it is passed as ``--cluster-id=ID``, never as a separate
    argument (the tool would read it as an option)."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class KafkaBroker(LocalService):
    """One local KRaft broker; ``start()`` is a no-op when it already runs for this run dir."""

    managed = True  # a process this object can stop, kill and restart

    stop_timeout_s = 30.0

    def __init__(self, run_dir: Path, *, port: int | None = None,
                 controller_port: int | None = None, heap: str = "1g",
                 overrides: Mapping[str, str] | None = None,
                 topics: Sequence[TopicSpec] | None = None,
                 start_timeout_s: float = 90.0, name: str = "kafka",
                 quorum: QuorumMember | None = None) -> None:
        self.dir = Path(run_dir).resolve() / name
        self.quorum = quorum
        self._want_port, self._want_controller = port, controller_port
        self.heap = heap
        self.overrides = dict(overrides or {})
        self.topics = list(topics) if topics is not None else default_topics(Settings())
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.controller_port = 0
        self.proc: Proc | None = None

    # -- files -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def pid_path(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def endpoint_path(self) -> Path:
        return self.dir / "endpoint.json"

    @property
    def logs(self) -> list[Path]:
        return [self.dir / "kafka.out", self.dir / "logs" / "server.log"]

    @property
    def bootstrap(self) -> str:
        if not self.port:
            raise RuntimeError("infra: KafkaBroker is not started")
        return f"{LOOPBACK}:{self.port}"


    def _markers(self) -> tuple[str, ...]:
        return ("kafka.Kafka", str(self.config_path))

    # -- lifecycle ---------------------------------------------------------------------------

    def adopt(self) -> bool:
        """Attach to a broker a previous ``start()`` (maybe another process) left running."""
        pid = _read_pid(self.pid_path)
        ports = read_json(self.endpoint_path) or {}
        if pid is None or "port" not in ports:
            return False
        proc = Proc("kafka", pid, self._markers())
        if not proc.alive() or not port_open(int(ports["port"])):
            return False
        self.proc, self.port = proc, int(ports["port"])
        self.controller_port = int(ports.get("controller_port", 0))
        return True

    def start(self, *, bind_to_parent: bool = False) -> KafkaBroker:
        if self.alive() or self.adopt():
            self._ensure_topics()
            return self
        # A free port can be taken by someone else between our check and the broker's bind.
        attempts = 1 if self._want_port or self._want_controller else 3
        attempt = 1
        while True:
            try:
                return self._launch(bind_to_parent)
            except RuntimeError as exc:
                if attempt >= attempts or "Address already in use" not in str(exc):
                    raise
                log.warning("kafka ports taken before the broker bound them, retrying")
                self.endpoint_path.unlink(missing_ok=True)
                attempt += 1

    def _launch(self, bind_to_parent: bool) -> KafkaBroker:
        started = time.monotonic()
        self.launch(bind_to_parent=bind_to_parent)
        self.wait_ready()
        log.info("kafka broker up bootstrap=%s pid=%s seconds=%.1f", self.bootstrap,
                 self.pid, time.monotonic() - started)
        return self

    def launch(self, *, bind_to_parent: bool = False) -> None:
        """Format the storage if new and spawn the JVM, without waiting for it: the nodes of a
        quorum are launched together, as none answers before a majority of voters runs."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._pick_ports()
        self._write_config()
        classpath, java = paths.kafka_classpath(), paths.java_binary()
        log_opts = [f"-Dlog4j2.configurationFile={paths.LOG4J_CONFIG}",
                    f"-Dkafka.logs.dir={self.dir / 'logs'}"]
        if not (self.dir / "data" / "meta.properties").exists():
            self._format(java, classpath, log_opts)
        argv = [java, f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_OPTS, *log_opts,
                "-cp", classpath, "kafka.Kafka", str(self.config_path)]
        self.proc = spawn("kafka", argv, log=self.logs[0], cwd=self.dir, markers=self._markers(),
                          bind_to_parent=bind_to_parent)
        self.pid_path.write_text(f"{self.proc.pid}\n")
        write_json(self.endpoint_path, {"port": self.port, "controller_port": self.controller_port,
                                        "bootstrap": self.bootstrap})

    def wait_ready(self) -> None:
        """Wait until the launched broker answers metadata requests, then create its topics;
        stops the broker when it does not come up."""
        if self.proc is None:
            raise RuntimeError(f"infra: the Kafka broker in {self.dir} was not launched")
        proc = self.proc
        try:
            wait_until(lambda: port_open(self.port), proc=proc,
                       timeout=self.start_timeout_s, what="listening", logs=self.logs)
            wait_until(self._answers, proc=proc, timeout=self.start_timeout_s,
                       what="answering metadata requests", logs=self.logs)
            self._ensure_topics()
        except BaseException:
            self.stop()
            raise

    def _ensure_topics(self) -> None:
        if self.topics:
            ensure_topics(self.bootstrap, self.topics)




    # -- helpers -----------------------------------------------------------------------------
    def _pick_ports(self) -> None:
        """Requested ports, else the previous run's (if still free), else fresh free ones."""
        previous = read_json(self.endpoint_path) or {}

        def choose(wanted: int | None, key: str) -> int:
            if wanted:
                return wanted
            old = int(previous.get(key, 0))
            return old if old and port_is_free(old) else free_port()

        self.port = choose(self._want_port, "port")
        self.controller_port = choose(self._want_controller, "controller_port")
        while self.controller_port == self.port:
            self.controller_port = free_port()

    def _write_config(self) -> None:
        listeners = f"PLAINTEXT://{LOOPBACK}:{self.port},CONTROLLER://{LOOPBACK}:{self.controller_port}"
        quorum = ({"node.id": str(NODE_ID),
                   "controller.quorum.bootstrap.servers": f"{LOOPBACK}:{self.controller_port}"}
                  if self.quorum is None else
                  {"node.id": str(self.quorum.node_id),
                   "controller.quorum.voters": self.quorum.voters})
        props = {
            "process.roles": "broker,controller",
            **quorum,
            "listeners": listeners,
            "advertised.listeners": listeners,
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.dir / "data"),
            **BROKER_DEFAULTS,
            **self.overrides,
        }
        self.config_path.write_text("# written by infra/kafka_broker.py\n"
                                    + "".join(f"{k}={v}\n" for k, v in props.items()))

    def _format(self, java: str, classpath: str, log_opts: list[str]) -> None:
        # alone: a dynamic quorum of this one voter; in a quorum: the static voters of the config
        cid, mode = ((cluster_id(), ["--standalone"]) if self.quorum is None
                     else (self.quorum.cluster_id, []))
        out = subprocess.run(
            [java, *log_opts, "-cp", classpath, "kafka.tools.StorageTool", "format",
             *mode, f"--cluster-id={cid}", "-c", str(self.config_path)],
            capture_output=True, text=True, check=False, cwd=self.dir)
        if out.returncode != 0:
            raise RuntimeError(f"infra: formatting Kafka storage in {self.dir / 'data'} failed "
                               f"(exit {out.returncode}):\n{out.stdout}\n{out.stderr}")
        (self.dir / "cluster.id").write_text(cid + "\n")

    def _answers(self) -> bool:
        try:
            with admin_client(self.bootstrap, timeout_s=2.0) as admin:
                admin.list_topics()
        except (KafkaError, OSError):
            return False
        return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None
