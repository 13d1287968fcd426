"""The JVM validation (``Interactions.java``) and ``schemas/events.py`` accept and reject the same
documents, naming the same field, and agree on the canonical form of what they accept; the event
time the Kafka source reads from the raw document (``EventTimes.java``) is that of every event
accepted.

One Java process (``recs.stream.ValidateMain``) answers every generated document over a pipe.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infra.paths import java_binary
from schemas.events import MAX_EVENT_BYTES, SchemaError, decode_interaction
from stream import jvm
from tests.streamkit import MALFORMED

TS = 1_700_000_000_000


class Validator:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [java_binary(), "-cp", jvm.tool_classpath(), "recs.stream.ValidateMain"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def __call__(self, raw: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(orjson.dumps(raw) + b"\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"ValidateMain exited with {self.proc.poll()}")
        return dict(orjson.loads(line))

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def java() -> Iterator[Validator]:
    v = Validator()
    try:
        yield v
    finally:
        v.close()


def python(raw: str) -> dict[str, Any]:
    try:
        event = decode_interaction(raw.encode("utf-8", "surrogateescape"))
    except SchemaError as exc:
        return {"ok": False, "field": exc.field, "reason": str(exc)}
    return {"ok": True, "event": event.to_dict()}


def assert_same(java: Validator, raw: str) -> dict[str, Any]:
    want, got = python(raw), java(raw)
    assert got["ok"] == want["ok"], (raw[:300], want, got)
    if want["ok"]:
        assert got["event"] == want["event"], raw[:300]
        # the Kafka source's event time (EventTimes.java) is the accepted event's own
        assert got["source_ts"] == want["event"]["ts"], raw[:300]
    else:
        assert got["field"] == want["field"], (raw[:300], want["reason"], got["reason"])
        assert f".{want['field']}:" in got["reason"]
        letter = got["letter"]
        assert (letter["field"], letter["raw"], letter["stage"]) == (want["field"], raw, "parse")
    return got


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=5)
ids = st.one_of(st.sampled_from(["u1", "e-7", "ü", "x" * 128, "x" * 129, "😀" * 128]),
                st.text(min_size=1, max_size=8))
TYPES = ["view", "click", "add_to_cart", "purchase", "rating", "impression"]


def field(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a good value, sometimes anything JSON can hold."""
    return st.one_of(good, good, good, json_values)


documents = st.fixed_dictionaries(
    {"event_id": field(ids), "type": field(st.sampled_from([*TYPES, "like"])),
     "user_id": field(ids), "session_id": field(ids),
     "ts": field(st.sampled_from([TS, TS + 1, 631_152_000_000, 631_151_999_999,
                                  4_102_444_800_000, 4_102_444_800_001, 1_700_000_000]))},
    optional={
        "item_id": field(ids),
        "item_ids": field(st.lists(ids, min_size=0, max_size=4)),
        "value": field(st.sampled_from([0, 4.5, 10, 10.5, -1, 2**65])),
        "context": field(st.dictionaries(
            st.sampled_from(["device", "country", "page", "referrer", "n", "é"]),
            st.one_of(st.none(), st.text(max_size=4), st.integers(), st.booleans(),
                      st.lists(st.none(), max_size=1)), max_size=4)),
        "rec_id": field(ids), "variant": field(st.sampled_from(["A", "B" * 65])),
        "schema_version": st.sampled_from([1, 1.0, True, 2, None, "1"]),
        "colour": json_values, "ctx": json_values, "Ω": json_values,
    })


@settings(max_examples=600, deadline=None)
@given(documents)
def test_jvm_and_python_validation_agree_on_generated_documents(java: Validator,
                                                                doc: dict[str, Any]) -> None:
    assert_same(java, json.dumps(doc, ensure_ascii=False))


@settings(max_examples=200, deadline=None)
@given(documents, st.sampled_from(["cut", "trail", "wrap", "space"]), st.integers(0, 400))
def test_jvm_and_python_agree_on_broken_json(java: Validator, doc: dict[str, Any], how: str,
                                             at: int) -> None:
    text = json.dumps(doc)
    raw = {"cut": text[:at % (len(text) + 1)], "trail": text + " x", "wrap": f"[{text}]",
           "space": f" \n{text}\t"}[how]
    assert_same(java, raw)


@pytest.mark.parametrize(("raw", "field"), MALFORMED)
def test_the_e2e_malformed_records_name_the_same_field(java: Validator, raw: bytes,
                                                       field: str) -> None:
    assert assert_same(java, raw.decode())["field"] == field


@pytest.mark.parametrize("raw", [
    "", "null", "1e400", '{"a": 1e400}', '"x"', "{}", "{" * 50_000,
    '{"event_id":"e","type":"view","user_id":"u","session_id":"s","item_id":"i","ts":'
    + str(TS) + ',"context":{"page":"' + "é" * (MAX_EVENT_BYTES // 2) + '"}}',
    '{"event_id":"e","type":"view","user_id":"u","session_id":"s","item_id":"i","ts":'
    + str(TS) + ',"value":123456789012345678901234567890}',
    '{"event_id":"e","type":"view","user_id":"u","session_id":"s","item_id":"i",'
    '"ts":1700000000000.0}',
    '{"event_id":"e","type":"view","type":"click","user_id":"u","session_id":"s",'
    '"item_id":"i","ts":1700000000000}',
])
def test_edge_documents(java: Validator, raw: str) -> None:
    assert_same(java, raw)


EVENT = '"event_id":"e","type":"view","user_id":"u","session_id":"s","item_id":"i"'


@pytest.mark.parametrize(("raw", "ts"), [
    # "ts" elsewhere than as a top-level key: nested, as a value, inside strings
    ('{"context":{"ts":"1700000000999"},' + EVENT + ',"ts":1700000000000}', TS),
    ('{"ts" : 1700000000000 ,"context":{"ts":1700000000999},"item_ids":["ts"],' + EVENT + '}',
     TS),
    ('{"event_id":"e\\\",\"ts\":1700000000999","type":"view","user_id":"u",'
     '"session_id":"s","item_id":"i","ts":1700000000000}', TS),
    # duplicate keys: the last one, as the parsers
    ('{' + EVENT + ',"ts":1700000000999,"ts":1700000000000}', TS),
    ('{' + EVENT + ',"ts":1700000000000,"ts":1.7e12}', None),
    ('{' + EVENT + ',"ts":-1700000000000}', None),
    ('{' + EVENT + ',"ts":17000000000000000000000}', None),
    ('{' + EVENT + ',"ts":"1700000000000"}', None),
    ('{' + EVENT + ',"ts":1700000000000', TS),  # cut: malformed, its time read all the same
])
def test_the_source_reads_the_top_level_ts(java: Validator, raw: str, ts: int | None) -> None:
    assert assert_same(java, raw)["source_ts"] == ts
