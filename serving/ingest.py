"""``POST /v1/events``: validate a batch of interaction events, all or nothing.

The body is one event object or a JSON array of them (at most :data:`MAX_EVENTS`). Every event
goes through the same decoder as the stream (:func:`schemas.events.interaction_from_dict`); the
answer to a bad batch is one 422 that lists every bad field of every event (index, field, value,
message), so a producer fixes them all at once. A good batch is published whole.

>>> events, errors = validate(b'[{"event_id": "e1", "type": "view", "user_id": "u",'
...                           b' "session_id": "s", "item_id": "i", "ts": 1700000000000}]')
>>> len(events), errors
(1, [])
>>> _, errors = validate(b'{"event_id": "", "type": "wave", "user_id": "u", "ts": 5}')
>>> sorted(e["field"] for e in errors)
['event_id', 'item_id', 'session_id', 'ts', 'type']
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from schemas.events import Interaction, SchemaError, interaction_from_dict
from serving.limits import MAX_JSON_DEPTH, depth_ok

MAX_EVENTS: Final = 1000
MAX_ERRORS_PER_EVENT: Final = 16
REQUIRED: Final = ("event_id", "type", "user_id", "session_id", "ts")


def validate(body: bytes) -> tuple[list[Interaction], list[dict[str, Any]]]:
    """Decoded events and the list of errors (empty when the batch is good)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        shown = body[:80].decode("utf-8", "replace")
        return [], [{"index": None, "field": "<body>", "value": shown,
                     "message": f"not valid JSON ({exc})"}]
    if not depth_ok(doc):
        return [], [{"index": None, "field": "<body>", "value": None,
                     "message": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"}]
    items = doc if isinstance(doc, list) else [doc]
    if not items or len(items) > MAX_EVENTS:
        return [], [{"index": None, "field": "<body>", "value": len(items),
                     "message": f"expected 1..{MAX_EVENTS} events"}]
    events: list[Interaction] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append({"index": index, "field": "<event>", "value": _shown(item),
                           "message": "expected a JSON object"})
            continue
        event, found = _all_errors(item)
        if found:
            errors.extend({"index": index, **e} for e in found)
        elif event is not None:
            events.append(event)
    return events, errors


def _all_errors(doc: dict[str, Any]) -> tuple[Interaction | None, list[dict[str, Any]]]:
    """Every field error of one event: decode, note the failing field, set it aside, repeat.

    A missing required field is replaced by a valid placeholder so the fields after it are
    checked too; the placeholder never reaches Kafka (an event with errors is not published).
    """
    work = dict(doc)
    errors: list[dict[str, Any]] = []
    seen: set[str] = set()
    for _ in range(MAX_ERRORS_PER_EVENT):
        try:
            event = interaction_from_dict(work)
        except SchemaError as err:
            name = err.field
            if name in seen:  # the placeholder did not help: stop rather than loop
                break
            seen.add(name)
            errors.append({"field": name, "value": _shown(err.value), "message": str(err)})
            _set_aside(work, name)
            continue
        return (event if not errors else None), errors
    return None, errors


_PLACEHOLDERS: Final[dict[str, Any]] = {
    "event_id": "x", "user_id": "x", "session_id": "x", "ts": 1_700_000_000_000,
    "type": "view", "item_id": "x", "item_ids": ["x"], "value": 1.0,
}


def _set_aside(work: dict[str, Any], name: str) -> None:
    top, _, sub = name.partition(".")
    top = top.split("[", 1)[0]
    if sub and isinstance(work.get(top), dict):
        context = dict(work[top])
        context.pop(sub, None)
        work[top] = context
    elif top in _PLACEHOLDERS:
        work[top] = _PLACEHOLDERS[top]
    else:
        work.pop(top, None)


def _shown(value: Any) -> Any:
    if isinstance(value, str) and len(value) > 80:
        return value[:80] + "..."
    if isinstance(value, list | dict):
        text = orjson.dumps(value).decode()
        return text if len(text) <= 80 else text[:80] + "..."
    return value


def record(event: Interaction) -> tuple[bytes, bytes]:
    """The Kafka record of an event: key = user id (the topic's partitioning contract)."""
    return event.user_id.encode(), event.to_json()
