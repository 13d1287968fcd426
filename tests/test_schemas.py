"""The published JSON Schema files and the Python decoder accept and reject the same documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.events import (
    MAX_EVENT_BYTES,
    SchemaError,
    decode_interaction,
    decode_item,
)
from tests.streamkit import MALFORMED

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
INTERACTION = json.loads((SCHEMAS / "interaction.v1.json").read_text())
ITEM = json.loads((SCHEMAS / "item.v1.json").read_text())
TS = 1_700_000_000_000

VALID_INTERACTIONS: list[dict[str, Any]] = [
    {"event_id": "e1", "type": "view", "user_id": "u", "session_id": "s", "item_id": "i", "ts": TS},
    {"event_id": "e2", "type": "rating", "user_id": "u", "session_id": "s", "item_id": "i",
     "ts": TS, "value": 4.5, "schema_version": 1},
    {"event_id": "e3", "type": "impression", "user_id": "u", "session_id": "s",
     "item_ids": ["a", "b"], "ts": TS, "rec_id": "r1", "variant": "B",
     "context": {"device": "ios", "country": "DE", "page": "home", "referrer": None, "n": 3}},
    {"event_id": "e4", "type": "purchase", "user_id": "u", "session_id": "s", "item_id": "i",
     "ts": TS, "value": 19.99},
]
INVALID_INTERACTIONS: list[tuple[dict[str, Any], str]] = [
    ({"event_id": "e", "type": "view", "user_id": "u", "session_id": "s", "ts": TS}, "item_id"),
    ({"event_id": "e", "type": "rating", "user_id": "u", "session_id": "s", "item_id": "i",
      "ts": TS}, "value"),
    ({"event_id": "e", "type": "view", "user_id": "", "session_id": "s", "item_id": "i",
      "ts": TS}, "user_id"),
    ({"event_id": "e", "type": "view", "user_id": "u", "session_id": "s", "item_id": "i",
      "ts": "2024-01-01"}, "ts"),
    ({"event_id": "e", "type": "view", "user_id": "u", "session_id": "s", "item_id": "i",
      "ts": TS, "schema_version": 2}, "schema_version"),
    ({"event_id": "e", "type": "impression", "user_id": "u", "session_id": "s", "item_ids": [],
      "ts": TS}, "item_ids"),
    ({"event_id": "e", "type": "view", "user_id": "u", "session_id": "s", "item_id": "i",
      "ts": TS, "context": {"nested": {"a": 1}}}, "context.nested"),
    ({"event_id": "e", "type": "view", "user_id": "u", "session_id": "s", "item_id": "i",
      "ts": True}, "ts"),
]


@pytest.mark.parametrize("doc", VALID_INTERACTIONS)
def test_valid_interactions_pass_both(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, INTERACTION)
    event = decode_interaction(orjson.dumps(doc))
    assert decode_interaction(event.to_json()) == event  # canonical form round-trips
    jsonschema.validate(orjson.loads(event.to_json()), INTERACTION)


@pytest.mark.parametrize(("doc", "field"), INVALID_INTERACTIONS)
def test_invalid_interactions_fail_both_naming_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, INTERACTION)
    with pytest.raises(SchemaError) as err:
        decode_interaction(orjson.dumps(doc))
    assert err.value.field == field
    assert field in str(err.value)


@pytest.mark.parametrize(("raw", "field"), MALFORMED)
def test_malformed_wire_records_name_their_field(raw: bytes, field: str) -> None:
    with pytest.raises(SchemaError) as err:
        decode_interaction(raw)
    assert err.value.field == field


def test_oversize_payload_is_rejected_before_parsing() -> None:
    raw = b'{"pad":"' + b"x" * MAX_EVENT_BYTES + b'"}'
    with pytest.raises(SchemaError, match="exceeds"):
        decode_interaction(raw)


def test_items_agree() -> None:
    good = {"item_id": "i1", "ts": TS, "title": "Mug", "category": "kitchen", "brand": "b",
            "price": 9.5, "stock": 3, "tags": ["new"], "deleted": False}
    jsonschema.validate(good, ITEM)
    assert decode_item(orjson.dumps(good)).to_dict()["price"] == 9.5
    for bad, field in [({"item_id": "i1", "ts": TS, "price": -1}, "price"),
                       ({"item_id": "i1", "ts": TS, "stock": 1.5}, "stock"),
                       ({"ts": TS}, "item_id"),
                       ({"item_id": "i1", "ts": TS, "colour": "red"}, "colour")]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, ITEM)
        with pytest.raises(SchemaError) as err:
            decode_item(orjson.dumps(bad))
        assert err.value.field == field


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2 * 10**12), st.text(max_size=5),
                    st.floats(allow_nan=False, allow_infinity=False))
documents = st.fixed_dictionaries(
    {"event_id": st.sampled_from(["e", ""]), "type": st.sampled_from(
        ["view", "rating", "impression", "like"]), "user_id": st.sampled_from(["u", 3]),
     "session_id": st.just("s")},
    optional={"item_id": st.sampled_from(["i", ""]), "item_ids": st.lists(st.text(max_size=2),
                                                                          max_size=2),
              "ts": st.sampled_from([TS, 5, "x", 10**15]), "value": scalars,
              "context": st.dictionaries(st.sampled_from(["device", "x"]),
                                         st.one_of(scalars, st.lists(st.none(), max_size=1)),
                                         max_size=2),
              "colour": scalars})


@settings(max_examples=300, deadline=None)
@given(documents)
def test_decoder_and_schema_agree_on_generated_documents(doc: dict[str, Any]) -> None:
    try:
        jsonschema.validate(doc, INTERACTION)
        schema_ok = True
    except jsonschema.ValidationError:
        schema_ok = False
    try:
        decode_interaction(orjson.dumps(doc))
        decoder_ok = True
    except SchemaError:
        decoder_ok = False
    assert schema_ok == decoder_ok, doc
