"""Typed events and the one validating decoder at the edge.

The JSON Schema files beside this module (``interaction.v1.json``, ``item.v1.json``) are the
published contract; this module is its Python implementation and ``tests/test_schemas.py`` checks
that both accept and reject the same documents.

Every rejection is a :class:`SchemaError` naming the field and the value received:

>>> raw = b'{"event_id":"e1","type":"like","user_id":"u","session_id":"s","ts":1}'
>>> try:
...     decode_interaction(raw)
... except SchemaError as exc:
...     print(exc.field, exc.value, "|", exc.contract)
type like | interaction
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import orjson

SCHEMA_VERSION: Final = 1
MAX_EVENT_BYTES: Final = 16 * 1024
MIN_TS_MS: Final = 631_152_000_000  # 1990-01-01: real logs go back to the 1990s
MAX_TS_MS: Final = 4_102_444_800_000  # 2100-01-01
MAX_ID_LEN: Final = 128
MAX_IMPRESSION_ITEMS: Final = 200
MAX_CONTEXT_KEYS: Final = 32

EVENT_TYPES: Final = frozenset(
    {"view", "click", "add_to_cart", "purchase", "rating", "impression"}
)
_INTERACTION_FIELDS: Final = frozenset(
    {
        "schema_version", "event_id", "type", "user_id", "session_id", "item_id", "item_ids",
        "ts", "value", "context", "rec_id", "variant",
    }
)
_CONTEXT_STRINGS: Final = frozenset({"device", "country", "page", "referrer"})
_ITEM_FIELDS: Final = frozenset(
    {"schema_version", "item_id", "ts", "title", "category", "brand", "price", "stock", "tags",
     "deleted"}
)


class SchemaError(ValueError):
    """A document broke the event contract. ``field`` and ``value`` say where and what."""

    def __init__(self, contract: str, field_name: str, message: str, value: Any = None) -> None:
        self.contract = contract
        self.field = field_name
        self.value = value
        super().__init__(f"{contract}.{field_name}: {message}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Interaction:
    event_id: str
    type: str
    user_id: str
    session_id: str
    ts: int
    item_id: str | None = None
    item_ids: tuple[str, ...] = ()
    value: float | None = None
    context: dict[str, Any] = field(default_factory=dict)
    rec_id: str | None = None
    variant: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The canonical wire form: only the fields that are set, schema version included."""
        out: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "event_id": self.event_id,
            "type": self.type,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "ts": self.ts,
        }
        if self.item_id is not None:
            out["item_id"] = self.item_id
        if self.item_ids:
            out["item_ids"] = list(self.item_ids)
        if self.value is not None:
            out["value"] = self.value
        if self.context:
            out["context"] = self.context
        if self.rec_id is not None:
            out["rec_id"] = self.rec_id
        if self.variant is not None:
            out["variant"] = self.variant
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class ItemUpsert:
    item_id: str
    ts: int
    title: str | None = None
    category: str | None = None
    brand: str | None = None
    price: float | None = None
    stock: int | None = None
    tags: tuple[str, ...] = ()
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "item_id": self.item_id,
                               "ts": self.ts}
        for name in ("title", "category", "brand", "price", "stock"):
            val = getattr(self, name)
            if val is not None:
                out[name] = val
        if self.tags:
            out["tags"] = list(self.tags)
        if self.deleted:
            out["deleted"] = True
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


def _load(contract: str, raw: bytes | str) -> dict[str, Any]:
    size = len(raw)
    if size > MAX_EVENT_BYTES:
        raise SchemaError(contract, "<document>", f"payload of {size} bytes exceeds "
                          f"{MAX_EVENT_BYTES} bytes", size)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        preview = raw[:80] if isinstance(raw, str) else raw[:80].decode("utf-8", "replace")
        raise SchemaError(contract, "<document>", f"not valid JSON ({exc})", preview) from None
    if not isinstance(doc, dict):
        raise SchemaError(contract, "<document>", f"expected a JSON object, got "
                          f"{type(doc).__name__}", doc)
    return doc


def _string(contract: str, doc: dict[str, Any], name: str, *, required: bool,
            max_len: int = MAX_ID_LEN) -> str | None:
    val = doc.get(name)
    if val is None:
        if required or name in doc:
            raise SchemaError(contract, name, "is required and must be a non-empty string", val)
        return None
    if not isinstance(val, str) or not val:
        raise SchemaError(contract, name, "expected a non-empty string", val)
    if len(val) > max_len:
        raise SchemaError(contract, name, f"longer than {max_len} characters", val[:40] + "...")
    return val


def _required(contract: str, doc: dict[str, Any], name: str) -> str:
    val = _string(contract, doc, name, required=True)
    if val is None:  # unreachable: _string raises for a missing required field
        raise SchemaError(contract, name, "is required", None)
    return val


def _timestamp(contract: str, doc: dict[str, Any]) -> int:
    ts = doc.get("ts")
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise SchemaError(contract, "ts", "expected an integer epoch-milliseconds timestamp", ts)
    if not MIN_TS_MS <= ts <= MAX_TS_MS:
        raise SchemaError(contract, "ts", f"outside [{MIN_TS_MS}, {MAX_TS_MS}] epoch ms "
                          "(seconds instead of milliseconds?)", ts)
    return ts


