"""The load generators of ``recs bench-serve``: ``wrk`` and a Python fallback, one interface.

Both are closed loop: each of ``connections`` keep-alive HTTP/1.1 connections sends its next
request when the answer to the previous one has arrived, rotating over a list of request paths
(every request a different path until the list wraps; a run can start at an offset, so that
successive runs go on through the list). Both report the same :class:`Load`.

:func:`open_loop` offers a fixed rate instead (no open-loop generator is packaged in Debian:
``wrk2`` is not), and measures latency from when each request was due.

* **wrk** (Debian package ``wrk``; ``bash infra/ensure-wrk.sh``) runs a generated Lua script that
  pre-formats one request per path and prints its summary as one ``WRK_JSON {...}`` line from
  ``done()``. wrk counts answers with status >= 400 as status errors (our ``non_2xx``).
* **python** (:func:`python_load`, asyncio streams) runs in a separate process so that it does
  not share an interpreter with the harness; it counts every status outside 200-299. It is much
  slower than wrk and takes a core of its own: use it only where wrk cannot be installed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Final

import orjson

WRK: Final = "wrk"
PYTHON: Final = "python"
GENERATORS: Final = (WRK, PYTHON)
LOOPBACK: Final = "127.0.0.1"

WRK_SCRIPT: Final = """\
-- written by recs/bench_load.py: every request is the next path of the list
local paths_file = [==[@PATHS@]==]
local headers = {@HEADERS@}
local reqs, n, i, next_id = {}, 0, 0, 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function init(args)
  for line in io.lines(paths_file) do
    n = n + 1
    reqs[n] = wrk.format("GET", line, headers)
  end
  i = (@OFFSET@ + (tid or 0) * 7919) % n
end
function request()
  i = i % n + 1
  return reqs[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%.0f,"duration_us":%.0f,"status":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"timeout":%.0f,"p50_us":%.1f,"p90_us":%.1f,' ..
    '"p99_us":%.1f,"p999_us":%.1f,"max_us":%.1f}\\n', summary.requests, summary.duration,
    e.status, e.connect, e.read, e.write, e.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency:percentile(99.9), latency.max))
