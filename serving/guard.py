"""The server's edge, applied by the application before any handler runs: who is calling
(:mod:`serving.auth`), how often (:mod:`serving.ratelimit`), from which origin (CORS), and the
headers every answer carries.

Each route names its :class:`~serving.auth.Access` in :data:`serving.routes.ACCESS`; a route
missing from that table is :attr:`~serving.auth.Access.PRIVATE`, so an endpoint added without a
rule is closed, not open. The checks, in order:

1. an open route passes (probes, the storefront's static files);
2. ``Authorization: Bearer <key>``: missing or unknown is a 401 (``missing_key``,
   ``invalid_key``), and costs the client address a token of its bucket, so guessing keys meets
   a 429;
3. the key's bucket (its own ``rate``/``burst`` from the keys file, else the settings');
4. a ``server`` key passes; a ``public`` key is a 403 on the private side, then takes from its
   client address's bucket, and needs ``X-Recs-Token``: a valid user token (401
   ``missing_token``, ``invalid_token``, ``token_expired``);
5. with a token, a user named by the path or the ``user_id`` query parameter must be the token's
   user (403 ``forbidden_user``). Handlers that read users from a body (events, cart) check them
   with the :class:`~serving.auth.Principal` the request carries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Final

from serving.auth import (
    NOBODY,
    PUBLIC,
    SERVER,
    Access,
    Claims,
    KeyFile,
    KeyRing,
    Principal,
    TokenError,
)
from serving.ratelimit import Buckets
from serving.responses import ApiError

log = logging.getLogger("serving")

TOKEN_HEADER: Final = "x-recs-token"
LOOPBACK: Final = frozenset({"127.0.0.1", "::1"})
MAX_HEADER_BYTES: Final = 16 * 1024
MAX_HEADERS: Final = 64
MAX_VERIFIED_TOKENS: Final = 50_000  # verified tokens remembered (a widget polls with one)
# every answer: no sniffing, no framing, no referrer; an API answer is not cached nor run
SECURITY_HEADERS: Final = ((b"x-content-type-options", b"nosniff"),
                           (b"x-frame-options", b"DENY"),
                           (b"referrer-policy", b"no-referrer"))
API_CSP: Final = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
NO_STORE: Final = (b"cache-control", b"no-store")
CORS_METHODS: Final = b"GET, POST"
CORS_HEADERS: Final = b"authorization, content-type, x-recs-token"
CORS_MAX_AGE: Final = b"600"
_BEARER: Final = "bearer "
_SERVER_OFF: Final = Principal(SERVER, None)  # auth switched off: everything is allowed


def unauthorized(code: str, message: str) -> ApiError:
    err = ApiError(401, code, message)
    err.headers = ((b"www-authenticate", b'Bearer realm="recs"'),)
    return err


def too_many(what: str, retry_s: float) -> ApiError:
    seconds = max(1, int(retry_s + 0.999))
    err = ApiError(429, "rate_limited", f"too many requests for this {what}; retry in "
                   f"{seconds} s", retry_after_s=seconds)
    err.headers = ((b"retry-after", str(seconds).encode()),)
    return err


class Guard:
    def __init__(self, keys: KeyFile, *, now_ms: Callable[[], int],
                 monotonic: Callable[[], float], key_rate: float, key_burst: float,
                 addr_rate: float, addr_burst: float, cors_origins: frozenset[str] = frozenset(),
                 private_loopback: bool = False, auth_off: bool = False) -> None:
        self.keys = keys
        self.now_ms = now_ms          # token expiry: the app's clock
        self.monotonic = monotonic    # rate limits and the keys file's reload: elapsed time
        self.per_key = Buckets(key_rate, key_burst)
        self.per_addr = Buckets(addr_rate, addr_burst)
        self.cors_origins = cors_origins
        self.private_loopback = private_loopback
        self.auth_off = auth_off
        # tokens already verified against the current key ring (HMAC once per token, not per
        # request); emptied when the ring changes, so a removed secret's tokens stop at once
        self._verified: dict[str, Claims] = {}
        self._verified_ring: KeyRing | None = None
        if auth_off:
            log.warning("auth: AUTHENTICATION IS OFF (RECS_AUTH=off): every endpoint answers "
                        "anyone, for any user. Local development only; never expose this "
                        "server.")
        elif not keys.ring.keys:
            log.warning("auth: no API keys configured (RECS_KEYS_FILE=%s): every endpoint "
                        "but the probes and static files answers 401; `recs keys new` writes "
                        "a keys file", keys.path or "")
        if private_loopback:
            log.warning("auth: the private side (/metrics, /dashboard, /docs) answers loopback "
                        "clients without a key (RECS_PRIVATE_LOOPBACK=1)")

    def check(self, access: Access, headers: Mapping[str, str], params: Mapping[str, str],
              query_user: str | None, client: str) -> Principal:
        """The caller of a request to a route with ``access``, or the :class:`ApiError` that
        refuses it (401, 403, 429)."""
        if access is Access.OPEN:
            return NOBODY
        if self.auth_off:
            return _SERVER_OFF
        now = self.monotonic()
        auth = headers.get("authorization")
        if auth is None:
            if access is Access.PRIVATE and self.private_loopback and client in LOOPBACK \
                    and "x-forwarded-for" not in headers and "forwarded" not in headers:
                return _SERVER_OFF
            self._charge_addr(client, now)
            raise unauthorized("missing_key", "an API key is required: "
                               "Authorization: Bearer <key>")
        ring = self.keys.current(now)
        key = ring.key(auth[7:].strip()) if auth[:7].lower() == _BEARER else None
        if key is None:
            self._charge_addr(client, now)
            raise unauthorized("invalid_key", "the API key is not valid (unknown, revoked "
                               "or malformed; expected Authorization: Bearer <key>)")
        wait = self.per_key.take(key.id, now, key.rate, key.burst)
        if wait:
            raise too_many("API key", wait)
        if key.scope == SERVER:
            return Principal(SERVER, key.id)
        if access is Access.PRIVATE:
            raise ApiError(403, "forbidden_scope", f"this endpoint needs a {SERVER!r} key; "
                           f"key {key.id!r} has scope {PUBLIC!r}")
        wait = self.per_addr.take(client, now)
        if wait:
            raise too_many("client address", wait)
        token = headers.get(TOKEN_HEADER)
        if not token:
            raise unauthorized("missing_token", f"a {PUBLIC!r} key needs a user token: "
                               f"X-Recs-Token (signed by the storefront's backend)")
        claims = self._claims(ring, token)
        principal = Principal(PUBLIC, key.id, claims)
        user = params.get("user_id")
        if user is not None:
            principal.check_user(user)
        if query_user is not None:
            principal.check_user(query_user)
        return principal

    def _claims(self, ring: KeyRing, token: str) -> Claims:
        now_s = self.now_ms() // 1000
        if ring is not self._verified_ring:
            self._verified.clear()
            self._verified_ring = ring
        claims = self._verified.get(token)
        if claims is not None:
            if claims.exp_s > now_s:
                return claims
            del self._verified[token]
        try:
            claims = ring.claims(token, now_s)
        except TokenError as exc:
            code = "token_expired" if "expired" in str(exc) else "invalid_token"
            raise unauthorized(code, f"user token refused: {exc}") from None
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def forget_tokens(self) -> None:
        """Forget the verified tokens (each is verified again on its next use)."""
        self._verified.clear()

    def _charge_addr(self, client: str, now: float) -> None:
        wait = self.per_addr.take(client, now)
        if wait:
            raise too_many("client address", wait)

    # ---- CORS and the headers of every answer ----------------------------------------------
    def cors(self, origin: str | None) -> tuple[tuple[bytes, bytes], ...]:
        """The CORS headers for a request from ``origin`` (none unless it is allowed)."""
        if origin is None or origin not in self.cors_origins:
            return ()
        return ((b"access-control-allow-origin", origin.encode("latin-1")),
                (b"vary", b"origin"))

    def preflight(self, origin: str | None) -> tuple[tuple[bytes, bytes], ...]:
        """The headers of a 204 answering a CORS preflight; a 403 for an origin not allowed."""
        allowed = self.cors(origin)
        if not allowed:
            raise ApiError(403, "cors_origin_not_allowed",
                           f"origin {str(origin)[:100]!r} is not on the CORS allow-list "
                           "(RECS_CORS_ORIGINS)")
        return (*allowed, (b"access-control-allow-methods", CORS_METHODS),
                (b"access-control-allow-headers", CORS_HEADERS),
                (b"access-control-max-age", CORS_MAX_AGE))


def edge_headers(own: tuple[tuple[bytes, bytes], ...], content_type: bytes,
                 cors: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
    """The security headers an answer carries besides its own: :data:`SECURITY_HEADERS`, and
    for anything but a page or asset that set its own, ``no-store`` and a CSP that runs
    nothing."""
    if not own:  # the common case: a JSON answer with no headers of its own
        return [*SECURITY_HEADERS, NO_STORE, API_CSP, *cors]
    names = {name for name, _ in own}
    out = [h for h in SECURITY_HEADERS if h[0] not in names]
    out += cors
    if b"cache-control" not in names:
        out.append(NO_STORE)
    if b"content-security-policy" not in names and not content_type.startswith(b"text/"):
        out.append(API_CSP)
    return out


def parse_origins(text: str) -> frozenset[str]:
    """``RECS_CORS_ORIGINS``: comma-separated origins (``https://shop.example``), no paths.

    >>> sorted(parse_origins("https://a.example, http://localhost:3000"))
    ['http://localhost:3000', 'https://a.example']
    >>> parse_origins("https://a.example/shop")
    Traceback (most recent call last):
    ...
    ValueError: settings: RECS_CORS_ORIGINS entries must be scheme://host[:port], got 'https://a.example/shop'
    """
    origins = frozenset(o.strip() for o in text.split(",") if o.strip())
    for o in origins:
        scheme, sep, rest = o.partition("://")
        if scheme not in ("http", "https") or not sep or not rest or "/" in rest or o == "*":
            raise ValueError(f"settings: RECS_CORS_ORIGINS entries must be "
                             f"scheme://host[:port], got {o!r}")
    return origins
