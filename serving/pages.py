"""The demo storefront and its static files: ``GET /``, ``GET /storefront``, ``GET /static/{name}``.

The files served are exactly those found in ``serving/static`` when this module is imported (a
fixed allow-list, read once into memory): a request names a file, it never builds a path, so no
``..`` or encoded ``/`` can reach anything else. Any other name is the usual JSON 404.

>>> sorted(ASSETS) == sorted(p.name for p in STATIC_DIR.iterdir() if p.name in ASSETS)
True
>>> ASSETS["widget.js"].content_type
b'text/javascript; charset=utf-8'
>>> "../pages.py" in ASSETS
False

Routed, an encoded ``..`` is just a name that is not on the list:

>>> import asyncio
>>> from serving.params import Query
>>> router: Router[Handler] = Router()
>>> add_page_routes(router)
>>> def get(path: str) -> Response:
...     handler, params = router.match("GET", path)
...     return asyncio.run(handler(Request("GET", path, params, Query.parse(b""), {}, b"")))
>>> get("/").status, dict(get("/").headers)[b"location"]
(307, b'/storefront')
>>> r = get("/static/widget.js")
>>> r.status, r.content_type, dict(r.headers)[b"cache-control"]
(200, b'text/javascript; charset=utf-8', b'public, max-age=300')
>>> get("/static/..%2Fpages.py")
Traceback (most recent call last):
...
serving.responses.ApiError: no static file '../pages.py'
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from serving.request import Request
from serving.responses import NOT_FOUND, ApiError, Response
from serving.router import Router

Handler = Callable[[Request], Awaitable[Response]]

STATIC_DIR: Final = Path(__file__).resolve().parent / "static"
STOREFRONT: Final = "storefront.html"

# only these kinds of file are served; anything else in the directory is ignored
CONTENT_TYPES: Final[Mapping[str, bytes]] = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
    ".svg": b"image/svg+xml",
    ".png": b"image/png",
    ".ico": b"image/x-icon",
    ".json": b"application/json",
    ".txt": b"text/plain; charset=utf-8",
}
# assets may be cached a little; the page is revalidated every time (its ETag makes that cheap)
ASSET_CACHE: Final = b"public, max-age=300"
PAGE_CACHE: Final = b"no-cache"
# the page loads nothing from elsewhere and runs no inline script
PAGE_CSP: Final = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
                   b" connect-src 'self'; base-uri 'none'; form-action 'none';"
                   b" frame-ancestors 'none'")
MAX_NAME_SHOWN: Final = 64  # a 404 quotes at most this much of the name asked for


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    body: bytes
    content_type: bytes
    etag: bytes  # strong validator: a hash of the body


def load_assets(directory: Path) -> dict[str, Asset]:
    """Every regular, non-hidden file of ``directory`` (not its subdirectories) whose extension
    is in :data:`CONTENT_TYPES`, by file name."""
    assets: dict[str, Asset] = {}
    if not directory.is_dir():
        return assets
    for path in sorted(directory.iterdir()):
        kind = CONTENT_TYPES.get(path.suffix.lower())
        if kind is None or path.name.startswith(".") or path.is_symlink() or not path.is_file():
            continue
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:32]
        assets[path.name] = Asset(path.name, body, kind, f'"{digest}"'.encode())
    return assets


ASSETS: Final[Mapping[str, Asset]] = load_assets(STATIC_DIR)


def asset_response(asset: Asset, req: Request, cache_control: bytes,
                   extra: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    """The file, or a bodiless 304 when the client already holds this version."""
    headers = ((b"cache-control", cache_control), (b"etag", asset.etag),
               (b"x-content-type-options", b"nosniff"), *extra)
    if _etag_matches(req.headers.get("if-none-match", ""), asset.etag):
        return Response(304, b"", headers, asset.content_type)
    return Response(200, asset.body, headers, asset.content_type)


def _etag_matches(header: str, etag: bytes) -> bool:
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or etag.decode() in wanted


def _not_found(name: str) -> ApiError:
    shown = name[:MAX_NAME_SHOWN]
    return ApiError(404, NOT_FOUND, f"no static file {shown!r}", name=shown)


async def home(req: Request) -> Response:
    return Response(307, b"", ((b"location", b"/storefront"),), b"text/plain; charset=utf-8")


async def storefront(req: Request) -> Response:
    asset = ASSETS.get(STOREFRONT)
    if asset is None:
        raise _not_found(STOREFRONT)
    return asset_response(asset, req, PAGE_CACHE, ((b"content-security-policy", PAGE_CSP),))


async def static(req: Request) -> Response:
    name = req.params.get("name", "")
    asset = ASSETS.get(name)
    if asset is None:
        raise _not_found(name)
    extra = ((b"content-security-policy", PAGE_CSP),) if name.endswith(".html") else ()
    return asset_response(asset, req, ASSET_CACHE, extra)


def add_page_routes(router: Router[Handler]) -> None:
    router.add("GET", "/", home)
    router.add("GET", "/storefront", storefront)
    router.add("GET", "/static/{name}", static)