end
"""


@dataclasses.dataclass(frozen=True, slots=True)
class Load:
    """One measured run against one target."""

    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class Loader:
    """How every target is loaded: the same for the real server and the baseline."""

    generator: str  # WRK or PYTHON
    connections: int
    threads: int
    work_dir: Path
    pool: ProcessPoolExecutor | None  # the Python generators' process
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request (the API key)

    def run(self, port: int, paths: Sequence[str], seconds: int, label: str,
            offset: int = 0) -> Load:
        """Closed loop for ``seconds``, starting at ``paths[offset]``."""
        if self.generator == WRK:
            return self._wrk(port, paths, seconds, label, offset)
        if self.pool is None:
            raise RuntimeError("bench_load: the Python load generator has no process pool")
        shifted = [*paths[offset % len(paths):], *paths[:offset % len(paths)]]
        doc = self.pool.submit(python_load, LOOPBACK, port, shifted, self.connections,
                               float(seconds), self.headers).result(timeout=seconds + 120)
        return Load(**doc)

    def open(self, port: int, paths: Sequence[str], rate: float, seconds: int,
             offset: int = 0) -> tuple[Load, int]:
        """Open loop at ``rate`` requests/s (:func:`open_loop`, in the pool's process); the
        load and the number of requests dropped because the target fell behind."""
        if self.pool is None:
            raise RuntimeError("bench_load: the open-loop generator has no process pool")
        doc = self.pool.submit(open_loop, LOOPBACK, port, list(paths), self.connections,
                               rate, float(seconds), offset, self.headers
                               ).result(timeout=seconds + 120)
        dropped = int(doc.pop("dropped"))
        doc.pop("offered_rps")
        return Load(**doc), dropped

    def _wrk(self, port: int, paths: Sequence[str], seconds: int, label: str,
             offset: int = 0) -> Load:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        paths_file = self.work_dir / f"{label}.paths"
        paths_file.write_text("\n".join(paths) + "\n")
        script = self.work_dir / f"{label}.lua"
        lua_headers = ", ".join(f"[ {_lua(k)} ] = {_lua(v)}" for k, v in self.headers)
        script.write_text(WRK_SCRIPT.replace("@PATHS@", str(paths_file.resolve()))
                          .replace("@HEADERS@", lua_headers).replace("@OFFSET@", str(offset)))
        cmd = [WRK, f"-t{min(self.threads, self.connections)}", f"-c{self.connections}",
               f"-d{seconds}s", "--timeout", "5s", "--latency", "-s", str(script),
               f"http://{LOOPBACK}:{port}"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                             check=False)
        (self.work_dir / f"{label}.wrk.txt").write_text(out.stdout + out.stderr)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("WRK_JSON ")]
        if out.returncode != 0 or not lines:
            raise RuntimeError(f"bench_load: wrk failed for {label} (exit {out.returncode}): "
                               f"{(out.stdout + out.stderr)[-2000:]}")
        d = orjson.loads(lines[-1][len("WRK_JSON "):])
        return Load(requests=int(d["requests"]), seconds=d["duration_us"] / 1e6,
                    non_2xx=int(d["status"]),
                    socket_errors=int(d["connect"] + d["read"] + d["write"] + d["timeout"]),
                    p50_ms=d["p50_us"] / 1e3, p90_ms=d["p90_us"] / 1e3,
                    p99_ms=d["p99_us"] / 1e3, p999_ms=d["p999_us"] / 1e3,
                    max_ms=d["max_us"] / 1e3)


def _lua(text: str) -> str:
    """A Lua long-bracket string literal (no escaping needed inside)."""
    if "]==]" in text:
        raise ValueError(f"bench_load: header text cannot contain ']==]': {text!r}")
    return f"[==[{text}]==]"


# ---- the Python load generator (runs in its own process) -----------------------------------

def python_load(host: str, port: int, paths: list[str], connections: int,
                seconds: float, headers: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Closed-loop keep-alive HTTP/1.1 load for ``seconds``; the fields of :class:`Load`."""
    return asyncio.run(_python_load(host, port, paths, connections, seconds, headers))


async def _python_load(host: str, port: int, paths: list[str], connections: int,
                       seconds: float, headers: Sequence[tuple[str, str]] = ()
                       ) -> dict[str, Any]:
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    reqs = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
            for p in paths]
    latencies: list[int] = []
    counts = [0, 0]  # non-2xx, socket errors
    start = time.perf_counter_ns()
    deadline = start + int(seconds * 1e9)
    await asyncio.gather(*(_connection(host, port, reqs, k * len(reqs) // connections, deadline,
                                       latencies, counts) for k in range(connections)))
    elapsed = (time.perf_counter_ns() - start) / 1e9
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] / 1e6

    return {"requests": len(latencies), "seconds": elapsed, "non_2xx": counts[0],
            "socket_errors": counts[1], "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": latencies[-1] / 1e6 if latencies else 0.0}


async def _connection(host: str, port: int, reqs: list[bytes], i: int, deadline: int,
                      latencies: list[int], counts: list[int]) -> None:
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while time.perf_counter_ns() < deadline:
        try:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(host, port)
            sent = time.perf_counter_ns()
            writer.write(reqs[i % len(reqs)])
            i += 1
            status = await _read_response(reader)
            latencies.append(time.perf_counter_ns() - sent)
            if not 200 <= status < 300:
                counts[0] += 1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            counts[1] += 1
            if writer is not None:
                writer.close()
            reader = writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise ValueError("bench_load: answer without content-length")
    end = lower.index(b"\r\n", at + 2)
    await reader.readexactly(int(lower[at + 17:end]))
    return status




# ---- open loop: a fixed offered rate (its own process) -------------------------------------

