"""Golden tests: the Redis key layout is a contract with every reader; changing it needs a new
layout version, not an edit here."""

from __future__ import annotations

import pytest

from state import keys
from state.records import Update, decode_envelope, encode_envelope

GOLDEN = [
    (keys.session_key("u42"), "recs:v1:session:u42"),
    (keys.similar_key("i7"), "recs:v1:similar:i7"),
    (keys.bought_key("i7"), "recs:v1:bought:i7"),
    (keys.item_key("sku:9/x"), "recs:v1:item:sku:9/x"),
    (keys.itemstats_key("i7"), "recs:v1:itemstats:i7"),
    (keys.trending_key(), "recs:v1:trending:global"),
    (keys.trending_key("shoes"), "recs:v1:trending:cat:shoes"),
    (keys.FRESHNESS_KEY, "recs:v1:meta:freshness"),
]


@pytest.mark.parametrize(("built", "expected"), GOLDEN)
def test_key_bytes_are_pinned(built: str, expected: str) -> None:
    assert built == expected


def test_layout_version_is_in_the_prefix() -> None:
    assert keys.LAYOUT_VERSION == 1
    assert keys.PREFIX == "recs:v1:"


@pytest.mark.parametrize("kind", keys.KINDS)
def test_split_inverts_key_for(kind: str) -> None:
    assert keys.split_key(keys.key_for(kind, "a:b")) == (kind, "a:b")


@pytest.mark.parametrize("bad", ["recs:v2:session:u", "other:v1:session:u", "recs:v1:nope:x",
                                 "recs:v1:session:"])
def test_split_rejects_foreign_keys(bad: str) -> None:
    with pytest.raises(ValueError, match=r"state\.keys"):
        keys.split_key(bad)


def test_unknown_kind_and_empty_entity_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        keys.key_for("sessions", "u")
    with pytest.raises(ValueError, match="empty entity"):
        keys.key_for("session", "")


def test_envelope_bytes_are_pinned() -> None:
    # the conditional-write Lua script reads the version from the first bytes
    update = Update("k", 1_700_000_000_123, 1_700_000_000_123, {"items": [["i1", 1.5]]})
    raw = encode_envelope(update)
    assert raw == b'{"v":1700000000123,"t":1700000000123,"d":{"items":[["i1",1.5]]}}'
    assert decode_envelope(raw).data == {"items": [["i1", 1.5]]}
