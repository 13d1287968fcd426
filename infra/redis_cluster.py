"""A real Redis Cluster as local processes: ``masters`` masters with ``replicas`` replicas each.

Every node is a ``redis-server`` (the same binary and persistence settings as
:mod:`infra.redis_server`: nothing saved) with ``cluster-enabled yes``, on a free loopback port
whose cluster bus port (port + 10000) is free too, in its own directory
``<run_dir>/redis-cluster/node-N/`` (``redis.conf``, ``nodes.conf``, logs, pid file). The
cluster is formed through redis-py alone (``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET``,
``CLUSTER REPLICATE``), so ``redis-cli`` is not needed, and :meth:`RedisCluster.start` returns
once every node reports ``cluster_state:ok`` and every replica is attached.

``cluster-node-timeout`` is :data:`NODE_TIMEOUT_MS` so a killed master is replaced within a few
seconds; ``cluster-require-full-coverage no`` keeps the other shards answering while one shard
fails over (writes to its slots fail, and the writers retry them).

>>> with RedisCluster(run_dir) as cluster:                                 # doctest: +SKIP
...     client = sync_client(cluster.url)
...     cluster.kill_master(0)
...     cluster.wait_for_failover()
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

import redis

from infra.procs import LOOPBACK, port_is_free, read_json, write_json
from infra.redis_server import RedisServer
from state.redis_connect import cluster_url

log = logging.getLogger(__name__)

SLOTS: Final = 16384
BUS_OFFSET: Final = 10000  # Redis listens for its cluster bus on port + 10000
NODE_TIMEOUT_MS: Final = 1500
SUBDIR: Final = "redis-cluster"
STATE_FILE: Final = "cluster.json"


class ClusterNode(RedisServer):
    """One node of the cluster: a :class:`RedisServer` with cluster mode on."""

    name = "redis-cluster-node"

    def __init__(self, run_dir: Path, index: int, *, port: int | None = None) -> None:
        super().__init__(run_dir, port=port, subdir=f"{SUBDIR}/node-{index}")
        self.index = index

    def config_lines(self) -> list[str]:
        return [*super().config_lines(),
                "cluster-enabled yes",
                "cluster-config-file nodes.conf",
                f"cluster-node-timeout {NODE_TIMEOUT_MS}",
                "cluster-replica-validity-factor 0",  # a replica always may take over
                "cluster-require-full-coverage no",
                "cluster-allow-reads-when-down no",
                # a replica's first full sync starts at once (the default waits 5 s for
                # more replicas to share one diskless transfer)
                "repl-diskless-sync-delay 0"]

    def client(self, timeout_s: float = 2.0) -> redis.Redis:
        return redis.Redis(host=LOOPBACK, port=self.port, socket_timeout=timeout_s,
                           socket_connect_timeout=timeout_s)

    def call(self, *args: Any) -> Any:
        """One command on this node alone (a fresh connection, closed after)."""
        conn = self.client()
        try:
            return conn.execute_command(*args)  # type: ignore[no-untyped-call]
        finally:
            conn.close()

    def info(self, section: str) -> dict[str, Any]:
        """``INFO section`` of this node, parsed."""
        conn = self.client()
        try:
            return dict(conn.info(section))
        finally:
            conn.close()

    def start(self, *, bind_to_parent: bool = False) -> ClusterNode:
        super().start(bind_to_parent=bind_to_parent)
        return self


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    role: str  # "master" or "slave"
    master_id: str  # "-" for masters
    failed: bool
    connected: bool
    slots: tuple[tuple[int, int], ...]


def parse_cluster_nodes(text: str) -> list[NodeInfo]:
    """``CLUSTER NODES`` output as :class:`NodeInfo` rows.

    >>> rows = parse_cluster_nodes(
    ...   "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 6000\\n"
    ...   "b2 127.0.0.1:7001@17001 slave,fail a1 0 0 1 disconnected\\n")
    >>> rows[0].slots, rows[1].role, rows[1].failed, rows[1].connected
    (((0, 5460), (6000, 6000)), 'slave', True, False)
    """
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        flags = set(fields[2].split(","))
        port = int(fields[1].split("@")[0].rsplit(":", 1)[1] or 0)
        slots = []
        for part in fields[8:]:
            if part.startswith("["):  # a slot being migrated/imported
                continue
            lo, _, hi = part.partition("-")
            slots.append((int(lo), int(hi or lo)))
        out.append(NodeInfo(fields[0], port, "master" if "master" in flags else "slave",
                            fields[3], bool(flags & {"fail", "fail?"}),
                            fields[7] == "connected", tuple(slots)))
    return out


def _cluster_ports(n: int, rng: random.Random) -> list[int]:
    """``n`` ports that are free with their bus ports (port + 10000) free too."""
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(12000, 55000)
        if port in ports or port + BUS_OFFSET in ports:
            continue
        if port_is_free(port) and port_is_free(port + BUS_OFFSET):
            ports.append(port)
    return ports


class RedisCluster:
    """A local Redis Cluster; nodes ``0..masters-1`` start as masters, the rest as replicas
    (replica ``masters + k`` follows master ``k % masters``)."""

    managed = True

    def __init__(self, run_dir: Path, masters: int = 3, replicas: int = 1, *,
                 start_timeout_s: float = 60.0) -> None:
        if masters < 1:
            raise ValueError(f"infra.RedisCluster: masters={masters}, expected >= 1")
        if replicas < 0:
            raise ValueError(f"infra.RedisCluster: replicas={replicas}, expected >= 0")
        self.run_dir = Path(run_dir).resolve()
        self.dir = self.run_dir / SUBDIR
        self.n_masters, self.n_replicas = masters, replicas
        self.start_timeout_s = start_timeout_s
        self.nodes: list[ClusterNode] = []
        self._killed_slots: dict[int, int] = {}  # port -> first slot it served when killed
        self._bind_to_parent = False

    # -- addresses -------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def url(self) -> str:
        """``redis+cluster://127.0.0.1:P1,...`` (every node is a seed)."""
        if not self.nodes:
            raise RuntimeError("infra: RedisCluster is not started")
        return cluster_url([(LOOPBACK, n.port) for n in self.nodes])

    @property
    def ports(self) -> list[int]:
        return [n.port for n in self.nodes]

    @property
    def pids(self) -> list[int | None]:
        return [n.pid for n in self.nodes]

    @property
    def pid(self) -> int | None:
        """The first node's pid (what ``services.json`` shows for one service)."""
        return self.nodes[0].pid if self.nodes else None

    def describe(self) -> dict[str, Any]:
        """What ``recs infra up`` records (and :meth:`adopt` reads back)."""
        return {"url": self.url, "masters": self.n_masters, "replicas": self.n_replicas,
                "ports": self.ports, "pids": self.pids}

    # -- lifecycle -------------------------------------------------------------------------

    def adopt(self) -> bool:
        """Attach to a cluster a previous ``start()`` (maybe another process) left running."""
        state = read_json(self.state_path)
        if not state:
            return False
        self.n_masters = int(state["masters"])
        self.n_replicas = int(state["replicas"])
        nodes = [ClusterNode(self.run_dir, i) for i in range(len(state["ports"]))]
        if not all(n.adopt() for n in nodes):
            return False
        self.nodes = nodes
        return True

    def alive(self) -> bool:
        return bool(self.nodes) and all(n.alive() for n in self.nodes)

    def start(self, bind_to_parent: bool = False) -> RedisCluster:
        """Start the nodes, form the cluster and wait until it serves every slot."""
        if self.alive() or (not self.nodes and self.adopt()):
            return self
        self.stop()  # what is left of a cluster that is no longer whole, stopped by pid
        self.nodes = []
        began = time.monotonic()
        self._bind_to_parent = bind_to_parent
        total = self.n_masters * (1 + self.n_replicas)
        ports = _cluster_ports(total, random.Random())
        self.dir.mkdir(parents=True, exist_ok=True)
        for sub in self.dir.glob("node-*/nodes.conf"):  # a new cluster, not the old one's ids
            sub.unlink()
        self.nodes = [ClusterNode(self.run_dir, i, port=p) for i, p in enumerate(ports)]
        try:
            for node in self.nodes:
                node.start(bind_to_parent=bind_to_parent)
            self._form()
            self.wait_ok(self.start_timeout_s)
        except BaseException:
            self.stop()
            raise
        write_json(self.state_path, self.describe())
        log.info("redis cluster up url=%s masters=%d replicas=%d seconds=%.1f", self.url,
                 self.n_masters, self.n_replicas, time.monotonic() - began)
        return self

    def _form(self) -> None:
        masters = self.nodes[:self.n_masters]
        for epoch, node in enumerate(self.nodes, start=1):
            node.call("CLUSTER", "SET-CONFIG-EPOCH", epoch)
        per = SLOTS // self.n_masters
        for i, node in enumerate(masters):
            lo, hi = i * per, (SLOTS - 1 if i == self.n_masters - 1 else (i + 1) * per - 1)
            node.call("CLUSTER", "ADDSLOTSRANGE", lo, hi)
        for node in self.nodes[1:]:
            node.call("CLUSTER", "MEET", LOOPBACK, self.nodes[0].port)
        ids = [_decode(n.call("CLUSTER", "MYID")) for n in self.nodes]
        self._wait(lambda: all(len(self._view(n)) == len(self.nodes) for n in self.nodes),
                   self.start_timeout_s, "every node knowing every other")
        for k, node in enumerate(self.nodes[self.n_masters:]):
            node.call("CLUSTER", "REPLICATE", ids[k % self.n_masters])

    def stop(self) -> None:
        """Stop every node by its pid (adopting them from their pid files if need be)."""
        if not self.nodes:
            self.adopt()
        if not self.nodes:  # nothing recorded; a node dir may still hold a pid file
            self.nodes = [ClusterNode(self.run_dir, int(d.name.split("-")[1]))
                          for d in sorted(self.dir.glob("node-*"))]
        for node in self.nodes:
            node.stop()
        self.state_path.unlink(missing_ok=True)

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def restart_dead(self, timeout_s: float = 30.0) -> list[ClusterNode]:
        """Start again every node that is not running (they rejoin from their ``nodes.conf``,
        a former master as a replica of the node that took over), then :meth:`wait_ok`."""
        dead = [n for n in self.nodes if not n.alive()]
        for node in dead:
            node.start(bind_to_parent=self._bind_to_parent)
        if dead:
            self.wait_ok(timeout_s)
        return dead

    def flushall(self) -> None:
        """Delete every key (``FLUSHALL`` on each current master)."""
        for node in self.masters():
            node.call("FLUSHALL")

    # -- topology --------------------------------------------------------------------------

    def _view(self, node: ClusterNode) -> list[NodeInfo]:
        try:
            return parse_cluster_nodes(_decode(node.call("CLUSTER", "NODES")))
        except redis.RedisError:
            return []

    def _live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.alive()]

    def topology(self) -> list[NodeInfo]:
        """``CLUSTER NODES`` as the first live node answers it."""
        for node in self._live():
            view = self._view(node)
            if view:
                return view
        raise RuntimeError("infra: no node of the Redis Cluster answers CLUSTER NODES")

    def masters(self) -> list[ClusterNode]:
        """The nodes that currently serve slots as masters (not failed), by first slot."""
        by_port = {n.port: n for n in self.nodes}
        rows = [r for r in self.topology() if r.role == "master" and r.slots and not r.failed]
        rows.sort(key=lambda r: r.slots[0][0])
        return [by_port[r.port] for r in rows if r.port in by_port]

    def kill_master(self, i: int) -> ClusterNode:
        """SIGKILL the ``i``-th current master (by first slot); returns that node."""
        current = self.masters()
        if not 0 <= i < len(current):
            raise ValueError(f"infra.RedisCluster.kill_master: i={i}, the cluster has "
                             f"{len(current)} masters")
        node = current[i]
        row = next(r for r in self.topology() if r.port == node.port)
        self._killed_slots[node.port] = row.slots[0][0]
        node.kill()
        log.info("redis cluster: killed master port=%s", node.port)
        return node

    def healthy(self) -> bool:
        """Every live node says ``cluster_state:ok``, sees every slot served by
        ``n_masters`` masters it does not consider failed, and all agree which."""
        live = self._live()
        if not live:
            return False
        views = set()
        for node in live:
            try:
                info = _decode(node.call("CLUSTER", "INFO"))
            except redis.RedisError:
                return False
            if "cluster_state:ok" not in info:
                return False
            view = self._view(node)
            masters = [r for r in view if r.role == "master" and r.slots and not r.failed]
            covered = sum(hi - lo + 1 for r in masters for lo, hi in r.slots)
            if covered != SLOTS or len(masters) != self.n_masters:
                return False
            views.add(frozenset((r.port, r.slots) for r in masters))
        return len(views) == 1  # every live node agrees on who serves what

    def replicas_attached(self) -> bool:
        """Every live replica follows a live master with its link up."""
        for node in self._live():
            try:
                info = node.info("replication")
            except redis.RedisError:
                return False
            if info.get("role") == "slave" and info.get("master_link_status") != "up":
                return False
        expected = self.n_masters * self.n_replicas
        view = self.topology()
        healthy = [r for r in view if r.role == "slave" and not r.failed and r.connected]
        return len(healthy) >= min(expected, len(self._live()) - self.n_masters)

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Wait until :meth:`healthy` and :meth:`replicas_attached`."""
        self._wait(lambda: self.healthy() and self.replicas_attached(), timeout_s,
                   "cluster_state:ok on every node with every replica attached")

    def replicated(self) -> bool:
        """Every live replica has acknowledged its master's whole replication stream."""
        for node in self.masters():
            try:
                info = node.info("replication")
            except redis.RedisError:
                return False
            offset = info.get("master_repl_offset")
            slaves = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            if any(s.get("offset") != offset for s in slaves):
                return False
        return True

    def wait_replicated(self, timeout_s: float = 10.0) -> None:
        """Wait until :meth:`replicated` (replication is asynchronous)."""
        self._wait(self.replicated, timeout_s, "replicated to every replica")

    def wait_for_failover(self, killed: ClusterNode | None = None,
                          timeout_s: float = 30.0) -> ClusterNode | None:
        """Wait until the live nodes serve every slot again after a master was killed;
        returns the node that now serves the first slot ``killed`` served (None when
        ``killed`` is not given or was not killed by :meth:`kill_master`)."""
        slot = None if killed is None else self._killed_slots.get(killed.port)
        by_port = {n.port: n for n in self.nodes}

        def owner() -> ClusterNode | None:
            for row in self.topology():
                if row.role == "master" and not row.failed \
                        and any(lo <= cast(int, slot) <= hi for lo, hi in row.slots):
                    return by_port.get(row.port)
            return None

        def taken_over() -> bool:
            if slot is None:
                return True
            now = owner()
            return now is not None and now.port != cast(ClusterNode, killed).port

        self._wait(lambda: taken_over() and self.healthy(), timeout_s,
                   "serving every slot after a failover")
        return None if slot is None else owner()

    def _wait(self, ready: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"infra: Redis Cluster under {self.dir} not {what} after "
                                   f"{timeout_s:.0f} s; logs: "
                                   + ", ".join(str(n.logs[1]) for n in self.nodes))
            time.sleep(0.1)


def _decode(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