def open_loop(host: str, port: int, paths: list[str], connections: int, rate: float,
              seconds: float, offset: int = 0,
              headers: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Requests offered at ``rate`` per second for ``seconds``, whatever the answers do: the
    i-th request is due at ``start + i / rate``; it goes out on the first of ``connections``
    keep-alive connections that is free, and its latency runs from when it was *due* (time
    spent waiting for a connection counts: no coordinated omission). Requests still waiting
    more than :data:`OPEN_LOOP_MAX_LAG_S` behind schedule are counted as ``dropped`` (the
    target cannot take the rate) and not sent. The fields of :class:`Load`, plus
    ``offered_rps`` and ``dropped``."""
    return asyncio.run(_open_loop(host, port, paths, connections, rate, seconds, offset,
                                  headers))


OPEN_LOOP_MAX_LAG_S: Final = 2.0
OPEN_LOOP_TICK_S: Final = 0.0005


class _OpenConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of the open-loop client: at most one request out."""

    def __init__(self, done: Any) -> None:
        self.done = done  # callback(conn, due_ns, status | None)
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.due = 0
        self.busy = False
        self.need = -1
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, req: bytes, due: int) -> None:
        self.busy, self.due, self.buf, self.need = True, due, b"", -1
        if self.transport is None:
            raise ConnectionError("bench_load: open-loop connection is closed")
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.need = end + 4
            else:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17:stop if stop > 0 else len(head)])
                self.need = end + 4 + length
        if len(self.buf) >= self.need:
            self.busy = False
            self.done(self, self.due, self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.busy:
            self.busy = False
            self.done(self, self.due, None)


async def _open_loop(host: str, port: int, paths: list[str], connections: int, rate: float,
                     seconds: float, offset: int,
                     headers: Sequence[tuple[str, str]]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers)
    reqs = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}\r\n".encode()
            for p in paths]
    latencies: list[int] = []
    counts = {"non_2xx": 0, "socket_errors": 0, "dropped": 0}
    queue: list[int] = []   # due times of requests waiting for a connection (FIFO)
    head = 0
    free: list[_OpenConn] = []
    sent = 0
    clock = time.perf_counter_ns

    def done(conn: _OpenConn, due: int, status: int | None) -> None:
        latencies.append(clock() - due)
        if status is None:
            counts["socket_errors"] += 1
            return  # the connection is gone; it is not reused
        if not 200 <= status < 300:
            counts["non_2xx"] += 1
        free.append(conn)
        pump()

    def pump() -> None:
        nonlocal head, sent
        while free and head < len(queue):
            conn = free.pop()
            if conn.transport is None:
                continue
            conn.send(reqs[(offset + sent) % len(reqs)], queue[head])
            head += 1
            sent += 1

    for _ in range(connections):
        _, proto = await loop.create_connection(lambda: _OpenConn(done), host, port)
        free.append(proto)
    start = clock()
    period = 1e9 / rate
    total = int(rate * seconds)
    issued = 0
    lag_ns = int(OPEN_LOOP_MAX_LAG_S * 1e9)
    while issued < total:
        now = clock()
        due_count = min(total, int((now - start) / period) + 1)
        while issued < due_count:
            queue.append(start + int(issued * period))
            issued += 1
        while head < len(queue) and now - queue[head] > lag_ns:  # hopelessly behind
            head += 1
            counts["dropped"] += 1
        pump()
        await asyncio.sleep(OPEN_LOOP_TICK_S)
    deadline = clock() + int(5e9)
    while (head < len(queue) or sent > len(latencies)) and clock() < deadline:
        pump()
        await asyncio.sleep(OPEN_LOOP_TICK_S)
    elapsed = (clock() - start) / 1e9
    latencies.sort()

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] / 1e6

    return {"requests": len(latencies), "seconds": elapsed, "non_2xx": counts["non_2xx"],
            "socket_errors": counts["socket_errors"], "p50_ms": pct(50), "p90_ms": pct(90),
            "p99_ms": pct(99), "p999_ms": pct(99.9),
            "max_ms": latencies[-1] / 1e6 if latencies else 0.0,
            "offered_rps": rate, "dropped": counts["dropped"]}
