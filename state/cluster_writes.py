"""The conditional batch write on a Redis Cluster, and the writers' retry on failover.

A Lua script on a cluster may only touch keys of one slot, so :class:`SlotWriter` groups a
batch by slot (the slot Redis computes: CRC16 of the key, or of its ``{hash tag}``) and runs
the same script (``state/apply.lua``) once per slot, the slots of one node in one pipeline
ended by ``WAIT`` for a replica (one round trip per node). The item-vector changelog is a
single key on its own slot, so the per-slot scripts get no changelog members and the batch's
item-vector versions are added afterwards with ``ZADD GT``: a version the script refused
(older than the stored one) is below the score the newer write already logged, so ``GT``
leaves the log exactly as the single-Redis script would, and it is written after the values,
so a reader that follows the log finds them.

:func:`retrying` repeats a whole write while the cluster fails over (connection refused,
``MOVED``/``ASK`` mid-change, ``CLUSTERDOWN``, ``TRYAGAIN``, ``READONLY``, a promoted replica
without the script), with exponential backoff up to a deadline. Re-applying is safe: every
write is version-checked, so a write that landed before the error is not undone by the retry.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import redis
import redis.cluster as synccluster
from redis.crc import key_slot
from redis.exceptions import (
    AskError,
    ClusterError,
    NoScriptError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Error replies that mean "the cluster is changing its mind": try again shortly.
TRANSIENT_REPLIES: Final = ("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN", "READONLY", "LOADING",
                            "MASTERDOWN", "NOSCRIPT")

# ConnectionError covers BusyLoadingError; ClusterError covers CLUSTERDOWN and MASTERDOWN;
# AskError covers MOVED (redis-py strips the reply's first word from these).
_TRANSIENT_TYPES: Final = (redis.ConnectionError, redis.TimeoutError, ClusterError,
                           RedisClusterException, AskError, TryAgainError, ReadOnlyError,
                           NoScriptError)


NO_REPLICA_RECHECK_S: Final = 5.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry schedule: ``first_s`` doubling up to ``max_s``, until ``deadline_s`` in total."""

    first_s: float = 0.05
    max_s: float = 1.0
    deadline_s: float = 60.0


