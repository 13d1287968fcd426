"""What the server's edge costs per request, in one process: the key check, the rate-limit
buckets, the user token, the header work (:mod:`serving.guard`).

    python -m recs.bench_auth [--calls 20000] [--rounds 5]

Keys are made for the run. Each case runs ``--calls`` times per round; the figure is the best
round's mean (CPU of this process, ``time.process_time_ns``, so other work on a shared machine
inflates it less), in microseconds per request. Cases:

* ``server_key``: ``Guard.check`` of a route for users with a server key (what a storefront
  backend and ``make bench-serve`` send);
* ``public_token``: a public key with a user token for the user of the path (a browser
  polling: the token verified once, then remembered);
* ``token_first_use``: the same with the token not seen before (the HMAC verified);
* ``bad_key``: an unknown key refused (401), address bucket charged;
* ``headers``: request headers read (with the size limits) and the security/CORS headers added
  to an answer, the work every request now does besides the check;
* ``timeout``: the request timeout's bookkeeping (:class:`serving.deadline.Deadlines`: the
  request noted in flight and taken off, in a running loop).

The sum of ``server_key`` (or ``public_token``), ``headers`` and ``timeout`` is the edge's cost
per request (``edge_server_key_us``, ``edge_public_token_us``).
One line of JSON, the machine included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from serving.app import _headers
from serving.auth import Access, KeyFile, sign_token, unb64, write_keys
from serving.deadline import Deadlines
from serving.guard import Guard, edge_headers
from serving.responses import ApiError

NOW_MS = 1_700_000_000_000


def _best_us(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time_ns()
        for _ in range(calls):
            fn()
        best = min(best, (time.process_time_ns() - start) / calls / 1000)
    return round(best, 3)


def _timeout_us(calls: int, rounds: int) -> float:
    async def go() -> float:
        deadlines = Deadlines(10.0, time.monotonic)
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time_ns()
            for _ in range(calls):
                task = deadlines.enter()
                deadlines.leave(task)
            best = min(best, (time.process_time_ns() - start) / calls / 1000)
        await deadlines.stop()
        return round(best, 3)
    return asyncio.run(go())


def run(calls: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        path = Path(tmp) / "keys.toml"
        made = write_keys(path)
        guard = Guard(KeyFile(path), now_ms=lambda: NOW_MS, monotonic=time.monotonic,
                      key_rate=1e12, key_burst=1e12, addr_rate=1e12, addr_burst=1e12)
        token = sign_token(made["token_kid"], unb64(made["token_secret"]), "u123", "s1",
                           exp_s=NOW_MS // 1000 + 600)
        server = {"authorization": f"Bearer {made['server']}", "host": "127.0.0.1:8000",
                  "user-agent": "wrk", "accept": "*/*"}
        public = {**server, "authorization": f"Bearer {made['public']}",
                  "x-recs-token": token}
        bad = {**server, "authorization": "Bearer srv-00000000.not-a-key"}
        params = {"user_id": "u123"}
        raw = [(k.encode(), v.encode()) for k, v in server.items()]

        def refused() -> None:
            with contextlib.suppress(ApiError):
                guard.check(Access.USER, bad, params, None, "10.0.0.1")

        def first_use() -> None:
            guard.forget_tokens()
            guard.check(Access.USER, public, params, None, "127.0.0.1")

        def headers() -> None:
            _headers(raw)
            edge_headers((), b"application/json", ())

        cases = {
            "server_key": lambda: guard.check(Access.USER, server, params, None, "127.0.0.1"),
            "public_token": lambda: guard.check(Access.USER, public, params, None, "127.0.0.1"),
            "token_first_use": first_use,
            "bad_key": refused,
            "headers": headers,
        }
        figures = {name: _best_us(fn, calls, rounds) for name, fn in cases.items()}
        figures["timeout"] = _timeout_us(calls, rounds)
    load1, load5, _ = os.getloadavg()
    return {"us_per_request": figures,
            "edge_server_key_us": round(figures["server_key"] + figures["headers"]
                                        + figures["timeout"], 3),
            "edge_public_token_us": round(figures["public_token"] + figures["headers"]
                                          + figures["timeout"], 3),
            "calls": calls, "rounds": rounds, "python": platform.python_version(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "loadavg_1m": round(load1, 2), "loadavg_5m": round(load5, 2)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recs.bench_auth", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    print(orjson.dumps(run(args.calls, args.rounds)).decode(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
