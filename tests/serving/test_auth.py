"""Who gets in: every endpoint of the OpenAPI document and of the router, walked without a key,
with a wrong key, with a public key and a missing, expired, forged or tampered token, and with a
token for another user; the events of a token; rate limits; keys rotated without a restart;
CORS closed by default; the edge's headers and limits.

Credentials are made for the test run (:func:`tests.serving.kit.creds`); nothing here depends
on a secret committed to the repository."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from recs.settings import Settings
from serving.auth import Access, key_hash, sign_token, unb64, write_keys
from serving.openapi import openapi_document
from serving.routes import ACCESS
from tests.serving.kit import NOW, AsgiClient, Headers, Reply, creds, run

pytestmark = pytest.mark.integration

VICTIM = "u1"        # has a session with events in the test data (kit.fill)
INTRUDER = "u2"
OPEN_ROUTES = {"healthz", "readyz", "home", "storefront", "static", "demo_token"}
ITEM_IDS = {"item_id": "i1", "user_id": VICTIM, "name": "widget.js"}
BODIES: dict[str, Any] = {
    "/v1/cart/recommendations": {"items": ["i1"], "user_id": VICTIM},
    "/v1/events": [{"event_id": "e-walk", "type": "view", "user_id": VICTIM,
                    "session_id": "s1", "item_id": "i1", "ts": NOW}],
}


def bearer(key: str) -> Headers:
    return [(b"authorization", f"Bearer {key}".encode())]


def browser(token: str) -> Headers:
    return [*bearer(creds().public), (b"x-recs-token", token.encode())]


def operations() -> list[tuple[str, str, str, str]]:
    """``(method, concrete path, template, kind)`` of every documented operation; kind is
    ``open``, ``server`` or ``caller`` (a server key, or a public key with a token)."""
    ops = []
    for template, methods in openapi_document()["paths"].items():
        path = template
        for name, value in ITEM_IDS.items():
            path = path.replace("{" + name + "}", value)
        for method, op in methods.items():
            security = op.get("security")
            kind = "open" if security == [] else \
                "server" if security == [{"serverKey": []}] else "caller"
            ops.append((method.upper(), path, template, kind))
    return ops


def send(client: AsgiClient, method: str, path: str, headers: Headers) -> Any:
    body = orjson.dumps(BODIES[path]) if method == "POST" and path in BODIES else b""
    return client.call(method, path, body, headers=headers)


def no_data_of_others(reply: Reply) -> None:
    """A refusal carries the error body and nothing of the data asked for."""
    assert set(reply.json) == {"error"}, reply.json
    assert reply.json["error"]["code"] and reply.json["error"]["message"]
    text = orjson.dumps(reply.json).decode()
    assert "items" not in text and "viewed" not in text and "i1" not in text


def test_every_documented_operation_is_guarded(filled: str) -> None:
    c = creds()
    other_secret = secrets.token_bytes(32)
    tokens = {
        "expired": c.token(VICTIM, now_ms=NOW - 3_600_000),
        "forged": sign_token(c.token_kid, other_secret, VICTIM, "s1", exp_s=NOW // 1000 + 600),
        "unknown_kid": sign_token("t-nope", other_secret, VICTIM, "s1", exp_s=NOW // 1000 + 600),
        "tampered": _tampered(c.token(INTRUDER), VICTIM),
        "garbage": "v1.x.y.z",
    }
    ops = operations()
    assert len(ops) == 11

    async def body(client: AsgiClient) -> list[tuple[str, str, str, str, Reply]]:
        out = []
        for method, path, _, kind in ops:
            attempts: dict[str, Headers] = {
                "none": [], "wrong_key": bearer(f"srv-{secrets.token_hex(4)}.nope"),
                "malformed": [(b"authorization", c.server.encode())],  # no "Bearer "
                "public_no_token": bearer(c.public),
                "other_user": browser(c.token(INTRUDER)),
                "server": c.server_headers(), "own_token": browser(c.token(VICTIM)),
                **{name: browser(tok) for name, tok in tokens.items()}}
            for name, headers in attempts.items():
                out.append((method, path, kind, name, await send(client, method, path, headers)))
        return out

    for method, path, kind, attempt, reply in run(filled, body):
        where = f"{method} {path} ({kind}) with {attempt}: {reply.status} {reply.json}"
        if kind == "open":
            assert reply.status == 200, where
            continue
        if attempt == "server":
            assert reply.status not in (401, 403, 429), where
        elif attempt in ("none", "wrong_key", "malformed"):
            assert reply.status == 401, where
            assert reply.headers[b"www-authenticate"].startswith(b"Bearer"), where
            no_data_of_others(reply)
        elif kind == "server":  # the private side: a public key never gets in
            assert reply.status == 403, where
            assert reply.json["error"]["code"] == "forbidden_scope", where
        elif attempt == "public_no_token" or attempt in tokens:
            assert reply.status == 401, where
            code = {"public_no_token": "missing_token",
                    "expired": "token_expired"}.get(attempt, "invalid_token")
            assert reply.json["error"]["code"] == code, where
            no_data_of_others(reply)
        elif attempt == "other_user":
            if "/users/" in path or method == "POST":  # names the victim: refused
                assert reply.status == 403, where
                assert reply.json["error"]["code"] == "forbidden_user", where
                no_data_of_others(reply)
            else:  # item-level answers are nobody's data
                assert reply.status == 200, where
        elif attempt == "own_token":
            assert reply.status in (200, 503), where  # 503: no Kafka for the events here


def _tampered(token: str, user: str) -> str:
    """``token`` with its payload's user replaced, the signature kept."""
    v, kid, payload, sig = token.split(".")
    doc = orjson.loads(unb64(payload))
    doc["uid"] = user
    import base64

    new = base64.urlsafe_b64encode(orjson.dumps(doc)).rstrip(b"=").decode()
    return f"{v}.{kid}.{new}.{sig}"


