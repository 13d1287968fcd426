"""A local Kafka cluster: N KRaft nodes (three by default), each a broker and a controller.

The nodes form one quorum of N voters (static: ``controller.quorum.voters``), share one cluster
id and keep everything in their own directory, ``<run_dir>/kafka-cluster/node-<id>/`` (the
layout of :class:`infra.kafka_broker.KafkaBroker`). ``<run_dir>/kafka-cluster/cluster.json``
records the cluster id and every node's ports, so a later process adopts the running nodes
(``recs infra down``) and a restart reuses the ports the voters know each other by.

Topics get :func:`infra.topics.replication` of N: at three brokers a replication factor of 3,
``min.insync.replicas`` 2 and no unclean leader election, so a cluster that loses one broker
loses no acknowledged record and keeps taking ``acks=all`` writes.

>>> with KafkaCluster(run_dir) as cluster:                              # doctest: +SKIP
...     cluster.bootstrap                   # "127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3"
...     cluster.brokers[0].kill()           # SIGKILL one node
...     cluster.brokers[0].start()          # back on its ports, with its data
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from kafka.errors import KafkaError

from infra.kafka_broker import KafkaBroker, QuorumMember, cluster_id
from infra.procs import LOOPBACK, free_port, port_is_free, read_json, write_json
from infra.topics import (
    TopicSpec,
    admin_client,
    broker_count,
    default_topics,
    ensure_topics,
    replication,
)
from recs.settings import Settings

__all__ = ["KafkaCluster"]

log = logging.getLogger(__name__)

# Three JVMs share 2 cores and 24 GiB with Flink, Redis and the tests: a small fixed heap each
# and few threads. Failure detection is quicker than the defaults (9 s session, 2 s heartbeat)
# so a killed broker's partitions move to a new leader within seconds.
HEAP: Final = "384m"
NODE_DEFAULTS: Final = {
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
    "background.threads": "2",
    "broker.heartbeat.interval.ms": "1000",
    "broker.session.timeout.ms": "6000",
    "replica.lag.time.max.ms": "10000",
}
STATE_FILE: Final = "cluster.json"


class KafkaCluster:
    """``brokers`` local KRaft nodes in one quorum; ``start()`` adopts nodes that already run."""

    managed = True  # processes this object can stop, kill and restart

    def __init__(self, run_dir: Path, brokers: int = 3, *,
                 topics: Sequence[TopicSpec] | None = None, heap: str = HEAP,
                 start_timeout_s: float = 120.0) -> None:
        if brokers < 1:
            raise ValueError(f"infra: KafkaCluster brokers must be at least 1, got {brokers!r}")
        self.dir = Path(run_dir).resolve() / "kafka-cluster"
        self.size = brokers
        self.heap = heap
        self.topics = list(topics) if topics is not None else default_topics(Settings())
        self.start_timeout_s = start_timeout_s
        self.replication = replication(brokers)
        self.brokers: list[KafkaBroker] = []
        self._ports: list[tuple[int, int]] = []

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def bootstrap(self) -> str:
        """Every broker, comma-separated (clients need one that answers)."""
        if not self._ports:
            raise RuntimeError("infra: KafkaCluster is not started")
        return ",".join(f"{LOOPBACK}:{port}" for port, _ in self._ports)

    @property
    def pids(self) -> list[int | None]:
        return [b.pid for b in self.brokers]

    @property
    def logs(self) -> list[Path]:
        return [path for b in self.brokers for path in b.logs]

    def broker(self, node_id: int) -> KafkaBroker:
        """The node with Kafka node id ``node_id`` (1-based, as partition leaders name them)."""
        for b in self.brokers:
            if b.quorum is not None and b.quorum.node_id == node_id:
                return b
        raise KeyError(f"infra: no broker with node id {node_id} in {self.dir}")

    # -- lifecycle ---------------------------------------------------------------------------
    def _layout(self) -> tuple[str, list[tuple[int, int]]]:
        """The cluster id and each node's (port, controller port): recorded, else new ones."""
        state = read_json(self.state_path) or {}
        nodes = state.get("nodes", [])
        if state.get("cluster_id") and len(nodes) == self.size:
            return str(state["cluster_id"]), [(int(n["port"]), int(n["controller_port"]))
                                              for n in nodes]
        ports: set[int] = set()
        while len(ports) < 2 * self.size:
            ports.add(free_port())
        chosen = sorted(ports)
        return cluster_id(), [(chosen[2 * i], chosen[2 * i + 1]) for i in range(self.size)]

    def _make_brokers(self) -> None:
        cid, ports = self._layout()
        self._ports = ports
        voters = ",".join(f"{i + 1}@{LOOPBACK}:{controller}"
                          for i, (_, controller) in enumerate(ports))
        overrides = {**NODE_DEFAULTS, **self.replication.broker_configs()}
        self.brokers = [
            KafkaBroker(self.dir, port=port, controller_port=controller, heap=self.heap,
                        overrides=overrides, topics=[], start_timeout_s=self.start_timeout_s,
                        name=f"node-{i + 1}", quorum=QuorumMember(i + 1, voters, cid))
            for i, (port, controller) in enumerate(ports)]
        write_json(self.state_path, {
            "cluster_id": cid, "brokers": self.size,
            "nodes": [{"node_id": i + 1, "port": p, "controller_port": c}
                      for i, (p, c) in enumerate(ports)]})

    def adopt(self) -> bool:
        """Attach to the nodes a previous ``start()`` (maybe another process) left running;
        True when every node runs."""
        if not self.state_path.exists():
            return False
        if not self.brokers:
            self._make_brokers()
        return all(b.alive() or b.adopt() for b in self.brokers)

    def start(self, *, bind_to_parent: bool = False) -> KafkaCluster:
        """Launch every node that does not run, wait until all are registered and a metadata
        request lists them all, then create the topics."""
        started = time.monotonic()
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.brokers:
            self._make_brokers()
        down = [i for i, b in enumerate(self.brokers) if not (b.alive() or b.adopt())]
        taken = [port for i in down for port in self._ports[i] if not port_is_free(port)]
        if taken:
            raise RuntimeError(f"infra: Kafka cluster ports {taken} (recorded in "
                               f"{self.state_path}) are taken by another process; stop it or "
                               "`recs infra down --purge`")
        try:
            for i in down:
                self.brokers[i].launch(bind_to_parent=bind_to_parent)
            for i in down:
                self.brokers[i].wait_ready()
            self._wait_registered()
            ensure_topics(self.bootstrap, self.topics, brokers=self.size)
        except BaseException:
            self.stop()
            raise
        log.info("kafka cluster up brokers=%s bootstrap=%s pids=%s seconds=%.1f", self.size,
                 self.bootstrap, self.pids, time.monotonic() - started)
        return self

    def _wait_registered(self) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        seen = 0
        while True:
            try:
                with admin_client(self.bootstrap, timeout_s=5.0) as admin:
                    seen = broker_count(admin)
            except (KafkaError, OSError) as exc:
                log.debug("kafka cluster: metadata not available yet: %r", exc)
            if seen == self.size:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"infra: the Kafka cluster in {self.dir} lists {seen} of "
                                   f"{self.size} brokers after {self.start_timeout_s:.0f} s")
            time.sleep(0.2)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop every node by its pid: SIGTERM to all at once (a node shutting down alone
        after the others would wait for a quorum that is gone), SIGKILL after ``timeout_s``."""
        if not self.brokers and self.state_path.exists():
            self._make_brokers()
        procs = []
        for b in self.brokers:
            if b.proc is None:
                b.adopt()
            if b.proc is not None:
                procs.append(b.proc)
        for proc in procs:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            if not proc.wait_gone(max(0.1, deadline - time.monotonic())):
                log.warning("kafka cluster: %s (pid %s) ignored SIGTERM; SIGKILL", proc.name,
                            proc.pid)
                proc.kill()
        for b in self.brokers:
            b.proc = None
            b.pid_path.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        """What ``services.json`` records for the cluster."""
        return {"bootstrap": self.bootstrap, "brokers": self.size, "pids": self.pids,
                "ports": [port for port, _ in self._ports], "dir": str(self.dir)}

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
