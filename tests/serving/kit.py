"""Helpers of the server tests: constants, a minimal in-process ASGI client, the data every
test starts from."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from infra.procs import free_port
from recs.settings import Settings
from serving.app import App, create_app
from serving.auth import sign_token, unb64, write_keys
from serving.models import RedisModelSource
from state.keys import (
    bought_key,
    item_key,
    session_key,
    similar_key,
    trending_key,
)
from state.records import Update
from state.redis_store import AsyncReader, RedisStore

REPO = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000_000  # the injected clock, ms
HOUR_S = 3600.0
T_TREND = NOW - 60_000
T_SIM = NOW - 120_000
T_SESSION = NOW - 5_000


# ---- credentials: generated for this test run, never committed -------------------------------

@dataclass(frozen=True)
class Creds:
    keys_file: str
    server: str         # a server-scope key
    public: str         # a public-scope key
    token_kid: str
    token_secret: bytes

    def token(self, user: str, session: str = "s1", *, now_ms: int = NOW,
              ttl_s: int = 900) -> str:
        """A user token as a storefront backend signs it, valid at ``now_ms``."""
        return sign_token(self.token_kid, self.token_secret, user, session,
                          exp_s=now_ms // 1000 + ttl_s)

    def server_headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {self.server}".encode())]

    def browser_headers(self, user: str, session: str = "s1", *,
                        now_ms: int = NOW) -> list[tuple[bytes, bytes]]:
        return [(b"authorization", f"Bearer {self.public}".encode()),
                (b"x-recs-token", self.token(user, session, now_ms=now_ms).encode())]


@functools.cache
def creds() -> Creds:
    """A keys file with fresh random keys, written once per test process (``recs keys new``
    writes the same file for a deployment)."""
    path = Path(tempfile.mkdtemp(prefix="recs-keys-")) / "keys.toml"
    made = write_keys(path)
    return Creds(str(path), made["server"], made["public"], made["token_kid"],
                 unb64(made["token_secret"]))


def server_auth() -> dict[str, str]:
    """The header a storefront backend sends (a server key), for HTTP clients."""
    return {"Authorization": f"Bearer {creds().server}"}


def auth_env() -> dict[str, str]:
    """The environment that gives a ``recs serve`` started by a test the test keys."""
    return {"RECS_KEYS_FILE": creds().keys_file}


# ---- a minimal in-process ASGI client ------------------------------------------------------

@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[bytes, bytes]
    json: Any


Headers = list[tuple[bytes, bytes]]


class AsgiClient:
    """Sends requests straight into an ASGI app; runs its lifespan on request. It calls as the
    storefront's backend does (a server key) unless a request gives its own ``headers``."""

    def __init__(self, app: App, headers: Headers | None = None) -> None:
        self.app = app
        self.headers = creds().server_headers() if headers is None else headers

    async def get(self, url: str, *, headers: Headers | None = None) -> Reply:
        return await self.call("GET", url, headers=headers)

    async def post(self, url: str, doc: Any = None, *, raw: bytes | None = None,
                   headers: Headers | None = None) -> Reply:
        return await self.call("POST", url, raw if raw is not None else orjson.dumps(doc),
                               headers=headers)

    async def call(self, method: str, url: str, body: bytes = b"", *,
                   headers: Headers | None = None, client: str = "127.0.0.1") -> Reply:
        path, _, query = url.partition("?")
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": unquote(path),
                 "raw_path": path.encode(), "query_string": query.encode(),
                 "headers": self.headers if headers is None else headers,
                 "client": (client, 50000), "server": ("127.0.0.1", 80)}
        return await self.request(scope, body)

    async def request(self, scope: MutableMapping[str, Any], body: bytes = b"") -> Reply:
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start, out = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
        assert start["type"] == "http.response.start"
        headers = dict(start["headers"])
        assert headers[b"content-length"] == str(len(out)).encode()
        is_json = headers[b"content-type"].startswith(b"application/json")
        return Reply(start["status"], headers, orjson.loads(out) if is_json else out)

    async def lifespan(self, event: str) -> str:
        queue: asyncio.Queue[MutableMapping[str, Any]] = asyncio.Queue()
        await queue.put({"type": f"lifespan.{event}"})
        replies: list[str] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            replies.append(message["type"])

        task = asyncio.ensure_future(self.app({"type": "lifespan"}, queue.get, send))
        while not replies:
            await asyncio.sleep(0.001)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return replies[0]


