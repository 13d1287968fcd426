"""The baseline of ``recs bench-serve``: a bare ASGI app that reads one Redis key per request.

``GET /u/{user_id}`` does one ``GET`` of the user's session key (:func:`state.keys.session_key`)
with redis-py asyncio (hiredis parser when installed, as the real server) and returns the stored
bytes as the JSON body (``null`` for a user without a session), always 200. ``GET /healthz``
answers without touching Redis. Nothing else: no routing table, no validation beyond a non-empty
id, no decoding, no ranking. It is the floor the real server is measured against: same interface
(ASGI on granian), same Redis client settings, same worker count.

    python -m recs.bench_baseline --host 127.0.0.1 --port 8100 --workers 1 --redis-url URL
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from recs.settings import Settings
from state.keys import session_key
from state.redis_connect import AsyncClient, async_client

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

USER_PREFIX: Final = "/u/"
HEALTHZ: Final = "/healthz"
_JSON: Final = (b"content-type", b"application/json")


def baseline_path(user_id: str) -> str:
    """Request path of one user on the baseline server.

    >>> baseline_path("u7")
    '/u/u7'
    """
    return USER_PREFIX + user_id


class BaselineApp:
    """ASGI 3: one Redis ``GET`` per request, the raw value returned as the body."""

    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self._redis: AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"bench_baseline: unsupported ASGI scope type {scope['type']!r}")

    async def _http(self, scope: Scope, send: Send) -> None:
        path: str = scope["path"]
        if path.startswith(USER_PREFIX) and len(path) > len(USER_PREFIX):
            if self._redis is None:
                raise RuntimeError("bench_baseline: no Redis client (lifespan not started)")
            raw = await self._redis.get(session_key(path[len(USER_PREFIX):]))
            status, body = 200, (raw if raw is not None else b"null")
        elif path == HEALTHZ:
            status, body = 200, b'{"status":"ok"}'
        else:
            status, body = 404, b'{"error":{"code":"not_found"}}'
        await send({"type": "http.response.start", "status": status,
                    "headers": [_JSON, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # the real server's client settings (imported here, in the worker, only)
                from serving.app import REDIS_CONNECT_TIMEOUT_S, REDIS_SOCKET_TIMEOUT_S

                self._redis = async_client(
                    self.redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                    socket_timeout=REDIS_SOCKET_TIMEOUT_S)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._redis is not None:
                    await self._redis.aclose()
                    self._redis = None
                await send({"type": "lifespan.shutdown.complete"})
                return


def app_from_env() -> BaselineApp:
    """Granian's factory target: one app per worker, Redis from the environment."""
    return BaselineApp(Settings.from_env().redis_url)


def main(argv: list[str]) -> int:
    """Run the baseline under granian, configured as ``recs serve`` runs the real server."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    parser = argparse.ArgumentParser(prog="python -m recs.bench_baseline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url  # read by every worker's app_from_env
    server = Server("recs.bench_baseline:app_from_env", address=args.host, port=args.port,
                    interface=Interfaces.ASGI, workers=args.workers, factory=True,
                    log_level=LogLevels.warning, log_access=False)
    server.serve()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
