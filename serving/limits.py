"""Limits on what a request body may hold, besides its size
(:data:`serving.request.MAX_BODY_BYTES`).

JSON is parsed by orjson (which refuses nesting past 1024 levels); what we accept is far
shallower: an event batch is a list of objects whose ``context`` is an object of strings.

>>> depth_ok([{"context": {"device": "web"}}])
True
>>> deep: list = []
>>> for _ in range(MAX_JSON_DEPTH):
...     deep = [deep]
>>> depth_ok(deep)
False
"""

from __future__ import annotations

from typing import Any, Final

from serving.responses import ApiError

MAX_JSON_DEPTH: Final = 8


def depth_ok(doc: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``doc`` nests at most ``limit`` containers deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return True


def check_depth(doc: Any) -> None:
    """A 422 naming the limit when ``doc`` nests too deep."""
    if not depth_ok(doc):
        raise ApiError(422, "invalid_body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels",
                       field="<body>", limit=MAX_JSON_DEPTH)
