"""A tiny router: path templates with ``{name}`` segments, matched segment by segment.

Static paths are a dictionary lookup; templated ones are tried in registration order. A path that
matches a template under another method is a 405 (with ``Allow``), one that matches nothing a 404.
Segments are percent-decoded after splitting, so an id may contain an encoded ``/``.

>>> r: Router[str] = Router()
>>> r.add("GET", "/v1/items/{item_id}/similar", "similar")
>>> r.add("GET", "/healthz", "health")
>>> r.match("GET", "/v1/items/a%2Fb/similar")
('similar', {'item_id': 'a/b'})
>>> r.match("GET", "/healthz")
('health', {})
>>> r.match("POST", "/healthz")
Traceback (most recent call last):
...
serving.responses.ApiError: method POST not allowed on /healthz
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

from serving.responses import METHOD_NOT_ALLOWED, NOT_FOUND, ApiError

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class _Template(Generic[H]):
    parts: tuple[str | None, ...]  # literal segment, or None for a parameter
    names: tuple[str, ...]
    methods: dict[str, H]


def _split(path: str) -> list[str]:
    return path.strip("/").split("/") if path.strip("/") else []


class Router(Generic[H]):
    def __init__(self) -> None:
        self._static: dict[str, dict[str, H]] = {}
        self._templates: list[_Template[H]] = []

    def add(self, method: str, template: str, handler: H) -> None:
        segments = _split(template)
        if not any(s.startswith("{") for s in segments):
            self._static.setdefault("/" + "/".join(segments), {})[method] = handler
            return
        parts: list[str | None] = []
        names: list[str] = []
        for seg in segments:
            if seg.startswith("{") and seg.endswith("}"):
                parts.append(None)
                names.append(seg[1:-1])
            else:
                parts.append(seg)
        for tpl in self._templates:
            if tpl.parts == tuple(parts):
                tpl.methods[method] = handler
                return
        self._templates.append(_Template(tuple(parts), tuple(names), {method: handler}))

    def routes(self) -> list[tuple[str, str, H]]:
        """Every ``(method, template, handler)`` routed (the auth tests walk them all)."""
        out = [(m, path, h) for path, methods in self._static.items()
               for m, h in methods.items()]
        for tpl in self._templates:
            names = iter(tpl.names)
            path = "/" + "/".join(p if p is not None else "{" + next(names) + "}"
                                  for p in tpl.parts)
            out += [(m, path, h) for m, h in tpl.methods.items()]
        return out

    def match(self, method: str, raw_path: str) -> tuple[H, dict[str, str]]:
        """Handler and decoded path parameters; :class:`ApiError` 404/405 when nothing fits."""
        segments = _split(raw_path)
        methods = self._static.get("/" + "/".join(unquote(s) for s in segments))
        params: dict[str, str] = {}
        if methods is None:
            for tpl in self._templates:
                found = _bind(tpl, segments)
                if found is not None:
                    methods, params = tpl.methods, found
                    break
        if methods is None:
            raise ApiError(404, NOT_FOUND, f"no route for {raw_path}")
        handler = methods.get(method)
        if handler is None:
            err = ApiError(405, METHOD_NOT_ALLOWED, f"method {method} not allowed on {raw_path}")
            err.headers = ((b"allow", ", ".join(sorted(methods)).encode()),)
            raise err
        return handler, params


def _bind(tpl: _Template[H], segments: list[str]) -> dict[str, str] | None:
    if len(segments) != len(tpl.parts):
        return None
    values: list[str] = []
    for part, seg in zip(tpl.parts, segments, strict=True):
        if part is None:
            if not seg:
                return None
            values.append(unquote(seg))
        elif part != seg:
            return None
    return dict(zip(tpl.names, values, strict=True))
