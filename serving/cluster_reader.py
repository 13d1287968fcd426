"""The server's Redis reader on a Redis Cluster: reads grouped per node, keys unchanged.

The keys of one request span many hash slots (:mod:`state.keys` puts no hash tags in them: a
session, the lists of the items it viewed and their metadata belong to different entities), so
a request's reads cannot stay on one node. This reader groups them instead:

* the slot map comes from ``CLUSTER SLOTS`` (asked of any node that answers: the masters known,
  then the seeds and the replicas); a key's slot is the CRC16 (XMODEM) of the key, or of its
  hash tag, mod 16384 (:func:`~serving.cluster_slots.key_slot`);
* each master gets one auto-pipelined connection (:class:`NodeReader`, a
  :class:`serving.redis_client.PipelinedReader`), so the commands of every request in one
  event-loop iteration leave each node in one write;
* an ``MGET`` is split per slot (Redis refuses an ``MGET`` across slots even on one node; a
  slot with one key of the read, the usual case, gets a ``GET``); a read's commands for one
  node are queued together with one future (a future per slot cost about a third more), those
  of all nodes are sent at once, and the replies are put back in key order;
* ``MOVED`` (the slot has a new owner): the slot is pointed at the new owner, a full refresh of
  the map is started, and the command is retried once there; ``ASK`` (a slot being migrated):
  ``ASKING`` and the command on the node named, the map unchanged;
* a node that is down (refused, reset, no reply in time) fails its commands with
  :class:`ConnectionError`, as does a cluster that says ``CLUSTERDOWN`` or ``TRYAGAIN`` while a
  master is being replaced: the server's degraded path answers them (flagged ``degraded``,
  never a 500). Every such failure starts a refresh of the map (at most one every
  :data:`REFRESH_EVERY_S`), so once a replica is promoted the reads go to it.

The slot arithmetic and the per-slot commands are :mod:`serving.cluster_slots`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, Final, NoReturn, cast

import hiredis

from serving.cluster_slots import (
    Address,
    SlotMap,
    encode_read,
    group_by_slot,
    key_slot,
    parse_slots,
    read_command,
    redirect_of,
)
from serving.fetch import PartialRead
from serving.redis_client import (
    PipelinedReader,
    RedisReplyError,
    RespProtocol,
    resolve,
)
from state.keys import FRESHNESS_KEY

log = logging.getLogger("serving")

REFRESH_EVERY_S: Final = 0.1  # map refreshes started by failures: at most this often
# error replies that mean "the cluster cannot serve this now": a node is being replaced
_UNAVAILABLE_REPLIES: Final = ("CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN")


class ClusterUnavailable(ConnectionError):
    """The cluster cannot serve a slot now (no owner known, or ``CLUSTERDOWN`` / ``TRYAGAIN``)."""


class _Group:
    """Several commands queued on one node with one future: it gets their replies, in order
    (error replies as ``hiredis.ReplyError`` values, for the caller to read)."""

    __slots__ = ("replies", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.replies: list[Any] = []

    def __str__(self) -> str:
        return f"{self.size} commands"


class _NodeProtocol(RespProtocol):
    """:class:`~serving.redis_client.PipelinedReader`'s protocol, plus :class:`_Group`
    futures."""

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        owner = self.owner
        waiting = owner._waiting
        while True:
            reply = self.parser.gets()
            if reply is False:
                return
            if not waiting:  # nothing asked for it: the stream is out of step
                owner._lost(ConnectionError("serving.cluster_reader: unexpected reply"))
                return
            fut, label, _ = waiting[0]
            if type(label) is _Group:
                label.replies.append(reply)
                if len(label.replies) < label.size:
                    continue
                waiting.popleft()
                if not fut.done():
                    fut.set_result(label.replies)
            else:
                waiting.popleft()
                resolve(fut, label, reply)


class NodeReader(PipelinedReader):
    """One master's auto-pipelined connection; :meth:`submit_group` queues a request's
    commands for this node (one per slot) with one future."""

    protocol = _NodeProtocol

    def submit_group(self, data: bytes, count: int) -> asyncio.Future[list[Any]]:
        """``count`` commands, already encoded (``data``), with one future for their replies."""
        return self._enqueue(data, _Group(count), count)


class ClusterReader:
    """The server's :class:`~serving.fetch.Reader` on a Redis Cluster (module docstring)."""

    def __init__(self, seeds: Iterable[Address], *, password: str | None = None,
                 username: str | None = None, connect_timeout_s: float = 0.25,
                 reply_timeout_s: float = 0.5) -> None:
        self.seeds: tuple[Address, ...] = tuple(seeds)
        if not self.seeds:
            raise ValueError("serving.cluster_reader: at least one seed node is needed, got none")
        self._conn_kw: dict[str, Any] = {"password": password, "username": username,
                                         "connect_timeout_s": connect_timeout_s,
                                         "reply_timeout_s": reply_timeout_s}
        self._nodes: dict[Address, NodeReader] = {}
        self._map: SlotMap | None = None
        self._refreshing: asyncio.Task[SlotMap] | None = None
        self._last_refresh = -REFRESH_EVERY_S
        self.refreshes = 0
        self.redirects = 0

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: float = 0.25) -> ClusterReader:
        """``redis+cluster://[user:password@]host:port[,host:port...]``
        (:func:`state.redis_connect.parse_cluster_url`)."""
        from state.redis_connect import parse_cluster_url

        addr = parse_cluster_url(url)
        return cls(addr.seeds, password=addr.password, username=addr.username,
                   connect_timeout_s=connect_timeout_s)

    @property
    def slot_map(self) -> SlotMap | None:
        return self._map

    def node(self, addr: Address) -> NodeReader:
        """The auto-pipelined connection to one node (made on first use)."""
        found = self._nodes.get(addr)
        if found is None:
            found = self._nodes[addr] = NodeReader(addr[0], addr[1], **self._conn_kw)
        return found

    # ---- the slot map ------------------------------------------------------------------------
    async def refresh(self) -> SlotMap:
        """A new map from the first node that answers ``CLUSTER SLOTS`` (one at a time)."""
        task = self._refreshing
        if task is None or task.done():
            task = self._refreshing = asyncio.ensure_future(self._load())
        return await asyncio.shield(task)

    def _refresh_soon(self) -> None:
        """Start a refresh in the background unless one ran in the last
        :data:`REFRESH_EVERY_S` (a dead master fails every read of its slots)."""
        now = time.monotonic()
        if now - self._last_refresh < REFRESH_EVERY_S:
            return
        if self._refreshing is not None and not self._refreshing.done():
            return
        self._last_refresh = now
        task = self._refreshing = asyncio.ensure_future(self._load())
        task.add_done_callback(_consume)

    async def _load(self) -> SlotMap:
        old = self._map
        asked: list[Address] = []
        if old is not None:
            asked += [*old.masters, *old.replicas]
        asked += [s for s in self.seeds if s not in asked]
        errors: list[str] = []
        for addr in asked:
            try:
                reply = await self.node(addr).execute("CLUSTER", "SLOTS")
                smap = parse_slots(reply, addr)
            except (OSError, RedisReplyError, ValueError) as exc:
                errors.append(f"{addr[0]}:{addr[1]}: {exc}")
                continue
            if any(at < 0 for at in smap.owners) and old is not None and \
                    not any(at < 0 for at in old.owners):
                errors.append(f"{addr[0]}:{addr[1]}: its map does not cover every slot")
                continue
            await self._use(smap)
            return smap
        raise ClusterUnavailable(f"serving.cluster_reader: no node gave a slot map "
                                 f"({'; '.join(errors) or 'none asked'})")

    async def _use(self, smap: SlotMap) -> None:
        self._map = smap
        self.refreshes += 1
        self._last_refresh = time.monotonic()
        keep = {*smap.masters, *self.seeds}
        for addr in [a for a in self._nodes if a not in keep]:  # replicas asked, old masters
            await self._nodes.pop(addr).close()

    async def _current(self) -> SlotMap:
        return self._map if self._map is not None else await self.refresh()

    def _owner(self, smap: SlotMap, slot: int) -> NodeReader:
        addr = smap.owner(slot)
        if addr is None:
            self._refresh_soon()
            raise ClusterUnavailable(f"serving.cluster_reader: slot {slot} has no master")
        return self.node(addr)

    # ---- commands ----------------------------------------------------------------------------
    async def execute_on(self, slot: int, *args: str | bytes | int) -> Any:
        """One command for one slot, following a redirection once."""
        node = self._owner(await self._current(), slot)
        try:
            return await node.execute(*args)
        except RedisReplyError as exc:
            return await self._redirected(exc, args)
        except OSError:
            self._refresh_soon()
            raise

    async def _redirected(self, exc: RedisReplyError, args: Sequence[str | bytes | int]) -> Any:
        """The retry of a command answered ``MOVED`` or ``ASK``; other error replies raise
        (:class:`ClusterUnavailable` for those of a cluster replacing a node)."""
        redirect = redirect_of(exc.reply)
        if redirect is None:
            if exc.reply.startswith(_UNAVAILABLE_REPLIES):
                self._refresh_soon()
                raise ClusterUnavailable(str(exc)) from exc
            raise exc
        kind, slot, addr = redirect
        self.redirects += 1
        node = self.node(addr)
        try:
            if kind == "ASK":
                return await node.execute_pair(("ASKING",), args)
            smap = self._map
            if smap is not None:  # this slot now, every other moved slot with the full refresh
                if addr not in smap.masters:
                    smap = SlotMap(smap.owners, (*smap.masters, addr), smap.replicas)
                owners = list(smap.owners)
                owners[slot] = smap.masters.index(addr)
                self._map = SlotMap(tuple(owners), smap.masters, smap.replicas)
            self._last_refresh = -REFRESH_EVERY_S
            self._refresh_soon()
            return await node.execute(*args)
        except RedisReplyError as again:
            if again.reply.startswith(_UNAVAILABLE_REPLIES):
                raise ClusterUnavailable(str(again)) from again
            raise
        except OSError:
            self._refresh_soon()
            raise

    # ---- the Reader contract -----------------------------------------------------------------
    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values of ``keys`` in order. When some nodes fail (down, no owner for a slot,
        ``CLUSTERDOWN``) it raises :class:`~serving.fetch.PartialRead` with the values the
        other nodes gave: the requests that need none of the lost keys still get theirs."""
        if not keys:
            return []
        smap = await self._current()
        per_node: dict[NodeReader, list[list[int]]] = {}
        lost: list[int] = []  # positions not read
        errors: list[BaseException] = []
        for slot, at in group_by_slot(keys).items():
            try:
                per_node.setdefault(self._owner(smap, slot), []).append(at)
            except ClusterUnavailable as exc:
                errors.append(exc)
                lost += at
        for node in [n for n in per_node if not n.connected]:
            try:
                await node.ensure_connected()
            except OSError as exc:
                errors.append(exc)
                lost += [n for at in per_node.pop(node) for n in at]
        sent = [node.submit_group(b"".join([encode_read(keys, at) for at in slots]), len(slots))
                for node, slots in per_node.items()]
        replies = await asyncio.gather(*sent, return_exceptions=True)
        out: list[bytes | None] = [None] * len(keys)
        for slots, got in zip(per_node.values(), replies, strict=True):
            if isinstance(got, BaseException):
                errors.append(got)
                lost += [n for at in slots for n in at]
                continue
            for at, reply in zip(slots, got, strict=True):
                if isinstance(reply, hiredis.ReplyError):  # MOVED, ASK, CLUSTERDOWN, ...
                    command = read_command(keys, at)
                    try:
                        reply = await self._redirected(RedisReplyError(
                            f"redis: {command[0]!s} failed: {reply}", reply=str(reply)), command)
                    except BaseException as exc:  # raised below, once the others are in
                        errors.append(exc)
                        lost += at
                        continue
                if len(at) == 1:
                    out[at[0]] = reply
                else:
                    for n, raw in zip(at, cast(list[bytes | None], reply), strict=True):
                        out[n] = raw
        if errors:
            self._failed(keys, out, lost, errors)
        return out

    def _failed(self, keys: Sequence[str], out: list[bytes | None], lost: list[int],
                errors: list[BaseException]) -> NoReturn:
        """Raise for a read some of whose nodes failed: the first error that is not the
        cluster's unavailability as it is (a bug, a cancellation), else a
        :class:`~serving.fetch.PartialRead` with what was read."""
        other = next((e for e in errors if not isinstance(e, OSError)), None)
        if other is not None:
            raise other
        self._refresh_soon()
        gone = set(lost)
        found = {key: out[n] for n, key in enumerate(keys) if n not in gone}
        raise PartialRead(f"serving.cluster_reader: {len(gone)} of {len(keys)} keys not read "
                          f"({errors[0]})", found) from errors[0]

    async def freshness(self) -> dict[str, int]:
        flat = cast(list[bytes], await self.execute_on(key_slot(FRESHNESS_KEY), "HGETALL",
                                                       FRESHNESS_KEY))
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def ping(self) -> bool:
        """Every master answers ``PING``."""
        smap = await self._current()
        replies = [await self.node(addr).execute("PING") for addr in smap.masters]
        return all(r == b"PONG" for r in replies)

    async def close(self) -> None:
        task, self._refreshing = self._refreshing, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for node in self._nodes.values():
            await node.close()
        self._nodes.clear()


def _consume(task: asyncio.Future[Any]) -> None:
    """A background refresh's failure is logged, not left unretrieved."""
    if not task.cancelled() and task.exception() is not None:
        log.warning("serving.cluster_reader: slot map refresh failed error=%r", task.exception())
