"""HTTP answers as plain values: a :class:`Response` (status, JSON body) and the error contract.

Every error, whatever raised it, leaves the server as one JSON shape::

    {"error": {"code": "<machine code>", "message": "<human text>", ...extra fields}}

>>> r = json_response({"status": "ok"})
>>> r.status, r.body
(200, b'{"status":"ok"}')
>>> err = ApiError(404, "not_found", "unknown item x", item_id="x")
>>> error_response(err).body
b'{"error":{"code":"not_found","message":"unknown item x","item_id":"x"}}'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import orjson

JSON_CONTENT_TYPE: Final = b"application/json"

NOT_FOUND: Final = "not_found"
METHOD_NOT_ALLOWED: Final = "method_not_allowed"
INVALID_PARAMETER: Final = "invalid_parameter"
INTERNAL: Final = "internal"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    headers: tuple[tuple[bytes, bytes], ...] = ()
    content_type: bytes = JSON_CONTENT_TYPE

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers in ASGI form: content type and length first, then the extra ones."""
        return [
            (b"content-type", self.content_type),
            (b"content-length", str(len(self.body)).encode()),
            *self.headers,
        ]


class ApiError(Exception):
    """An answer that is not a success, raised anywhere below a handler and rendered as JSON."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra
        self.headers: tuple[tuple[bytes, bytes], ...] = ()


def json_response(doc: Any, status: int = 200,
                  headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    return Response(status, orjson.dumps(doc), headers)


def error_response(err: ApiError) -> Response:
    return json_response({"error": {"code": err.code, "message": err.message, **err.extra}},
                         err.status, err.headers)


def internal_error() -> Response:
    """The body of a 500: nothing about the failure leaks to the client; the log has it."""
    return json_response({"error": {"code": INTERNAL, "message": "internal server error"}}, 500)