def test_every_route_has_a_rule_and_only_listed_routes_are_open(filled: str) -> None:
    """A route added without a rule is private (a server key): the router's routes are walked
    without a key, and the open ones are exactly :data:`OPEN_ROUTES`."""
    async def body(client: AsgiClient) -> list[tuple[str, str, str, Reply]]:
        found = [(m, _concrete(path), getattr(h, "__name__", "?"))
                 for m, path, h in client.app.router.routes()]
        return [(m, path, name, await client.call(m, path, headers=[]))
                for m, path, name in found]

    walked = run(filled, body, demo_storefront=True, demo_public_key=creds().public)
    names = {name for _, _, name, _ in walked}
    assert names <= set(ACCESS), names - set(ACCESS)
    assert {n for n, a in ACCESS.items() if a is Access.OPEN} == OPEN_ROUTES
    for method, path, name, reply in walked:
        if name in OPEN_ROUTES:
            assert reply.status not in (401, 403), (method, path, reply.status)
        else:
            assert reply.status == 401, (method, path, name, reply.status)


def _concrete(template: str) -> str:
    for name, value in ITEM_IDS.items():
        template = template.replace("{" + name + "}", value)
    return template


def test_a_token_sends_events_only_for_its_user_and_session(filled: str) -> None:
    def event(user: str, session: str) -> dict[str, Any]:
        return {"event_id": f"e-{user}-{session}", "type": "click", "user_id": user,
                "session_id": session, "item_id": "i1", "ts": NOW}

    async def body(client: AsgiClient) -> list[Reply]:
        h = browser(creds().token(VICTIM, "s1"))
        return [await client.post("/v1/events", [event(VICTIM, "s1")], headers=h),
                await client.post("/v1/events", [event(VICTIM, "s1"), event(INTRUDER, "s1")],
                                  headers=h),
                await client.post("/v1/events", [event(VICTIM, "s9")], headers=h),
                await client.post("/v1/cart/recommendations",
                                  {"items": ["i1"], "user_id": INTRUDER}, headers=h),
                await client.post("/v1/events", [event(INTRUDER, "s1")])]  # a server key

    own, mixed, other_session, cart, server = run(filled, body)
    assert own.status == 503  # allowed; no Kafka configured in this test
    assert (mixed.status, mixed.json["error"]["code"]) == (403, "forbidden_user")
    assert mixed.json["error"]["index"] == 1
    assert (other_session.status, other_session.json["error"]["field"]) == (403, "session_id")
    assert (cart.status, cart.json["error"]["code"]) == (403, "forbidden_user")
    assert server.status == 503  # a server key may send events for anyone