DEFAULT_BACKOFF: Final = Backoff()


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is what a failover or a resharding looks like to a client.

    >>> is_transient(redis.ConnectionError("refused")), is_transient(ResponseError("WRONGTYPE"))
    (True, False)
    >>> is_transient(ResponseError("CLUSTERDOWN The cluster is down"))
    True
    """
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if isinstance(exc, ResponseError):
        # a pipeline's error names the command first: "Command # 3 (EVALSHA ...) of ..."
        head = str(exc).split(" of pipeline caused error: ", 1)[-1]
        return head.split(" ", 1)[0].upper() in TRANSIENT_REPLIES
    return False


def retrying(what: str, attempt: Callable[[], T], *, backoff: Backoff = DEFAULT_BACKOFF,
             on_retry: Callable[[BaseException], None] | None = None,
             sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> T:
    """``attempt()``, repeated on transient errors (:func:`is_transient`) with backoff until
    ``backoff.deadline_s``; any other error, or the deadline, raises the last error."""
    began = clock()
    delay = backoff.first_s
    tries = 0
    while True:
        try:
            return attempt()
        except Exception as exc:  # only transient ones are retried; others re-raised
            tries += 1
            if not is_transient(exc) or clock() - began + delay > backoff.deadline_s:
                raise
            log.warning("redis: %s failed (%s: %.200s); retry %d in %.2f s", what,
                        type(exc).__name__, exc, tries, delay)
            if on_retry is not None:
                on_retry(exc)
            sleep(delay * (0.5 + random.random() / 2))  # jitter: writers do not retry in step
            delay = min(delay * 2, backoff.max_s)


def group_by_slot(keys: Sequence[str]) -> dict[int, list[int]]:
    """Indexes of ``keys`` grouped by cluster slot, in first-seen order.

    >>> group_by_slot(["a{x}", "b", "c{x}"]) == {key_slot(b"x"): [0, 2], key_slot(b"b"): [1]}
    True
    """
    groups: dict[int, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key_slot(key.encode()), []).append(i)
    return groups


class SlotWriter:
    """Runs ``state/apply.lua`` per slot on a cluster: the slots of one node in one pipeline on
    that node's connection, closed by ``WAIT`` so a write counts as done only once a replica
    has it (replication is asynchronous: without it a failover loses what the master
    acknowledged last, and the writer, having committed its offsets, would never rewrite it).
    A node whose ``WAIT`` finds no replica (its replica died, or it is a promoted replica) is
    not waited on for :data:`NO_REPLICA_RECHECK_S`, so a degraded shard costs one timeout."""

    def __init__(self, client: synccluster.RedisCluster, script: Any, *, replicas: int = 1,
                 wait_ms: int = 1000, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.script = script
        self.replicas = replicas
        self.wait_ms = wait_ms
        self.clock = clock
        self._skip_wait_until: dict[str, float] = {}
        self.load_script()

    def load_script(self) -> None:
        """``SCRIPT LOAD`` on every master (a promoted replica may not have it)."""
        self.client.script_load(self.script.script)

    def refresh(self) -> None:
        """Re-read the slot map (after a failover moved slots, or a node died)."""
        self.client.nodes_manager.initialize()

    def apply(self, keys: Sequence[str], args: Sequence[Sequence[Any]], log_key: str,
              changelog: Sequence[tuple[str, int]]) -> int:
        """Write ``keys`` with their per-key ``args`` (version, envelope, ttl, member: the
        member is passed as ``""``), then ``ZADD GT`` the ``changelog`` ``(member, version)``
        pairs on ``log_key``. Returns how many keys the scripts wrote."""
        by_node: dict[str, list[list[int]]] = {}
        nodes: dict[str, Any] = {}
        for slot, idx in group_by_slot(keys).items():
            node = self.client.nodes_manager.get_node_from_slot(slot)
            by_node.setdefault(node.name, []).append(idx)
            nodes[node.name] = node
        applied = 0
        for name, groups in by_node.items():
            applied += self._apply_on(nodes[name], groups, keys, args, log_key)
        if changelog:
            newest: dict[str, int] = {}
            for member, version in changelog:
                newest[member] = max(version, newest.get(member, version))
            self.client.zadd(log_key, {m: float(v) for m, v in newest.items()}, gt=True)
        return applied

    def _apply_on(self, node: Any, groups: list[list[int]], keys: Sequence[str],
                  args: Sequence[Sequence[Any]], log_key: str) -> int:
        pipe = self.client.get_redis_connection(node).pipeline(transaction=False)
        for idx in groups:
            flat: list[Any] = []
            for i in idx:
                version, envelope, ttl, _member = args[i]
                flat += [version, envelope, ttl, ""]
            flat.append(log_key)
            pipe.evalsha(self.script.sha, len(idx), *[keys[i] for i in idx], *flat)
        wait = self.replicas > 0 and self.clock() >= self._skip_wait_until.get(node.name, 0.0)
        if wait:
            pipe.execute_command("WAIT", self.replicas, self.wait_ms)  # type: ignore[no-untyped-call]
        try:
            replies = pipe.execute()
        except NoScriptError:
            self.load_script()
            raise
        if wait and int(replies[-1]) < self.replicas:
            log.warning("redis: %s has no replica acknowledging writes (WAIT %d ms); not "
                        "waiting on it for %.0f s", node.name, self.wait_ms,
                        NO_REPLICA_RECHECK_S)
            self._skip_wait_until[node.name] = self.clock() + NO_REPLICA_RECHECK_S
        return sum(int(n) for n in replies[:len(groups)])