def run(redis_url: str, body: Callable[[AsgiClient], Awaitable[Any]], *,
         now: int = NOW, reader_url: str | None = None, cache_ttl_ms: int = 1000,
         publisher: Any = None, rules_file: str = "", experiments_file: str = "",
         metrics_targets: str = "", models_page: int | None = None,
         monotonic: Callable[[], float] = time.monotonic, **settings_kw: Any) -> Any:
    """Build an app on a fresh reader inside one event loop, run ``body``, close the reader.
    The learned models' refresher gets a source on ``redis_url`` but no task: a test refreshes
    with ``await client.app.handlers.models.refresh()`` (``models_page``: its changelog page).
    The read budget and the reader's socket timeout are generous (3 s, 2 s) unless a test sets
    ``serve_budget_ms``: a read slowed by a busy machine must not turn an answer degraded; an
    unreachable Redis still fails at once (connection refused)."""
    settings_kw.setdefault("serve_budget_ms", 3000)

    async def go() -> Any:
        reader = AsyncReader.from_url(reader_url or redis_url, socket_connect_timeout=0.5,
                                      socket_timeout=2.0)
        source = RedisModelSource.from_url(redis_url, socket_connect_timeout=0.5,
                                           socket_timeout=0.5)
        try:
            settings = Settings(redis_url=redis_url, kafka_bootstrap="",
                                serve_cache_ttl_ms=cache_ttl_ms, rules_file=rules_file,
                                experiments_file=experiments_file,
                                metrics_targets=metrics_targets,
                                **{"keys_file": creds().keys_file, **settings_kw})
            app = create_app(settings, reader, now_ms=lambda: now, publisher=publisher,
                             monotonic=monotonic)
            app.handlers.models.source = source
            if models_page is not None:
                app.handlers.models.page = models_page
            return await body(AsgiClient(app))
        finally:
            await reader.close()
            await source.close()
    return asyncio.run(go())


def get(redis_url: str, *urls: str, **kwargs: Any) -> list[Reply]:
    async def body(client: AsgiClient) -> list[Reply]:
        return [await client.get(u) for u in urls]
    return list(run(redis_url, body, **kwargs))


def one(redis_url: str, url: str, **kwargs: Any) -> Reply:
    return get(redis_url, url, **kwargs)[0]


# ---- data ----------------------------------------------------------------------------------

def log_score(weight: float, ts_ms: int, half_life_s: float = HOUR_S) -> float:
    """What the stream writes: log(w) + λ·t_s (forward decay)."""
    return math.log(weight) + math.log(2) / half_life_s * ts_ms / 1000.0


def decayed(weight: float, ts_ms: int, now: int = NOW, half_life_s: float = HOUR_S) -> float:
    return weight * math.pow(2.0, -(now - ts_ms) / 1000.0 / half_life_s)


def ranked(*pairs: tuple[str, float, int]) -> dict[str, Any]:
    return {"items": [[i, log_score(w, ts)] for i, w, ts in pairs], "half_life_s": HOUR_S}


CATALOGUE: dict[str, dict[str, Any]] = {
    "i1": {"title": "Red Mug", "category": "kitchen", "price": 9.5},
    "i2": {"title": "Blue Mug", "category": "kitchen", "price": 8.0},
    "i3": {"title": "Teapot", "category": "kitchen", "price": 25.0},
    "i4": {"title": "Coasters", "category": "kitchen", "price": 4.0},
    "i5": {"title": "Running Shoe", "category": "shoes", "price": 80.0},
    "i6": {"title": "Socks", "category": "shoes", "price": 5.0},
    "i7": {"title": "Old Lamp", "category": "home", "price": 30.0, "deleted": True},
    "lonely": {"title": "Lonely Item", "category": "shoes", "price": 1.0},
    "nocat": {"title": "No Category"},
}


