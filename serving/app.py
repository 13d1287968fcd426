"""The ASGI application and ``recs serve`` (granian).

``create_app(settings, reader=None, now_ms=...)`` builds the app. When no reader is given the
lifespan opens one on ``settings.redis_url`` at start-up (:func:`open_reader`: one Redis or a
Redis Cluster) and closes it at shutdown; a reader passed in belongs to the caller. The clock
is injected so that scores and freshness are deterministic under test.

``recs serve --host H --port P --workers N [--redis-url URL]`` runs it under granian; each
worker builds its app with :func:`app_from_env` from the same environment.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import logging
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any, Final

from recs.settings import Settings
from serving import native
from serving.auth import Access, KeyFile
from serving.deadline import Deadlines
from serving.experiments import load_experiments
from serving.fetch import Reader
from serving.guard import MAX_HEADER_BYTES, MAX_HEADERS, Guard, edge_headers, parse_origins
from serving.models import DEFAULT_REFRESH_MS, RedisModelSource
from serving.params import Query
from serving.publish import Publisher
from serving.request import MAX_BODY_BYTES, Request
from serving.responses import (
    PAYLOAD_TOO_LARGE,
    ApiError,
    Response,
    error_response,
    internal_error,
)
from serving.routes import ACCESS, Handlers, build_router
from serving.rules import load_rules

log = logging.getLogger("serving")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# fail fast when Redis is gone: data endpoints answer degraded instead of hanging
REDIS_CONNECT_TIMEOUT_S: Final = 0.25
REDIS_SOCKET_TIMEOUT_S: Final = 0.5
BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
PRIVATE_DEFAULT: Final = Access.PRIVATE  # a route missing from ACCESS is closed


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def open_reader(redis_url: str) -> Reader:
    """The auto-pipelining reader (:mod:`serving.redis_client`) for ``redis://`` URLs, its
    cluster form (:mod:`serving.cluster_reader`) for ``redis+cluster://`` ones, else redis-py's
    (TLS, unix sockets)."""
    from serving.cluster_reader import ClusterReader
    from serving.redis_client import PipelinedReader
    from state.redis_connect import is_cluster_url
    from state.redis_store import AsyncReader

    if is_cluster_url(redis_url):
        return ClusterReader.from_url(redis_url, connect_timeout_s=REDIS_CONNECT_TIMEOUT_S)
    try:
        return PipelinedReader.from_url(redis_url, connect_timeout_s=REDIS_CONNECT_TIMEOUT_S)
    except ValueError:
        return AsyncReader.from_url(redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
                                    socket_timeout=REDIS_SOCKET_TIMEOUT_S)


class App:
    """Bare ASGI 3 application: routes HTTP requests, runs the lifespan."""

    def __init__(self, settings: Settings, reader: Reader | None,
                 now_ms: Callable[[], int], publisher: Publisher | None,
                 model_refresh_ms: int = DEFAULT_REFRESH_MS,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.guard = Guard(KeyFile(Path(settings.keys_file) if settings.keys_file else None),
                           now_ms=now_ms, monotonic=monotonic,
                           key_rate=settings.rate_key_rps, key_burst=settings.rate_key_burst,
                           addr_rate=settings.rate_addr_rps, addr_burst=settings.rate_addr_burst,
                           cors_origins=parse_origins(settings.cors_origins),
                           private_loopback=settings.private_loopback,
                           auth_off=settings.auth_off)
        self.deadlines = Deadlines(settings.request_timeout_ms / 1000, monotonic)
        rules = load_rules(Path(settings.rules_file) if settings.rules_file else None)
        experiments = load_experiments(
            Path(settings.experiments_file) if settings.experiments_file else None, rules)
        self.handlers = Handlers(reader, now_ms, experiments=experiments, publisher=publisher,
                                 cache_ttl_ms=settings.serve_cache_ttl_ms,
                                 budget_s=settings.serve_budget_ms / 1000,
                                 model_refresh_ms=model_refresh_ms,
                                 kernels=native.load(settings.native),
                                 similar_recent=settings.similar_recent_on)
        self.router = build_router(self.handlers, settings, self.guard)
        self._owns_publisher = False
        self._owns_reader = False  # True once the lifespan opened the reader itself

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:  # websockets: not served
            raise ValueError(f"serving.app: unsupported ASGI scope type {kind!r}")

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path = scope.get("raw_path")
        path = raw_path.decode("latin-1") if raw_path else scope["path"]
        start = time.perf_counter()
        endpoint = "unmatched"
        method = scope["method"]
        headers: dict[str, str] = {}
        try:
            headers = _headers(scope.get("headers", ()))
            if method == "OPTIONS":  # a CORS preflight
                endpoint = "preflight"
                response = Response(204, b"", self.guard.preflight(headers.get("origin")),
                                    b"text/plain; charset=utf-8")
            else:
                handler, params = self.router.match(method, path)
                endpoint = getattr(handler, "__name__", "other")
                query = Query.parse(scope.get("query_string", b""))
                client = scope.get("client")
                principal = self.guard.check(ACCESS.get(endpoint, PRIVATE_DEFAULT), headers,
                                             params, query.raw_user_id(),
                                             client[0] if client else "")
                task = self.deadlines.enter()
                try:
                    body = await _read_body(receive) if method in BODY_METHODS else b""
                    response = await handler(Request(method, path, params, query, headers,
                                                     body, principal))
                except asyncio.CancelledError:
                    if not self.deadlines.timed_out(task):
                        raise
                    response = error_response(ApiError(
                        504, "timeout", f"the request took longer than "
                        f"{self.deadlines.timeout_s:g} s"))
                finally:
                    self.deadlines.leave(task)
        except ApiError as err:
            response = error_response(err)
        except Exception:
            log.exception("serving: unhandled error method=%s path=%s query=%r",
                          scope.get("method"), path, scope.get("query_string", b""))
            response = internal_error()
        metrics = self.handlers.metrics
        metrics.child(metrics.latency, endpoint).observe(time.perf_counter() - start)
        metrics.child(metrics.requests, endpoint, str(response.status)).inc()
        await _send(send, response, self.guard.cors(headers.get("origin")))

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("serving: start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        _tune_gc()
        if self.handlers.reader is None:
            self.handlers.reader = open_reader(self.settings.redis_url)
            self._owns_reader = True
        # the learned models: loaded in the background on a connection of their own (a large
        # snapshot read never queues in front of the requests' MGETs)
        self.handlers.models.start(RedisModelSource.from_url(
            self.settings.redis_url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S))
        if self.handlers.publisher is None and self.settings.kafka_bootstrap:
            self.handlers.publisher = Publisher(self.settings.kafka_bootstrap,
                                                self.settings.topics.interactions)
            self._owns_publisher = True
        log.info("serving: started redis_url=%s", _redact(self.settings.redis_url))

    async def shutdown(self) -> None:
        await self.deadlines.stop()
        models = self.handlers.models
        await models.stop()
        if models.source is not None:
            source, models.source = models.source, None
            await source.close()
        reader = self.handlers.reader
        if self._owns_reader and reader is not None:  # a reader passed in is the caller's
            self.handlers.reader = None
            self._owns_reader = False
            await reader.close()
        publisher = self.handlers.publisher
        if self._owns_publisher and publisher is not None:
            self.handlers.publisher = None
            self._owns_publisher = False
            await publisher.close()


GC_THRESHOLDS: Final = (20_000, 20, 50)


def _tune_gc() -> None:
    """Fewer, cheaper collections: the objects alive after start-up (modules, the app) move to
    the permanent generation, and the young generations are collected less often. A request
    allocates thousands of short-lived objects that reference counting frees anyway; with the
    defaults, full collections over the cache paused the loop for tens of milliseconds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _read_body(receive: Receive) -> bytes:
    """The whole request body; a 413 once it passes :data:`MAX_BODY_BYTES`."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ApiError(413, PAYLOAD_TOO_LARGE,
                           f"request body must be at most {MAX_BODY_BYTES} bytes, got more",
                           limit_bytes=MAX_BODY_BYTES)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _headers(raw: Any) -> dict[str, str]:
    """Request headers by lower-case name (last value wins); a 431 past
    :data:`~serving.guard.MAX_HEADERS` headers or :data:`~serving.guard.MAX_HEADER_BYTES`."""
    headers: dict[str, str] = {}
    size = 0
    for k, v in raw:
        size += len(k) + len(v)
        headers[k.decode("latin-1").lower()] = v.decode("latin-1")
    if size > MAX_HEADER_BYTES or len(raw) > MAX_HEADERS:
        raise ApiError(431, "headers_too_large", f"request headers must be at most "
                       f"{MAX_HEADERS} and {MAX_HEADER_BYTES} bytes, got {len(raw)} and {size}")
    return headers


async def _send(send: Send, response: Response,
                cors: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    head = response.raw_headers()
    head += edge_headers(response.headers, response.content_type, cors)
    await send({"type": "http.response.start", "status": response.status, "headers": head})
    await send({"type": "http.response.body", "body": response.body})


def _redact(url: str) -> str:
    """A Redis URL without its password, for logs."""
    scheme, sep, rest = url.partition("://")
    _creds, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'***@' if at else ''}{host}" if sep else url


def create_app(settings: Settings, reader: Reader | None = None, *,
               now_ms: Callable[[], int] = wall_clock_ms,
               publisher: Publisher | None = None,
               model_refresh_ms: int = DEFAULT_REFRESH_MS,
               monotonic: Callable[[], float] = time.monotonic) -> App:
    """The app; ``reader`` and ``publisher`` passed in belong to the caller, else the lifespan
    opens them from ``settings`` (Redis at start-up, Kafka lazily on first use). The lifespan
    also starts the learned models' refresher (:mod:`serving.models`, every
    ``model_refresh_ms``) on a Redis connection of its own, and stops it at shutdown. Every
    request passes :class:`~serving.guard.Guard` first (keys from ``settings.keys_file``; rate
    limits on ``monotonic`` seconds)."""
    return App(settings, reader, now_ms, publisher, model_refresh_ms, monotonic)


def app_from_env() -> App:
    """Granian's factory target: one app per worker, configured from the environment."""
    return create_app(Settings.from_env())


def _parse(argv: list[str], defaults: Settings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="recs serve", description="run the HTTP server")
    parser.add_argument("--host", default=defaults.http_host)
    parser.add_argument("--port", type=int, default=defaults.http_port)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--redis-url", default=None,
                        help="Redis to read (default: REDIS_URL / RECS_REDIS_URL)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be >= 1, got {args.workers}")
    if not 0 < args.port < 65536:
        parser.error(f"--port must be in 1..65535, got {args.port}")
    return args


def main(argv: list[str]) -> int:
    """``recs serve``: run granian with :func:`app_from_env` until interrupted."""
    from granian.constants import Interfaces
    from granian.log import LOGGING_CONFIG, LogLevels
    from granian.server import Server

    args = _parse(argv, Settings.from_env())
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url  # read by every worker's app_from_env
    log_config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    log_config["loggers"]["serving"] = {"handlers": ["console"], "level": args.log_level.upper(),
                                        "propagate": False}
    server = Server(
        "serving.app:app_from_env",
        address=args.host,
        port=args.port,
        interface=Interfaces.ASGI,
        workers=args.workers,
        factory=True,
        log_level=LogLevels(args.log_level),
        log_dictconfig=log_config,
        log_access=args.access_log,
    )
    server.serve()
    return 0
