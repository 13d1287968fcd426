"""The demo storefront's backend: ``POST /demo/token`` signs a user token for the shopper.

A real storefront does this in its own backend, for its own logged-in or anonymous shopper
(docs/api.md shows how, in Python and JavaScript); the demo server plays that part so that
``make demo`` works from one command. It is routed only when ``RECS_DEMO_STOREFRONT=1``.

The shopper is anonymous: a request without a token gets a new user and session. A request with
the token it held (``{"token": ...}``, even expired up to :data:`RENEW_WITHIN_S` ago) keeps its
user and session, so a page reload or a long visit stays one shopper. The answer carries the
public key the widget sends with the token (public: it is in every shopper's browser anyway).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

import orjson

from serving.auth import KeyFile, TokenError, sign_token
from serving.request import Request
from serving.responses import ApiError, Response, json_response

TOKEN_TTL_S: Final = 15 * 60
RENEW_WITHIN_S: Final = 7 * 86_400


class DemoBackend:
    def __init__(self, keys: KeyFile, public_key: str, now_ms: Callable[[], int],
                 monotonic: Callable[[], float]) -> None:
        self.keys = keys
        self.public_key = public_key
        self.now_ms = now_ms
        self.monotonic = monotonic

    async def demo_token(self, req: Request) -> Response:
        ring = self.keys.current(self.monotonic())
        signer = ring.signing_secret()
        if signer is None or not self.public_key:
            raise ApiError(503, "unavailable", "the demo storefront has no token secret or no "
                           "public key configured (RECS_KEYS_FILE, RECS_DEMO_PUBLIC_KEY)")
        now_s = self.now_ms() // 1000
        user = session = None
        old = _old_token(req.body)
        if old:
            try:
                claims = ring.claims(old, now_s, leeway_s=RENEW_WITHIN_S)
                user, session = claims.user, claims.session
            except TokenError:
                pass  # not ours, or too old: a new shopper
        if user is None or session is None:
            user, session = f"u-{secrets.token_hex(8)}", f"s-{secrets.token_hex(8)}"
        exp = now_s + TOKEN_TTL_S
        token = sign_token(signer[0], signer[1], user, session, exp_s=exp)
        return json_response({"token": token, "user_id": user, "session_id": session,
                              "expires_at_s": exp, "api_key": self.public_key})


def _old_token(body: bytes) -> str | None:
    if not body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ApiError(422, "invalid_body", "body must be a JSON object or empty",
                       field="<body>") from None
    token = doc.get("token") if isinstance(doc, dict) else None
    return token if isinstance(token, str) else None
