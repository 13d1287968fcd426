"""Who may call what: API keys with scopes, signed user tokens, the access rule of each route.

**Keys.** An API key is ``<key id>.<secret>`` (e.g. ``srv-3f9a1c.Yq...``), sent as
``Authorization: Bearer <key>``. The keys file (TOML, ``RECS_KEYS_FILE``) holds only the SHA-256
of each key, with its scope and optional rate limit; it is read again when it changes, so a key is
added, rotated or revoked without a restart. A key carries one scope:

* ``server``: the storefront's backend. Any user, events for anyone, the private side
  (``/metrics``, ``/dashboard``, ``/docs``, ``/openapi.json``).
* ``public``: shipped to browsers, so not a secret. It answers only together with a valid user
  token, and only for that token's user and session.

**User tokens.** The storefront backend signs a short-lived token for its shopper with a token
secret it shares with the engine (``[[token_secret]]`` in the same file)::

    v1.<kid>.<payload>.<sig>
    payload = base64url(JSON {"uid": user id, "sid": session id, "exp": epoch seconds})
    sig     = base64url(HMAC-SHA256(secret of kid, "v1.<kid>.<payload>"))

(base64url without padding). Tokens live at most :data:`MAX_TOKEN_TTL_S`; the key id lets
secrets rotate: sign with the new one while the old one still verifies, then remove the old.
Every comparison of secrets is constant-time (:func:`hmac.compare_digest`).

>>> ring = KeyRing.from_text('''
... [[key]]
... id = "pub-1"
... scope = "public"
... sha256 = "%s"
... [[token_secret]]
... id = "t1"
... secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"
... ''' % key_hash("pub-1.abc"))
>>> ring.key("pub-1.abc").scope, ring.key("pub-1.abd"), ring.key("nodot")
('public', None, None)
>>> tok = sign_token("t1", b"secret-secret-secret-secret-secret", "u1", "s1", exp_s=1_000)
>>> tok.split(".")[:2]
['v1', 't1']
>>> ring.claims(tok, now_s=900)
Claims(user='u1', session='s1', exp_s=1000)
>>> ring.claims(tok, now_s=1_000)
Traceback (most recent call last):
...
serving.auth.TokenError: token expired at 1000 (now 1000)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

import orjson

from serving.responses import ApiError

log = logging.getLogger("serving")

SERVER: Final = "server"
PUBLIC: Final = "public"
SCOPES: Final = (SERVER, PUBLIC)
TOKEN_VERSION: Final = "v1"
MAX_TOKEN_TTL_S: Final = 24 * 3600   # a token whose expiry is further away is refused
MAX_TOKEN_BYTES: Final = 1024
MIN_SECRET_BYTES: Final = 32
RELOAD_EVERY_S: Final = 1.0          # how often the keys file's mtime is looked at, at most
_DUMMY_HASH: Final = hashlib.sha256(b"no such key").digest()
FORBIDDEN_USER: Final = "forbidden_user"


class Access(Enum):
    """What a route asks of a caller."""

    OPEN = "open"          # probes, the storefront's static files: anyone
    ITEMS = "items"        # item-level answers: a server key, or a public key with a token
    USER = "user"          # a user's answers/events: a server key, or a token for that user
    PRIVATE = "private"    # operators only: a server key


class TokenError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: str
    scope: str
    digest: bytes                 # SHA-256 of the whole key
    rate: float | None = None     # requests/s allowed to this key (None: the settings default)
    burst: float | None = None


@dataclass(frozen=True, slots=True)
class Claims:
    user: str
    session: str
    exp_s: int


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request, as the gate (:mod:`serving.guard`) let it in."""

    scope: str                    # SERVER, PUBLIC, or NOBODY (an open route)
    key_id: str | None            # None: an open route, or auth switched off
    claims: Claims | None = None  # the user token, always there with a public key

    @property
    def trusted(self) -> bool:
        """May act for any user: a server key (or auth switched off)."""
        return self.scope == SERVER

    def check_user(self, user: str | None, field: str = "user_id") -> None:
        """403 unless this caller may act for ``user``.

        >>> Principal(PUBLIC, "pub-1", Claims("u1", "s1", 9)).check_user("u2")
        Traceback (most recent call last):
        ...
        serving.responses.ApiError: user_id 'u2' is not the user of this token
        """
        if self.trusted or user is None:
            return
        if self.claims is None or user != self.claims.user:
            raise ApiError(403, FORBIDDEN_USER,
                           f"{field} {user[:64]!r} is not the user of this token", field=field)

    def check_event(self, user: str, session: str, index: int) -> None:
        """403 unless this caller may send an event for ``user`` in ``session``."""
        if self.trusted:
            return
        claims = self.claims
        if claims is None or user != claims.user:
            raise ApiError(403, FORBIDDEN_USER, f"event {index}: user_id {user[:64]!r} is not "
                           f"the user of this token", index=index, field="user_id")
        if session != claims.session:
            raise ApiError(403, FORBIDDEN_USER, f"event {index}: session_id {session[:64]!r} "
                           f"is not the session of this token", index=index, field="session_id")


