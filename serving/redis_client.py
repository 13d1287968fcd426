"""The server's Redis reader: one connection, commands of concurrent requests auto-pipelined.

redis-py's asyncio client costs tens of microseconds of Python per command (a connection taken
from a pool, a command object, a lock, a read loop per reply). The server only needs a handful of
read commands, so this reader speaks RESP itself over one asyncio connection and parses replies
with hiredis (redis-py's own parser):

* every command is encoded and appended to a buffer, with a future for its reply; the buffer is
  written once per event-loop iteration, so the commands of every request that ran in that
  iteration leave in one write (auto-pipelining);
* replies arrive in command order and resolve the futures first in, first out; a caller that
  stopped waiting (its time budget ran out) leaves a cancelled future, whose reply is dropped;
* a lost connection fails every waiting command with :class:`ConnectionError` (the server's
  degraded path catches it) and the next command reconnects, bounded by ``connect_timeout_s``;
  a command sent while the oldest one has waited more than ``reply_timeout_s`` drops the
  connection the same way (a Redis that hangs without closing).

:func:`open_reader` picks it for ``redis://`` URLs (host, port, database, password) and falls
back to :class:`state.redis_store.AsyncReader` for anything else (TLS, unix sockets).

>>> encode_command(("MGET", "a", "b"))
b'*3\\r\\n$4\\r\\nMGET\\r\\n$1\\r\\na\\r\\n$1\\r\\nb\\r\\n'
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from typing import Any, Final, cast
from urllib.parse import unquote, urlparse

import hiredis

from state.keys import FRESHNESS_KEY
from state.records import Envelope, decode_envelope

DEFAULT_PORT: Final = 6379


class RedisReplyError(RuntimeError):
    """Redis answered a command with an error reply (names the command and the reply);
    ``reply`` is the reply's text (``MOVED 3999 127.0.0.1:6381`` on a cluster)."""

    def __init__(self, message: str, *, reply: str = "") -> None:
        super().__init__(message)
        self.reply = reply