def _number(contract: str, doc: dict[str, Any], name: str) -> float | None:
    val = doc.get(name)
    if val is None:
        if name in doc:
            raise SchemaError(contract, name, "expected a number, got null", val)
        return None
    if isinstance(val, bool) or not isinstance(val, int | float) or val != val:
        raise SchemaError(contract, name, "expected a finite number", val)
    return float(val)


def _check_fields(contract: str, doc: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise SchemaError(contract, unknown[0], "unknown field", doc[unknown[0]])
    version = doc.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise SchemaError(contract, "schema_version", f"expected {SCHEMA_VERSION}", version)


def decode_interaction(raw: bytes | str) -> Interaction:
    """Validate one interaction document; raise :class:`SchemaError` on the first problem."""
    contract = "interaction"
    doc = _load(contract, raw)
    return interaction_from_dict(doc)


def interaction_from_dict(doc: dict[str, Any]) -> Interaction:
    contract = "interaction"
    _check_fields(contract, doc, _INTERACTION_FIELDS)
    event_id = _required(contract, doc, "event_id")
    etype = doc.get("type")
    if not isinstance(etype, str) or etype not in EVENT_TYPES:  # a list or dict is unhashable
        raise SchemaError(contract, "type", f"expected one of {sorted(EVENT_TYPES)}", etype)
    user_id = _required(contract, doc, "user_id")
    session_id = _required(contract, doc, "session_id")
    ts = _timestamp(contract, doc)
    item_id = _string(contract, doc, "item_id", required=etype != "impression")
    item_ids: tuple[str, ...] = ()
    raw_ids = doc.get("item_ids")
    if etype == "impression" or raw_ids is not None:
        if not isinstance(raw_ids, list) or not raw_ids:
            raise SchemaError(contract, "item_ids", "expected a non-empty array of item ids",
                              raw_ids)
        if len(raw_ids) > MAX_IMPRESSION_ITEMS:
            raise SchemaError(contract, "item_ids", f"more than {MAX_IMPRESSION_ITEMS} items",
                              len(raw_ids))
        for i, iid in enumerate(raw_ids):
            if not isinstance(iid, str) or not iid or len(iid) > MAX_ID_LEN:
                raise SchemaError(contract, f"item_ids[{i}]", "expected a non-empty string", iid)
        item_ids = tuple(raw_ids)
    value = _number(contract, doc, "value")
    if etype == "rating":
        if value is None:
            raise SchemaError(contract, "value", "is required for a rating", None)
        if not 0 <= value <= 10:
            raise SchemaError(contract, "value", "rating must be within [0, 10]", value)
    context = doc.get("context", {})
    if not isinstance(context, dict):
        raise SchemaError(contract, "context", "expected an object", context)
    if len(context) > MAX_CONTEXT_KEYS:
        raise SchemaError(contract, "context", f"more than {MAX_CONTEXT_KEYS} keys", len(context))
    for key, val in context.items():
        if val is None:
            continue
        if key in _CONTEXT_STRINGS and not isinstance(val, str):
            raise SchemaError(contract, f"context.{key}", "expected a string", val)
        if not isinstance(val, str | int | float | bool):
            raise SchemaError(contract, f"context.{key}", "expected a scalar", val)
    rec_id = _string(contract, doc, "rec_id", required=False)
    variant = _string(contract, doc, "variant", required=False, max_len=64)
    return Interaction(
        event_id=event_id, type=etype, user_id=user_id, session_id=session_id, ts=ts,
        item_id=item_id, item_ids=item_ids, value=value, context=context, rec_id=rec_id,
        variant=variant,
    )


def interaction_from_canonical(doc: dict[str, Any]) -> Interaction:
    """Rebuild an event from its own canonical form (:meth:`Interaction.to_dict`) without
    validating again: for records the engine validated itself at the edge, never for input."""
    return Interaction(
        event_id=doc["event_id"], type=doc["type"], user_id=doc["user_id"],
        session_id=doc["session_id"], ts=doc["ts"], item_id=doc.get("item_id"),
        item_ids=tuple(doc.get("item_ids", ())), value=doc.get("value"),
        context=doc.get("context", {}), rec_id=doc.get("rec_id"), variant=doc.get("variant"),
    )


def decode_item(raw: bytes | str) -> ItemUpsert:
    """Validate one item upsert document; raise :class:`SchemaError` on the first problem."""
    return item_from_dict(_load("item", raw))


def item_from_dict(doc: dict[str, Any]) -> ItemUpsert:
    contract = "item"
    _check_fields(contract, doc, _ITEM_FIELDS)
    item_id = _required(contract, doc, "item_id")
    ts = _timestamp(contract, doc)
    title = _string(contract, doc, "title", required=False, max_len=512)
    category = _string(contract, doc, "category", required=False)
    brand = _string(contract, doc, "brand", required=False)
    price = _number(contract, doc, "price")
    if price is not None and price < 0:
        raise SchemaError(contract, "price", "must be >= 0", price)
    stock = doc.get("stock")
    if stock is not None and (isinstance(stock, bool) or not isinstance(stock, int) or stock < 0):
        raise SchemaError(contract, "stock", "expected a non-negative integer", stock)
    tags = doc.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise SchemaError(contract, "tags", "expected an array of strings", tags)
    deleted = doc.get("deleted", False)
    if not isinstance(deleted, bool):
        raise SchemaError(contract, "deleted", "expected a boolean", deleted)
    return ItemUpsert(item_id=item_id, ts=ts, title=title, category=category, brand=brand,
                      price=price, stock=stock, tags=tuple(tags), deleted=deleted)
