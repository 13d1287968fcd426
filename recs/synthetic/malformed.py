"""Malformed input: bad interaction payloads, one per fault kind, for the decoder and the DLQ.

Each is built by breaking one thing in a valid synthetic event, and names the field the
decoder's :class:`SchemaError` must blame.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, Final, NamedTuple

import orjson

from recs.synthetic.catalogue import DEFAULT_START_TS
from recs.synthetic.storefront import Storefront
from schemas.events import MAX_EVENT_BYTES, SchemaError, decode_interaction


class Malformed(NamedTuple):
    """One bad input: the raw bytes, the field the decoder must blame, and the kind of fault."""

    raw: bytes
    field: str
    kind: str


_YEAR_3000_MS: Final = 32_503_680_000_000


def _mutations(doc: dict[str, Any], rnd: random.Random) -> list[tuple[str, str, Any]]:
    """(kind, field, bad document or raw bytes) for every fault class, built from a valid doc."""

    def with_(**changes: Any) -> dict[str, Any]:
        return {**doc, **changes}

    def without(name: str) -> dict[str, Any]:
        return {k: v for k, v in doc.items() if k != name}

    raw = orjson.dumps(doc)
    cut = rnd.randint(1, len(raw) - 1)
    return [
        ("bad_json", "<document>", raw[:cut]),
        ("bad_json_trailing_comma", "<document>", raw[:-1] + b",}"),
        ("bad_utf8", "<document>", b'{"event_id":"\xff\xfe"}'),
        ("empty_payload", "<document>", b""),
        ("non_object_array", "<document>", [doc]),
        ("non_object_string", "<document>", "view"),
        ("non_object_null", "<document>", None),
        ("oversize", "<document>",
         with_(context={"blob": "x" * (MAX_EVENT_BYTES + rnd.randint(1, 4096))})),
        ("missing_event_id", "event_id", without("event_id")),
        ("missing_type", "type", without("type")),
        ("missing_user_id", "user_id", without("user_id")),
        ("missing_session_id", "session_id", without("session_id")),
        ("missing_ts", "ts", without("ts")),
        ("missing_item_id", "item_id", without("item_id")),
        ("null_user_id", "user_id", with_(user_id=None)),
        ("empty_session_id", "session_id", with_(session_id="")),
        ("long_event_id", "event_id", with_(event_id="e" * 200)),
        ("wrong_type_user_id", "user_id", with_(user_id=rnd.randint(1, 10**6))),
        ("wrong_type_item_id", "item_id", with_(item_id=[doc["item_id"]])),
        ("wrong_type_ts_string", "ts", with_(ts=str(doc["ts"]))),
        ("wrong_type_ts_float", "ts", with_(ts=doc["ts"] + 0.5)),
        ("wrong_type_ts_bool", "ts", with_(ts=True)),
        ("wrong_type_value", "value", with_(value="12.5 EUR")),
        ("wrong_type_context", "context", with_(context=["mobile"])),
        ("nested_context", "context.device", with_(context={"device": {"os": "ios"}})),
        ("unknown_type", "type", with_(type=rnd.choice(["like", "VIEW", "purchased", ""]))),
        ("ts_in_seconds", "ts", with_(ts=doc["ts"] // 1000)),
        ("ts_year_3000", "ts", with_(ts=_YEAR_3000_MS + rnd.randint(0, 10**9))),
        ("ts_negative", "ts", with_(ts=-doc["ts"])),
        ("unknown_field", "colour", with_(colour="red")),
        ("unknown_field_typo", "userId", {**without("user_id"), "userId": doc["user_id"]}),
        ("schema_version_2", "schema_version", with_(schema_version=2)),
        ("rating_without_value", "value", {**without("value"), "type": "rating"}),
        ("rating_out_of_range", "value", with_(type="rating", value=11.0)),
        ("impression_without_items", "item_ids",
         {**without("item_id"), "type": "impression"}),
        ("impression_items_not_list", "item_ids",
         {**without("item_id"), "type": "impression", "item_ids": doc["item_id"]}),
        ("impression_empty_item", "item_ids[1]",
         {**without("item_id"), "type": "impression", "item_ids": [doc["item_id"], ""]}),
    ]


MALFORMED_KINDS: Final = tuple(
    kind for kind, _, _ in _mutations(
        {"event_id": "e", "type": "view", "user_id": "u", "session_id": "s",
         "ts": DEFAULT_START_TS, "item_id": "i"}, random.Random(0)))


def malformed_events(seed: int, n: int) -> Iterator[Malformed]:
    """``n`` bad interaction payloads, cycling through every fault kind, each built by breaking
    one thing in a valid synthetic event. ``field`` is what :class:`SchemaError` must name.

    >>> bad = list(malformed_events(3, 2 * len(MALFORMED_KINDS)))
    >>> {b.kind for b in bad} == set(MALFORMED_KINDS)
    True
    >>> bad[0].kind, bad[0].field
    ('bad_json', '<document>')
    """
    rnd = random.Random(f"malformed:{seed}")
    shop = Storefront(seed=seed, n_items=50, n_users=20, n_categories=5)
    valid = (e for e in shop.events(10 * n + 100) if e.type in ("view", "click"))
    for i, event in zip(range(n), valid, strict=False):
        kinds = _mutations(event.to_dict(), rnd)
        kind, field_name, bad = kinds[i % len(kinds)]
        raw = bad if isinstance(bad, bytes) else orjson.dumps(bad)
        yield Malformed(raw, field_name, kind)


def check_malformed(bad: Malformed) -> SchemaError | None:
    """The decoder's error for ``bad``, or None when it was (wrongly) accepted."""
    try:
        decode_interaction(bad.raw)
    except SchemaError as exc:
        return exc
    return None