NOBODY_SCOPE: Final = "none"
NOBODY: Final = Principal(NOBODY_SCOPE, None)   # a request on an open route


# ---- keys and tokens as values ---------------------------------------------------------------

def key_hash(key: str) -> str:
    """What the keys file stores for ``key``: its SHA-256, hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key(scope: str) -> tuple[str, str]:
    """A fresh ``(key id, key)`` for ``scope``: 32 random bytes behind a short id."""
    if scope not in SCOPES:
        raise ValueError(f"auth: scope must be one of {SCOPES}, got {scope!r}")
    kid = f"{scope[:3]}-{secrets.token_hex(4)}"
    return kid, f"{kid}.{secrets.token_urlsafe(32)}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_token(kid: str, secret: bytes, user: str, session: str, *, exp_s: int) -> str:
    """A user token (the storefront backend's side; docs/api.md has it in Python and JS)."""
    payload = b64(orjson.dumps({"uid": user, "sid": session, "exp": exp_s}))
    signed = f"{TOKEN_VERSION}.{kid}.{payload}"
    return f"{signed}.{b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())}"


@dataclass(frozen=True, slots=True)
class KeyRing:
    keys: Mapping[str, ApiKey]
    secrets: Mapping[str, bytes]   # token secrets by key id

    @classmethod
    def from_text(cls, text: str, source: str = "<keys>") -> KeyRing:
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"auth: {source} is not valid TOML ({exc})") from None
        keys: dict[str, ApiKey] = {}
        for i, entry in enumerate(doc.get("key", ())):
            kid, scope, digest = entry.get("id"), entry.get("scope"), entry.get("sha256")
            where = f"{source}: key[{i}]"
            if not isinstance(kid, str) or not kid or "." in kid:
                raise ValueError(f"auth: {where}.id must be a non-empty string without '.', "
                                 f"got {kid!r}")
            if scope not in SCOPES:
                raise ValueError(f"auth: {where}.scope must be one of {SCOPES}, got {scope!r}")
            if not isinstance(digest, str) or len(digest) != 64:
                raise ValueError(f"auth: {where}.sha256 must be 64 hex digits, got {digest!r}")
            rate, burst = entry.get("rate"), entry.get("burst")
            for name, value in (("rate", rate), ("burst", burst)):
                if value is not None and (not isinstance(value, int | float) or value <= 0):
                    raise ValueError(f"auth: {where}.{name} must be a positive number, "
                                     f"got {value!r}")
            if kid in keys:
                raise ValueError(f"auth: {where}.id {kid!r} appears twice")
            keys[kid] = ApiKey(kid, scope, bytes.fromhex(digest),
                               float(rate) if rate else None, float(burst) if burst else None)
        secrets_: dict[str, bytes] = {}
        for i, entry in enumerate(doc.get("token_secret", ())):
            kid, raw = entry.get("id"), entry.get("secret")
            where = f"{source}: token_secret[{i}]"
            if not isinstance(kid, str) or not kid or "." in kid:
                raise ValueError(f"auth: {where}.id must be a non-empty string without '.', "
                                 f"got {kid!r}")
            try:
                secret = unb64(raw) if isinstance(raw, str) else b""
            except ValueError:
                secret = b""
            if len(secret) < MIN_SECRET_BYTES:
                raise ValueError(f"auth: {where}.secret must be base64url of at least "
                                 f"{MIN_SECRET_BYTES} bytes")
            secrets_[kid] = secret
        return cls(keys, secrets_)

    def key(self, presented: str) -> ApiKey | None:
        """The key ``presented`` is, or None. The digest comparison is constant-time; an unknown
        id still costs one comparison."""
        kid, dot, _ = presented.partition(".")
        found = self.keys.get(kid) if dot else None
        digest = hashlib.sha256(presented.encode()).digest()
        ok = hmac.compare_digest(digest, found.digest if found is not None else _DUMMY_HASH)
        return found if ok and found is not None else None

    def claims(self, token: str, now_s: int, leeway_s: int = 0) -> Claims:
        """The claims of a valid token; :class:`TokenError` saying what is wrong otherwise.
        ``leeway_s`` accepts a token expired that long ago (renewing a shopper's token)."""
        if len(token) > MAX_TOKEN_BYTES:
            raise TokenError(f"token longer than {MAX_TOKEN_BYTES} bytes")
        parts = token.split(".")
        if len(parts) != 4 or parts[0] != TOKEN_VERSION:
            raise TokenError(f"token must be {TOKEN_VERSION}.<kid>.<payload>.<sig>")
        _, kid, payload, sig = parts
        secret = self.secrets.get(kid)
        if secret is None:
            raise TokenError(f"token signed with unknown key id {kid[:32]!r}")
        expected = hmac.new(secret, f"{TOKEN_VERSION}.{kid}.{payload}".encode(),
                            hashlib.sha256).digest()
        try:
            given = unb64(sig)
            doc: Any = orjson.loads(unb64(payload))
        except (ValueError, orjson.JSONDecodeError):
            given, doc = b"", None
        if not hmac.compare_digest(expected, given):
            raise TokenError("token signature does not verify")
        if not isinstance(doc, dict):
            raise TokenError("token payload must be a JSON object")
        user, session, exp = doc.get("uid"), doc.get("sid"), doc.get("exp")
        if not isinstance(user, str) or not user or not isinstance(session, str) or not session:
            raise TokenError("token must name a non-empty uid and sid")
        if not isinstance(exp, int) or isinstance(exp, bool):
            raise TokenError("token exp must be an integer (epoch seconds)")
        if exp + leeway_s <= now_s:
            raise TokenError(f"token expired at {exp} (now {now_s})")
        if exp > now_s + MAX_TOKEN_TTL_S:
            raise TokenError(f"token expires more than {MAX_TOKEN_TTL_S} s from now")
        return Claims(user, session, exp)


    def signing_secret(self) -> tuple[str, bytes] | None:
        """The token secret to sign with: the last one in the file (the newest)."""
        if not self.secrets:
            return None
        kid = list(self.secrets)[-1]
        return kid, self.secrets[kid]