def encode_command(args: Sequence[str | bytes | int]) -> bytes:
    """One command in RESP (an array of bulk strings)."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        raw = arg if isinstance(arg, bytes) else str(arg).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


def resolve(fut: asyncio.Future[Any], command: object, reply: Any) -> None:
    """A command's future gets its reply (an error reply as :class:`RedisReplyError`); a
    caller that gave up (its budget ran out) left it done, and the reply is dropped."""
    if fut.done():
        return
    if isinstance(reply, hiredis.ReplyError):
        fut.set_exception(RedisReplyError(f"redis: {command} failed: {reply}", reply=str(reply)))
    else:
        fut.set_result(reply)


class RespProtocol(asyncio.Protocol):
    """Replies parsed by hiredis, each resolving the oldest waiting command's future."""

    def __init__(self, owner: PipelinedReader) -> None:
        self.owner = owner
        self.parser = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        self.parser.feed(data)
        waiting = self.owner._waiting
        while True:
            reply = self.parser.gets()
            if reply is False:
                return
            if not waiting:  # nothing asked for it: the stream is out of step
                self.owner._lost(ConnectionError("serving.redis_client: unexpected reply"))
                return
            fut, command, _ = waiting.popleft()
            resolve(fut, command, reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner._lost(ConnectionError(f"serving.redis_client: connection lost ({exc!r})"))


class PipelinedReader:
    """The server's :class:`~serving.fetch.Reader` (module docstring)."""

    protocol: type[RespProtocol] = RespProtocol  # parses the replies (a subclass may extend it)

    def __init__(self, host: str, port: int = DEFAULT_PORT, *, db: int = 0,
                 password: str | None = None, username: str | None = None,
                 connect_timeout_s: float = 0.25, reply_timeout_s: float = 0.5) -> None:
        if connect_timeout_s <= 0 or reply_timeout_s <= 0:
            raise ValueError(f"serving.redis_client: connect_timeout_s and reply_timeout_s must "
                             f"be > 0, got {connect_timeout_s!r}, {reply_timeout_s!r}")
        self.host, self.port, self.db = host, port, db
        self._auth: tuple[str, ...] = ()
        if password is not None:
            self._auth = (username, password) if username else (password,)
        self.connect_timeout_s = connect_timeout_s
        self.reply_timeout_ns = int(reply_timeout_s * 1e9)
        self._transport: asyncio.Transport | None = None
        self._connecting: asyncio.Future[None] | None = None
        self._waiting: collections.deque[tuple[asyncio.Future[Any], object, int]] = \
            collections.deque()
        self._buffer: list[bytes] = []
        self._flush_scheduled = False
        self.commands = 0
        self.writes = 0

    @classmethod
    def from_url(cls, url: str, *, connect_timeout_s: float = 0.25) -> PipelinedReader:
        """``redis://[[user]:password@]host[:port][/db]``; other schemes raise ValueError."""
        parsed = urlparse(url)
        if parsed.scheme != "redis" or not parsed.hostname:
            raise ValueError(f"serving.redis_client: only redis://host URLs, got "
                             f"{parsed.scheme!r} with host {parsed.hostname!r}")
        path = parsed.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"serving.redis_client: the database must be a number, got {path!r}")
        return cls(parsed.hostname, parsed.port or DEFAULT_PORT, db=int(path or 0),
                   password=unquote(parsed.password) if parsed.password else None,
                   username=unquote(parsed.username) if parsed.username else None,
                   connect_timeout_s=connect_timeout_s)

    # ---- commands ------------------------------------------------------------------------
    async def execute(self, *args: str | bytes | int) -> Any:
        if self._transport is None:
            await self._connect()
        return await self._send(args)

    @property
    def connected(self) -> bool:
        return self._transport is not None

    async def ensure_connected(self) -> None:
        """Connect unless connected (raises :class:`ConnectionError` when that fails)."""
        if self._transport is None:
            await self._connect()

    def submit(self, args: Sequence[str | bytes | int]) -> asyncio.Future[Any]:
        """Queue one command on a connected reader (:meth:`ensure_connected`) and return the
        future of its reply: the commands of several nodes can then be awaited together."""
        return self._send(args)

    async def execute_pair(self, first: Sequence[str | bytes | int],
                           then: Sequence[str | bytes | int]) -> Any:
        """Two commands back to back on this connection (``ASKING`` and the command a
        cluster redirected); the second one's reply."""
        await self.ensure_connected()
        head, tail = self._send(first), self._send(then)
        try:
            await head
        finally:
            result = await tail
        return result

    def _send(self, args: Sequence[str | bytes | int]) -> asyncio.Future[Any]:
        return self._enqueue(encode_command(args), str(args[0]), 1)

    def _enqueue(self, data: bytes, label: object, count: int) -> asyncio.Future[Any]:
        """Queue ``count`` encoded commands with one future (``label`` names them in errors,
        and tells :attr:`protocol` what the future waits for)."""
        now = time.monotonic_ns()
        waiting = self._waiting
        if waiting and now - waiting[0][2] > self.reply_timeout_ns:  # Redis hangs: start over
            self._lost(TimeoutError(f"serving.redis_client: no reply from {self.host}:"
                                    f"{self.port} in {self.reply_timeout_ns / 1e9:g} s"))
            if self._transport is None:
                raise ConnectionError("serving.redis_client: connection dropped (no reply)")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        waiting.append((fut, label, now))
        self._buffer.append(data)
        self.commands += count
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return fut

    def _flush(self) -> None:
        self._flush_scheduled = False
        if not self._buffer:
            return
        data, self._buffer = b"".join(self._buffer), []
        if self._transport is None:
            self._lost(ConnectionError("serving.redis_client: not connected"))
            return
        self.writes += 1
        self._transport.write(data)

    async def _connect(self) -> None:
        if self._connecting is not None:  # another request is connecting: wait for it
            await asyncio.shield(self._connecting)
            return
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, _ = await loop.create_connection(
                    lambda: self.protocol(self), self.host, self.port)
                self._transport = transport
                setup: list[Sequence[str | int]] = []
                if self._auth:
                    setup.append(("AUTH", *self._auth))
                if self.db:
                    setup.append(("SELECT", self.db))
                for cmd in setup:
                    await self._send(cmd)
        except BaseException as exc:
            if self._transport is not None:
                self._transport.close()
                self._transport = None
            failed = ConnectionError(f"serving.redis_client: cannot connect to "
                                     f"{self.host}:{self.port} ({exc!r})")
            self._connecting.set_exception(failed)
            self._connecting.exception()  # retrieved here; the waiters re-raise it
            if isinstance(exc, asyncio.CancelledError):
                raise  # the caller's budget ran out: cancellation stays cancellation
            raise failed from exc
        else:
            self._connecting.set_result(None)
        finally:
            self._connecting = None

    def _lost(self, exc: BaseException) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
        self._buffer = []
        waiting, self._waiting = self._waiting, collections.deque()
        for fut, _, _ in waiting:
            if not fut.done():
                fut.set_exception(exc)

    # ---- the Reader contract ---------------------------------------------------------------
    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        return cast(list[bytes | None], await self.execute("MGET", *keys))

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        out: list[Envelope | None] = []
        for raw in await self.get_raw_many(keys):
            env = decode_envelope(raw) if raw is not None else None
            out.append(None if env is None or env.data is None else env)
        return out

    async def freshness(self) -> dict[str, int]:
        flat = cast(list[bytes], await self.execute("HGETALL", FRESHNESS_KEY))
        return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def ping(self) -> bool:
        return bool(await self.execute("PING") == b"PONG")

    async def close(self) -> None:
        self._lost(ConnectionError("serving.redis_client: closed"))
