"""The OpenAPI 3.1 description of the HTTP API (``GET /openapi.json``) and a docs page
(``GET /docs``) that renders it without any external script.

The event schema is the very file producers use (``schemas/interaction.v1.json``), so the API
description and the stream's decoder cannot drift apart.
"""

from __future__ import annotations

import functools
import html
from importlib import resources
from typing import Any, Final

import orjson

from serving.params import DEFAULT_K, MAX_EXCLUDE, MAX_ID_LEN, MAX_K

API_VERSION: Final = "1.0.0"

_ID: Final = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LEN}


def _param(name: str, where: str, schema: dict[str, Any], doc: str,
           required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path",
            "schema": schema, "description": doc}


_K = _param("k", "query", {"type": "integer", "minimum": 1, "maximum": MAX_K,
                           "default": DEFAULT_K}, "number of items")
_EXCLUDE = _param("exclude", "query", {"type": "string"},
                  f"comma-separated item ids never to return (at most {MAX_EXCLUDE})")
_CATEGORY = _param("category", "query", _ID, "restrict trending (and fallbacks) to a category")
_CONTEXT = _param("context", "query", {"type": "string", "pattern":
                                       r"^((device|country|page):[^,:]{1,64})"
                                       r"(,(device|country|page):[^,:]{1,64})*$"},
                  "request context, e.g. `device:mobile,country:DE,page:home`")
_EXPLAIN = _param("explain", "query", {"type": "string", "enum": ["true", "false", "1", "0"]},
                  "add every source, score and rule behind each item")
_USER_Q = _param("user_id", "query", _ID, "the user, to personalise the rules and log the "
                 "impression")
_LIST_QUERY: Final = [_K, _EXCLUDE, _CATEGORY, _CONTEXT, _EXPLAIN]


def _error_responses(*codes: int) -> dict[str, Any]:
    text = {401: "missing or invalid API key or user token", 403: "the key's scope or the "
            "token's user does not allow this", 404: "unknown item or route",
            405: "method not allowed", 413: "body too large", 422: "invalid parameter or body",
            429: "rate limited (see Retry-After)", 503: "a dependency is unavailable"}
    return {str(c): {"description": text[c], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}} for c in codes}


# a server key, or a public key with a user token (docs/api.md)
_CALLER: Final[list[dict[str, list[str]]]] = [{"serverKey": []}, {"publicKey": [], "userToken": []}]
_OPERATOR: Final[list[dict[str, list[str]]]] = [{"serverKey": []}]
_AUTH_ERRORS: Final = (401, 403, 429)


def _list_op(summary: str, params: list[dict[str, Any]], *extra: int) -> dict[str, Any]:
    return {"summary": summary, "parameters": params, "security": _CALLER, "responses": {
        "200": {"description": "recommendations", "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Recommendations"}}}},
        **_error_responses(422, *_AUTH_ERRORS, *extra)}}


def _components() -> dict[str, Any]:
    event = orjson.loads(resources.files("schemas").joinpath("interaction.v1.json").read_bytes())
    for key in ("$schema", "$id"):
        event.pop(key, None)
    item = {"type": "object", "required": ["item_id", "score", "source", "reason"],
            "properties": {
                "item_id": {"type": "string"}, "score": {"type": "number"},
                "source": {"type": "string", "description": "the strongest candidate source "
                           "(session, bought_together, similar, vector, vector_similar, "
                           "recently_viewed, trending, ...)"},
                "reason": {"type": "string", "description": "why, in words"},
                "title": {"type": "string"}, "category": {"type": "string"},
                "brand": {"type": "string"}, "price": {"type": "number"},
                "sponsored": {"type": "boolean"},
                "rules": {"type": "array", "items": {"type": "string"},
                          "description": "rules that changed this item's score or place"},
                "explanation": {"type": "object", "description": "with explain=true"}}}
    recs = {"type": "object", "required": ["items", "source", "freshness", "degraded",
                                           "rec_id", "variant", "ranker"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                "source": {"type": "string"},
                "freshness": {"type": "object", "properties": {
                    "as_of_ms": {"type": ["integer", "null"]},
                    "newest_ms": {"type": ["integer", "null"]},
                    "age_ms": {"type": ["integer", "null"]}}},
                "degraded": {"type": "boolean", "description": "Redis was unavailable"},
                "fallback": {"type": "string"},
                "rec_id": {"type": "string", "description": "echo it in click events"},
                "variant": {"type": "string", "description": "A/B variant, `experiment/name`"},
                "ranker": {"type": "string", "enum": ["warm", "cold", "absent", "off"],
                           "description": "whether the learned ranker ordered the candidates "
                                          "(warm) or the blend's order stands (cold, absent; "
                                          "off: a placement never ranked, trending)"},
                "exploration": {"type": "object"}}}
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}
    cart = {"type": "object", "required": ["items"], "properties": {
        "items": {"type": "array", "minItems": 1, "maxItems": 100, "items": _ID},
        "user_id": _ID,
        "exclude": {"type": "array", "maxItems": MAX_EXCLUDE, "items": _ID}}}
    security = {
        "serverKey": {"type": "http", "scheme": "bearer", "description":
                      "an API key: `Authorization: Bearer <key>`; a `server` key answers for "
                      "any user, a `public` key only with a user token"},
        "publicKey": {"type": "http", "scheme": "bearer",
                      "description": "a `public` API key (browsers), with `userToken`"},
        "userToken": {"type": "apiKey", "in": "header", "name": "X-Recs-Token",
                      "description": "a user token signed by the storefront backend: "
                                     "v1.<kid>.<payload>.<sig> (docs/api.md)"}}
    return {"schemas": {"Item": item, "Recommendations": recs, "Error": error,
                        "Interaction": event, "Cart": cart}, "securitySchemes": security}