EMPTY: Final = KeyRing({}, {})


class KeyFile:
    """The keys file, read again (at most every :data:`RELOAD_EVERY_S`) when it changes. A file
    that stops parsing keeps the last good keys and logs why."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.ring = EMPTY
        self._stamp: tuple[int, int] | None = None
        self._checked = float("-inf")
        if path is not None:
            self.ring = self._read(path)

    def current(self, now_s: float) -> KeyRing:
        if self.path is not None and now_s - self._checked >= RELOAD_EVERY_S:
            self._checked = now_s
            try:
                st = os.stat(self.path)
            except OSError as exc:
                log.error("auth: keys file unreadable, keeping the last keys path=%s error=%s",
                          self.path, exc)
                return self.ring
            if (st.st_mtime_ns, st.st_size) != self._stamp:
                try:
                    self.ring = self._read(self.path)
                    log.info("auth: keys reloaded path=%s keys=%d token_secrets=%d",
                             self.path, len(self.ring.keys), len(self.ring.secrets))
                except (OSError, ValueError) as exc:
                    log.error("auth: keys file rejected, keeping the last keys path=%s "
                              "error=%s", self.path, exc)
        return self.ring

    def _read(self, path: Path) -> KeyRing:
        st = os.stat(path)
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("auth: keys file is readable by others (mode %o); it holds token "
                        "secrets: chmod 600 %s", stat.S_IMODE(st.st_mode), path)
        ring = KeyRing.from_text(path.read_text(encoding="utf-8"), str(path))
        self._stamp = (st.st_mtime_ns, st.st_size)
        return ring


def write_keys(path: Path, *, server: int = 1, public: int = 1) -> dict[str, str]:
    """A new keys file at ``path`` (mode 600): fresh keys and one token secret. Returns what a
    caller needs to hand out: ``{"server": key, "public": key, "token_kid": id,
    "token_secret": base64url}`` (the first key of each scope)."""
    lines = ["# API keys (only their SHA-256) and token secrets; see docs/api.md", ""]
    out: dict[str, str] = {}
    for scope, count in ((SERVER, server), (PUBLIC, public)):
        for _ in range(count):
            kid, key = new_key(scope)
            out.setdefault(scope, key)
            lines += ["[[key]]", f'id = "{kid}"', f'scope = "{scope}"',
                      f'sha256 = "{key_hash(key)}"', ""]
    tkid, secret = f"t-{secrets.token_hex(4)}", b64(secrets.token_bytes(32))
    lines += ["[[token_secret]]", f'id = "{tkid}"', f'secret = "{secret}"', ""]
    out["token_kid"], out["token_secret"] = tkid, secret
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return out