def fill(store: RedisStore) -> None:
    ups = [Update(item_key(i), 1, NOW - 86_400_000, {"item_id": i, **m})
           for i, m in CATALOGUE.items()]
    ups += [
        Update(trending_key(), 3, T_TREND,
               ranked(("i3", 8.0, T_TREND), ("i1", 4.0, T_TREND), ("i7", 3.0, T_TREND),
                      ("i2", 2.0, T_TREND - 3_600_000), ("i5", 1.0, T_TREND))),
        Update(trending_key("shoes"), 2, T_TREND - 1000,
               ranked(("i6", 5.0, T_TREND), ("i5", 4.0, T_TREND), ("lonely", 1.0, T_TREND))),
        Update(similar_key("i1"), 4, T_SIM,
               ranked(("i2", 6.0, T_SIM), ("i7", 5.0, T_SIM), ("i3", 3.0, T_SIM),
                      ("i1", 2.0, T_SIM), ("i4", 1.0, T_SIM))),
        Update(bought_key("i1"), 2, T_SIM - 500,
               ranked(("i4", 2.0, T_SIM), ("i3", 1.0, T_SIM))),
        Update(similar_key("i5"), 1, T_SIM - 9_000,
               ranked(("i6", 4.0, T_SIM), ("i2", 1.0, T_SIM))),
        # neighbours with no catalogue entry, and an item with neighbours but no metadata
        Update(similar_key("ghost"), 1, T_SIM, ranked(("i3", 1.0, T_SIM), ("x9", 1.0, T_SIM))),
        Update(similar_key("a/b"), 1, T_SIM, ranked(("i4", 1.0, T_SIM))),
        Update(session_key("u1"), 7, T_SESSION, {
            "session_id": "s1", "start": NOW - 600_000, "last_ts": T_SESSION,
            "events": [["i1", "view", NOW - 60_000], ["i5", "view", T_SESSION]],
            "basket": [], "purchased": []}),
        Update(session_key("u_dead_end"), 1, T_SESSION, {
            "session_id": "s2", "start": NOW - 600_000, "last_ts": T_SESSION,
            "events": [["lonely", "view", T_SESSION]], "basket": [], "purchased": ["i3"]}),
        Update(session_key("u_empty"), 1, T_SESSION, {
            "session_id": "s3", "start": T_SESSION, "last_ts": T_SESSION, "events": [],
            "basket": [], "purchased": []}),
    ]
    store.apply(ups)


def ids(reply: Reply) -> list[str]:
    return [i["item_id"] for i in reply.json["items"]]



# ---- the real server over HTTP -------------------------------------------------------------

@contextlib.contextmanager
def serving_http(redis_url: str, log_path: Path | None = None, **env: str) -> Iterator[int]:
    """``recs serve`` (granian, one worker) on a free loopback port, with the test keys
    (:func:`creds`); stopped by PID. Its output goes to ``log_path`` when given."""
    port = free_port()
    full = {**os.environ, "REDIS_URL": redis_url, "KAFKA_BOOTSTRAP": "", **auth_env(), **env}
    out = log_path.open("wb") if log_path is not None else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "recs.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=REPO, env=full, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # a loaded 2-core machine starts it in 5 to 30 s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    if proc.poll() is None:  # stop it first: its pipe ends only when it does
                        proc.kill()
                        proc.wait(timeout=10)
                    said = proc.stdout.read().decode() if proc.stdout else \
                        f"(its output: {log_path})"
                    raise RuntimeError(
                        f"recs serve did not come up (rc={proc.poll()}):\n{said}") from None
                time.sleep(0.1)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        if log_path is not None:
            out.close()  # type: ignore[union-attr]