def test_explanations_with_a_token_are_the_token_users_own(filled: str) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        path = f"/v1/users/{VICTIM}/session-recommendations?explain=true"
        return [await client.get(path, headers=browser(creds().token(VICTIM))),
                await client.get(path, headers=browser(creds().token(INTRUDER))),
                await client.get(f"/v1/trending?user_id={VICTIM}&explain=true",
                                 headers=browser(creds().token(INTRUDER)))]

    own, other, trending_as_other = run(filled, body)
    assert own.status == 200 and own.json["items"]
    assert "viewed" in orjson.dumps(own.json).decode()  # the victim's own history, to the victim
    for reply in (other, trending_as_other):
        assert reply.status == 403
        no_data_of_others(reply)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_over_the_limit_gets_429s_and_the_limit_recovers(filled: str) -> None:
    clock = Clock()

    async def body(client: AsgiClient) -> dict[str, list[Reply]]:
        h = browser(creds().token(VICTIM))
        out: dict[str, list[Reply]] = {}
        out["addr"] = [await client.get("/v1/trending?k=1", headers=h) for _ in range(8)]
        clock.t += 1.0  # 2 tokens back
        out["addr_after"] = [await client.get("/v1/trending?k=1", headers=h) for _ in range(3)]
        out["other_addr"] = [await client.call("GET", "/v1/trending?k=1", headers=h,
                                               client="10.0.0.9")]
        out["key"] = [await client.get("/v1/trending?k=1") for _ in range(32)]
        clock.t += 10.0
        out["key_after"] = [await client.get("/v1/trending?k=1")]
        out["guess"] = [await client.call("GET", "/v1/trending", headers=bearer("srv-x.y"),
                                          client="10.0.0.7") for _ in range(8)]
        return out

    r = run(filled, body, monotonic=clock, rate_addr_rps=2.0, rate_addr_burst=5.0,
            rate_key_rps=1.0, rate_key_burst=30.0)
    statuses = {k: [x.status for x in v] for k, v in r.items()}
    assert statuses["addr"] == [200] * 5 + [429] * 3, statuses
    limited = r["addr"][-1]
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers[b"retry-after"]) >= 1
    assert statuses["addr_after"] == [200, 200, 429], statuses
    assert statuses["other_addr"] == [200]  # another shopper's address has its own bucket
    # the server key: 30 of burst, of which the browser calls above (the public key's own
    # bucket) took none
    assert statuses["key"] == [200] * 30 + [429] * 2, statuses
    assert statuses["key_after"] == [200]
    # guessing keys from one address meets the address limit
    assert statuses["guess"] == [401] * 5 + [429] * 3, statuses


