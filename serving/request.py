"""One HTTP request as the handlers see it: path parameters, query, headers and body.

The body is read whole by the application before the handler runs, bounded by
:data:`MAX_BODY_BYTES` (a larger one is a 413 before any handler sees it).

>>> req = Request("GET", "/v1/trending", {}, Query.parse(b"k=3"), {}, b"")
>>> req.query.k()
3
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from serving.auth import NOBODY, Principal
from serving.params import Query

MAX_BODY_BYTES: Final = 1 << 20  # 1 MiB: a batch of a few thousand events


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: Mapping[str, str]   # decoded path parameters
    query: Query
    headers: Mapping[str, str]  # lower-case names, last value wins
    body: bytes
    principal: Principal = NOBODY  # who is calling (serving.guard); nobody on an open route
