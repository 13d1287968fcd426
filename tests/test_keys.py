"""Golden tests: the Redis key layout is a contract with every reader; changing it needs a new
layout version, not an edit here."""

from __future__ import annotations

import pytest

from operators import config
from operators.config import EngineConfig
from recs.settings import Settings
from state import keys
from state.records import Update, decode_envelope, encode_envelope

GOLDEN = [
    (keys.session_key("u42"), "recs:v1:session:u42"),
    (keys.similar_key("i7"), "recs:v1:similar:i7"),
    (keys.bought_key("i7"), "recs:v1:bought:i7"),
    (keys.similar_recent_key("i7"), "recs:v1:similar_recent:i7"),
    (keys.item_key("sku:9/x"), "recs:v1:item:sku:9/x"),
    (keys.itemstats_key("i7"), "recs:v1:itemstats:i7"),
    (keys.trending_key(), "recs:v1:trending:global"),
    (keys.trending_key("shoes"), "recs:v1:trending:cat:shoes"),
    (keys.trending_context_key("device", "mobile"), "recs:v1:trending:ctx:device:mobile"),
    (keys.trending_context_key("country", " DE "), "recs:v1:trending:ctx:country:de"),
    (keys.trending_context_key("daypart", "evening"), "recs:v1:trending:ctx:daypart:evening"),
    (keys.trending_context_scope("device", "Smart TV"), "ctx:device:smart tv"),
    (keys.new_arrivals_key(), "recs:v1:trending:new:global"),
    (keys.new_arrivals_key("shoes"), "recs:v1:trending:new:cat:shoes"),
    (keys.new_arrivals_scope(None), "new:global"),
    (keys.new_arrivals_scope("sku:9/x"), "new:cat:sku:9/x"),
    (keys.FRESHNESS_KEY, "recs:v1:meta:freshness"),
    (keys.itemvec_key("i7"), "recs:v1:itemvec:i7"),
    (keys.uservec_key("u42"), "recs:v1:uservec:u42"),
    (keys.model_key(keys.MODEL_MF), "recs:v1:model:mf"),
    (keys.model_key(keys.MODEL_RANKER), "recs:v1:model:ranker"),
    (keys.model_key(keys.MODEL_BLEND), "recs:v1:model:blend"),
    (keys.ITEMVEC_LOG_KEY, "recs:v1:meta:itemvec-log"),
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


def test_context_scope_splits_back() -> None:
    key = keys.trending_context_key("country", "us")
    assert keys.split_key(key) == (keys.KIND_TRENDING, "ctx:country:us")


@pytest.mark.parametrize(("dimension", "value", "match"), [
    ("browser", "firefox", "unknown dimension 'browser'"),
    ("device", "", "device value must be a string of 1..64 characters once stripped, got ''"),
    ("device", "   ", "got '   '"),
    ("country", "x" * 65, "country value must be"),
])
def test_context_scope_rejects_unknown_dimensions_and_unusable_values(
        dimension: str, value: str, match: str) -> None:
    with pytest.raises(ValueError, match=rf"state\.keys\.trending_context_scope: .*{match}"):
        keys.trending_context_key(dimension, value)


def test_context_values_up_to_64_characters_after_stripping() -> None:
    assert keys.context_value(" " + "A" * 64 + " ") == "a" * 64
    assert keys.context_value("a" * 65) is None
    assert keys.context_value(None) is None


def test_new_arrival_scopes_split_back_and_are_told_apart() -> None:
    assert keys.split_key(keys.new_arrivals_key("c1")) == (keys.KIND_TRENDING, "new:cat:c1")
    assert keys.is_new_arrivals_scope(keys.new_arrivals_scope())
    assert keys.is_new_arrivals_scope(keys.new_arrivals_scope("c1"))
    for scope in (keys.trending_scope(), keys.trending_scope("new"),
                  keys.trending_context_scope("device", "new")):
        assert not keys.is_new_arrivals_scope(scope), scope


def test_the_neighbour_relations_are_the_kinds_and_the_second_list_is_on_at_one_day() -> None:
    from stream.job import engine_config

    assert (config.SIMILAR, config.BOUGHT, config.SIMILAR_RECENT) == (
        keys.KIND_SIMILAR, keys.KIND_BOUGHT, keys.KIND_SIMILAR_RECENT)
    default = EngineConfig()
    assert default.neighbour(keys.KIND_SIMILAR_RECENT) == config.NeighbourConfig(
        default.similar.capacity, default.similar.top_k, 86_400.0)
    assert engine_config(Settings()).similar_recent == default.similar_recent
    assert Settings().similar_recent_on and Settings.from_env({}).similar_recent_on
    off = engine_config(Settings(similar_recent_half_life_s=0.0))
    assert off.similar_recent is None and off.neighbour("bought") is off.bought
    with pytest.raises(ValueError, match="relation 'similar_recent' is not kept"):
        off.neighbour(keys.KIND_SIMILAR_RECENT)
    on = engine_config(Settings(similar_recent_half_life_s=3_600.0))
    recent = on.neighbour(keys.KIND_SIMILAR_RECENT)
    assert (recent.capacity, recent.top_k, recent.half_life_s) == (
        off.similar.capacity, off.similar.top_k, 3_600.0)
    assert not Settings.from_env({"RECS_SIMILAR_RECENT_HALF_LIFE_S": "0"}).similar_recent_on
    with pytest.raises(ValueError, match="expected >= 0 \\(0: off\\), got -1"):
        config.recent_similar(off.similar, -1)