def test_keys_rotate_without_a_restart(filled: str, tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    first = write_keys(path)
    clock = Clock()

    async def body(client: AsgiClient) -> list[int]:
        before = await client.get("/v1/trending?k=1", headers=bearer(first["server"]))
        second = write_keys(path.with_suffix(".new"))
        text = path.read_text() + path.with_suffix(".new").read_text()
        path.write_text(text)  # both keys valid: clients move over
        os.utime(path, ns=(1, 1))  # a new mtime however coarse the file system's clock
        clock.t += 1.5
        both = [await client.get("/v1/trending?k=1", headers=bearer(k))
                for k in (first["server"], second["server"])]
        path.write_text(path.with_suffix(".new").read_text())  # the old key revoked
        os.utime(path, ns=(2, 2))
        clock.t += 1.5
        after = [await client.get("/v1/trending?k=1", headers=bearer(k))
                 for k in (first["server"], second["server"])]
        path.write_text("not toml [[[")  # a broken file keeps the last good keys
        clock.t += 1.5
        broken = await client.get("/v1/trending?k=1", headers=bearer(second["server"]))
        return [before.status, *(x.status for x in both), *(x.status for x in after),
                broken.status]

    assert run(filled, body, monotonic=clock, keys_file=str(path)) == \
        [200, 200, 200, 401, 200, 200]
    assert key_hash(first["server"]) not in path.read_text()


def test_a_removed_token_secret_stops_its_tokens_at_once(filled: str, tmp_path: Path) -> None:
    """Verified tokens are remembered (one HMAC per token), but never past the key ring they
    were verified against."""
    path = tmp_path / "keys.toml"
    first = write_keys(path)
    keys_part = path.read_text().split("[[token_secret]]")[0]
    token = sign_token(first["token_kid"], unb64(first["token_secret"]), VICTIM, "s1",
                       exp_s=NOW // 1000 + 600)
    clock = Clock()

    async def body(client: AsgiClient) -> list[Reply]:
        h = [*bearer(first["public"]), (b"x-recs-token", token.encode())]
        ok = [await client.get("/v1/trending?k=1", headers=h) for _ in range(2)]
        new_secret = write_keys(tmp_path / "other.toml")
        path.write_text(keys_part + "[[token_secret]]\n"
                        f'id = "{new_secret["token_kid"]}"\n'
                        f'secret = "{new_secret["token_secret"]}"\n')
        os.utime(path, ns=(1, 1))
        clock.t += 1.5
        return [*ok, await client.get("/v1/trending?k=1", headers=h)]

    replies = run(filled, body, monotonic=clock, keys_file=str(path))
    assert [r.status for r in replies] == [200, 200, 401]
    assert replies[-1].json["error"]["code"] == "invalid_token"


def test_cors_is_closed_by_default_and_follows_the_allow_list(filled: str) -> None:
    shop = "https://shop.example"

    def preflight(origin: str) -> Callable[[AsgiClient], Any]:
        async def body(client: AsgiClient) -> list[Reply]:
            h = [(b"origin", origin.encode())]
            return [await client.call("OPTIONS", "/v1/trending", headers=h),
                    await client.call("GET", "/v1/trending?k=1",
                                      headers=[*h, *creds().server_headers()])]
        return body

    closed_pre, closed_get = run(filled, preflight(shop))
    open_pre, open_get = run(filled, preflight(shop), cors_origins=shop)
    other_pre, _ = run(filled, preflight("https://evil.example"), cors_origins=shop)
    assert closed_pre.status == 403 and b"access-control-allow-origin" not in closed_get.headers
    assert open_pre.status == 204
    assert open_pre.headers[b"access-control-allow-origin"] == shop.encode()
    assert b"x-recs-token" in open_pre.headers[b"access-control-allow-headers"]
    assert open_get.headers[b"access-control-allow-origin"] == shop.encode()
    assert other_pre.status == 403


def test_the_edge_headers_and_limits(filled: str) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        big = [*creds().server_headers(), (b"x-big", b"x" * 20_000)]
        many = [*creds().server_headers(), *((f"x-{i}".encode(), b"1") for i in range(100))]
        deep: Any = "leaf"
        for _ in range(20):
            deep = {"a": deep}
        return [await client.get("/v1/trending?k=1"),
                await client.get("/v1/trending", headers=big),
                await client.get("/v1/trending", headers=many),
                await client.post("/v1/events", [{"event_id": "e", "context": deep}]),
                await client.post("/v1/cart/recommendations", {"items": ["i1"], "x": deep}),
                await client.get("/static/widget.js", headers=[])]

    ok, big, many, deep_events, deep_cart, asset = run(filled, body)
    for name, value in ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
                        (b"referrer-policy", b"no-referrer"), (b"cache-control", b"no-store")):
        assert ok.headers[name] == value
    assert ok.headers[b"content-security-policy"].startswith(b"default-src 'none'")
    assert asset.headers[b"cache-control"].startswith(b"public")  # the asset's own policy
    assert asset.headers[b"x-content-type-options"] == b"nosniff"
    assert (big.status, big.json["error"]["code"]) == (431, "headers_too_large")
    assert many.status == 431
    assert deep_events.status == 422 and "nested deeper" in \
        deep_events.json["error"]["errors"][0]["message"]
    assert deep_cart.status == 422 and "nested deeper" in deep_cart.json["error"]["message"]


def test_auth_off_is_explicit_and_loud(filled: str, caplog: pytest.LogCaptureFixture) -> None:
    assert Settings().auth_off is False and Settings.from_env({}).auth_off is False
    with pytest.raises(ValueError, match="RECS_AUTH"):
        Settings.from_env({"RECS_AUTH": "of"})

    async def body(client: AsgiClient) -> Reply:
        return await client.get(f"/v1/users/{VICTIM}/session-recommendations", headers=[])

    with caplog.at_level(logging.WARNING, logger="serving"):
        reply = run(filled, body, auth_off=True)
    assert reply.status == 200
    assert any("AUTHENTICATION IS OFF" in r.getMessage() for r in caplog.records)
    assert dataclasses.replace(Settings(), auth_off=True).to_env()["RECS_AUTH"] == "off"


def test_the_demo_backend_signs_and_renews_a_shoppers_token(filled: str) -> None:
    async def body(client: AsgiClient) -> list[Reply]:
        first = await client.post("/demo/token", None, raw=b"", headers=[])
        renewed = await client.post("/demo/token", {"token": first.json["token"]}, headers=[])
        fresh = await client.post("/demo/token", {"token": "v1.x.y.z"}, headers=[])
        use = await client.get(f"/v1/users/{first.json['user_id']}/recommendations",
                               headers=browser(first.json["token"]))
        return [first, renewed, fresh, use]

    first, renewed, fresh, use = run(filled, body, demo_storefront=True,
                                     demo_public_key=creds().public)
    assert first.status == 200 and first.json["api_key"] == creds().public
    assert (renewed.json["user_id"], renewed.json["session_id"]) == \
        (first.json["user_id"], first.json["session_id"])
    assert fresh.json["user_id"] != first.json["user_id"]
    assert use.status == 200
    assert first.json["expires_at_s"] == NOW // 1000 + 900


def test_a_request_past_its_timeout_is_a_504_and_the_next_one_answers(filled: str) -> None:
    class SlowBroker:  # a Kafka that never acknowledges
        async def publish(self, records: Any, *, wait: bool = True) -> None:
            await asyncio.sleep(30)

    event = {"event_id": "e-slow", "type": "view", "user_id": VICTIM, "session_id": "s1",
             "item_id": "i1", "ts": NOW}

    async def body(client: AsgiClient) -> tuple[Reply, float, Reply]:
        began = time.monotonic()
        slow = await client.post("/v1/events", [event])
        took = time.monotonic() - began
        return slow, took, await client.get("/v1/trending?k=1")

    slow, took, after = run(filled, body, publisher=SlowBroker(), request_timeout_ms=200)
    assert (slow.status, slow.json["error"]["code"]) == (504, "timeout")
    assert 0.2 <= took < 2.0  # cut within a sweep (50 ms here) of the 200 ms
    assert after.status == 200