@functools.cache
def _document_bytes() -> bytes:
    item_path = _param("item_id", "path", _ID, "item id")
    user_path = _param("user_id", "path", _ID, "user id")
    json_body = {"application/json": {"schema": {"$ref": "#/components/schemas/Cart"}}}
    events_body = {"application/json": {"schema": {"oneOf": [
        {"$ref": "#/components/schemas/Interaction"},
        {"type": "array", "minItems": 1, "maxItems": 1000,
         "items": {"$ref": "#/components/schemas/Interaction"}}]}}}
    probe = {"responses": {"200": {"description": "ok"}}}
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "recs-engine recommendation API", "version": API_VERSION,
                 "description": "Real-time recommendations from the streaming engine. Every "
                                "answer carries item ids, scores, the source and reason of "
                                "each item, the A/B variant, a rec_id and the freshness of "
                                "the data behind it."},
        "paths": {
            "/v1/users/{user_id}/recommendations": {"get": _list_op(
                "homepage recommendations", [user_path, *_LIST_QUERY])},
            "/v1/users/{user_id}/session-recommendations": {"get": _list_op(
                "because you viewed: from the current session", [user_path, *_LIST_QUERY])},
            "/v1/users/{user_id}/page": {"get": {
                "summary": "several placements of one page in one request, no item twice "
                           "(each excludes what the placements before it answered)",
                "parameters": [user_path, *_LIST_QUERY, {
                    "name": "placements", "in": "query", "required": False,
                    "description": "comma-separated, in order of precedence, of session, "
                                   "homepage, trending (default: all three)",
                    "schema": {"type": "string"}}],
                "responses": {"200": {"description": "one answer per placement", "content": {
                    "application/json": {"schema": {
                        "type": "object", "required": ["page_id", "placements"],
                        "properties": {
                            "page_id": {"type": "string"},
                            "placements": {"type": "object", "additionalProperties": {
                                "$ref": "#/components/schemas/Recommendations"}}}}}}},
                    **_error_responses(422)}}},
            "/v1/items/{item_id}/similar": {"get": _list_op(
                "items often viewed with this one, and its neighbours in the learned model",
                [item_path, *_LIST_QUERY, _USER_Q], 404)},
            "/v1/items/{item_id}/bought-together": {"get": _list_op(
                "items often bought with this one", [item_path, *_LIST_QUERY, _USER_Q], 404)},
            "/v1/trending": {"get": _list_op("trending, global or per category or context",
                                             [*_LIST_QUERY, _USER_Q])},
            "/v1/cart/recommendations": {"post": {
                **_list_op("frequently bought together with a whole cart", _LIST_QUERY, 413),
                "requestBody": {"required": True, "content": json_body}}},
            "/v1/events": {"post": {
                "summary": "publish interaction events to Kafka (validated, all or nothing; "
                           "with a user token, only that user's events in its session)",
                "security": _CALLER,
                "requestBody": {"required": True, "content": events_body},
                "responses": {"202": {"description": "accepted", "content": {
                    "application/json": {"schema": {"type": "object", "properties": {
                        "accepted": {"type": "integer"}}}}}},
                    **_error_responses(413, 422, *_AUTH_ERRORS, 503)}}},
            "/healthz": {"get": {"summary": "liveness", "security": [], **probe}},
            "/readyz": {"get": {"summary": "readiness: Redis reachable, data freshness",
                                "security": [],
                                "responses": {"200": {"description": "ready"},
                                              "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics (a server key)",
                                 "security": _OPERATOR, "responses": {
                "200": {"description": "text exposition format",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                **_error_responses(*_AUTH_ERRORS)}}},
        },
        "components": _components(),
    }
    return orjson.dumps(doc)


def openapi_document() -> Any:
    return orjson.loads(_document_bytes())


def docs_page() -> bytes:
    """A readable list of the operations, their parameters and responses."""
    doc = openapi_document()
    rows: list[str] = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = "".join(
                f"<li><code>{html.escape(p['name'])}</code> ({p['in']}) — "
                f"{html.escape(p.get('description', ''))}</li>" for p in op.get("parameters", ()))
            codes = ", ".join(sorted(op.get("responses", {})))
            rows.append(f"<section><h2><code>{method.upper()} {html.escape(path)}</code></h2>"
                        f"<p>{html.escape(op.get('summary', ''))}</p>"
                        f"<ul>{params}</ul><p>responses: {codes}</p></section>")
    body = "".join(rows)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>recs API</title>"
            f"<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}"
            f"code{{background:#f3f3f3;padding:0 .2em}}</style></head><body>"
            f"<h1>{html.escape(doc['info']['title'])}</h1>"
            f"<p>{html.escape(doc['info']['description'])}</p>"
            f"<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a></p>{body}"
            f"</body></html>").encode()
