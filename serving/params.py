"""Validation of request input at the edge: query strings and path ids.

Every rejection is a 422 naming the parameter and the value received; nothing a client sends can
reach the handlers unvalidated, so bad input is never a 500.

>>> q = Query.parse(b"k=5&exclude=a,,b&category=shoes")
>>> q.k(), sorted(q.exclude()), q.category()
(5, ['a', 'b'], 'shoes')
>>> Query.parse(b"k=0").k()
Traceback (most recent call last):
...
serving.responses.ApiError: k must be an integer in 1..100, got '0'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl

import orjson

from serving.limits import check_depth
from serving.responses import INVALID_PARAMETER, ApiError

DEFAULT_K: Final = 10
MAX_K: Final = 100
MAX_ID_LEN: Final = 256
MAX_EXCLUDE: Final = 500
CONTEXT_KEYS: Final = ("device", "country", "page")
MAX_CONTEXT_VALUE: Final = 64
TRUE_WORDS: Final = ("1", "true", "yes")
FALSE_WORDS: Final = ("", "0", "false", "no")


def invalid(name: str, value: str, rule: str) -> ApiError:
    shown = value if len(value) <= 80 else value[:80] + "..."
    return ApiError(422, INVALID_PARAMETER, f"{name} must be {rule}, got {shown!r}",
                    parameter=name, value=shown)


class Query:
    """The query string of one request; the last value wins when a name repeats."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    @classmethod
    def parse(cls, raw: bytes) -> Query:
        if not raw:
            return cls({})
        return cls(dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)))

    def value(self, name: str) -> str | None:
        """The raw value of ``name`` (for parameters one endpoint validates itself)."""
        return self._values.get(name)

    def k(self, default: int = DEFAULT_K) -> int:
        raw = self._values.get("k")
        if raw is None:
            return default
        rule = f"an integer in 1..{MAX_K}"
        if not raw.isascii() or not raw.isdigit():
            raise invalid("k", raw, rule)
        value = int(raw)
        if not 1 <= value <= MAX_K:
            raise invalid("k", raw, rule)
        return value

    def category(self) -> str | None:
        raw = self._values.get("category")
        if raw is None:
            return None
        return entity_id("category", raw)

    def exclude(self) -> frozenset[str]:
        raw = self._values.get("exclude")
        if not raw:
            return frozenset()
        ids = [part.strip() for part in raw.split(",")]
        ids = [i for i in ids if i]
        if len(ids) > MAX_EXCLUDE:
            raise invalid("exclude", raw, f"at most {MAX_EXCLUDE} comma-separated ids")
        for item_id in ids:
            entity_id("exclude", item_id)
        return frozenset(ids)


    def context(self) -> dict[str, str]:
        """``context=device:mobile,country:DE,page:home``: the request's context."""
        raw = self._values.get("context")
        if not raw:
            return {}
        out: dict[str, str] = {}
        rule = (f"comma-separated key:value pairs with keys in {list(CONTEXT_KEYS)} and values "
                f"of 1..{MAX_CONTEXT_VALUE} characters")
        for part in raw.split(","):
            key, sep, value = part.strip().partition(":")
            value = value.strip()
            if not sep or key not in CONTEXT_KEYS or not value or \
                    len(value) > MAX_CONTEXT_VALUE or not value.isprintable():
                raise invalid("context", raw, rule)
            out[key] = value
        return out

    def flag(self, name: str) -> bool:
        raw = self._values.get(name)
        if raw is None:
            return False
        low = raw.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise invalid(name, raw, f"one of {list(TRUE_WORDS + FALSE_WORDS[1:])}")

    def raw_user_id(self) -> str | None:
        """The ``user_id`` parameter as sent (the gate compares it with a token's user)."""
        return self._values.get("user_id")

    def user_id(self) -> str | None:
        raw = self._values.get("user_id")
        return None if raw is None else entity_id("user_id", raw)


def entity_id(name: str, value: str) -> str:
    """A user id, item id or category: non-empty, at most :data:`MAX_ID_LEN` characters."""
    if not value or len(value) > MAX_ID_LEN or not value.isprintable():
        raise invalid(name, value, f"a non-empty printable id of at most {MAX_ID_LEN} characters")
    return value


# ---- JSON request bodies ---------------------------------------------------------------
MAX_CART: Final = 100  # items of a cart request


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be one JSON object, within the nesting limit."""
    try:
        doc = orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise ApiError(422, "invalid_body", f"body must be a JSON object ({exc})",
                       field="<body>") from None
    if not isinstance(doc, dict):
        raise ApiError(422, "invalid_body", "body must be a JSON object", field="<body>",
                       value=str(doc)[:80])
    check_depth(doc)
    return doc


def id_list(body: Mapping[str, Any], name: str, *, required: bool = True) -> list[str]:
    """A body field holding distinct item ids (1..the limit; may be absent unless required)."""
    raw = body.get(name)
    if raw is None and not required:
        return []
    limit = MAX_CART if name == "items" else MAX_EXCLUDE
    if not isinstance(raw, list) or not (1 if required else 0) <= len(raw) <= limit or \
            not all(isinstance(i, str) for i in raw):
        raise invalid(name, str(raw), f"a list of 1..{limit} item ids")
    return [entity_id(name, i) for i in dict.fromkeys(raw)]
