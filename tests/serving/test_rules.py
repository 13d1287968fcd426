"""Re-ranking and business rules as pure functions, with property tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.blend import Evidence, Scored
from serving.rules import (
    DAY_MS,
    RerankInput,
    Rules,
    RulesError,
    load_rules,
    rerank,
    rules_from_doc,
)

CATS = ["shoes", "hats", "mugs", "lamps"]
BRANDS = ["acme", "zeta", "nova"]


def cands_of(n: int) -> list[Scored]:
    return [Scored(f"i{i}", float(n - i), [Evidence("session", float(n - i), "x")])
            for i in range(n)]


@st.composite
def catalogues(draw: Any) -> tuple[list[Scored], dict[str, dict[str, Any] | None]]:
    n = draw(st.integers(1, 40))
    cands = cands_of(n)
    meta: dict[str, dict[str, Any] | None] = {}
    for c in cands:
        if draw(st.booleans()) and draw(st.booleans()):
            meta[c.item_id] = None  # no metadata at all
            continue
        meta[c.item_id] = {"category": draw(st.sampled_from(CATS)),
                           "brand": draw(st.sampled_from(BRANDS)),
                           "stock": draw(st.sampled_from([None, 0, 3])),
                           "deleted": draw(st.sampled_from([False, False, True]))}
    return cands, meta


@given(catalogues(), st.integers(1, 20), st.sets(st.sampled_from([f"i{i}" for i in range(40)])),
       st.sets(st.sampled_from([f"i{i}" for i in range(40)])),
       st.sampled_from(["mmr", "caps", "none"]))
@settings(max_examples=300, deadline=None)
def test_filters_never_leak_and_answers_are_unique(cat: Any, k: int, exclude: set[str],
                                                   purchased: set[str], method: str) -> None:
    cands, meta = cat
    out = rerank(cands, meta, Rules(diversity=method), RerankInput(
        k=k, exclude=exclude, purchased=purchased))
    ids = [r.item_id for r in out]
    assert len(ids) == len(set(ids)) <= k
    for item_id in ids:
        m = meta.get(item_id) or {}
        assert item_id not in exclude
        assert item_id not in purchased
        assert not m.get("deleted")
        assert m.get("stock") != 0
    # nothing eligible is lost when there is room for it
    eligible = [c.item_id for c in cands if c.item_id not in exclude | purchased
                and not (meta.get(c.item_id) or {}).get("deleted")
                and (meta.get(c.item_id) or {}).get("stock") != 0]
    assert len(ids) == min(k, len(eligible))


@given(catalogues(), st.integers(1, 12), st.integers(1, 4), st.integers(1, 4),
       st.sampled_from(["mmr", "caps"]))
@settings(max_examples=300, deadline=None)
def test_diversity_caps_hold_whenever_enough_other_items_exist(
        cat: Any, k: int, max_cat: int, max_brand: int, method: str) -> None:
    cands, meta = cat
    rules = Rules(diversity=method, max_per_category=max_cat, max_per_brand=max_brand)
    out = rerank(cands, meta, rules, RerankInput(k=k))
    # the caps may only be broken by items that had to fill the answer: every item over a cap
    # comes after every item within the caps
    over_seen = False
    cats: dict[str, int] = {}
    brands: dict[str, int] = {}
    for r in out:
        m = meta.get(r.item_id) or {}
        c, b = m.get("category"), m.get("brand")
        over = (c is not None and cats.get(c, 0) >= max_cat) or \
            (b is not None and brands.get(b, 0) >= max_brand)
        if over:
            over_seen = True
            assert any("cap" in n for n in r.notes)
        else:
            assert not over_seen, "an item within the caps was placed after a capped one"
        if c is not None:
            cats[c] = cats.get(c, 0) + 1
        if b is not None:
            brands[b] = brands.get(b, 0) + 1


def test_caps_apply_only_to_their_placements() -> None:
    cands = cands_of(6)
    meta = {c.item_id: {"category": "shoes"} for c in cands}
    rules = Rules(diversity="caps", max_per_category=2)
    capped = rerank(cands, meta, rules, RerankInput(k=4, placement="homepage"))
    assert [n for r in capped[2:] for n in r.notes] == ["moved down: category shoes cap"] * 2
    similar = rerank(cands, meta, rules, RerankInput(k=4, placement="similar"))
    assert [r.item_id for r in similar] == ["i0", "i1", "i2", "i3"]


def test_mmr_interleaves_categories() -> None:
    cands = cands_of(6)
    meta = {f"i{i}": {"category": "shoes" if i < 3 else "hats"} for i in range(6)}
    out = rerank(cands, meta, Rules(diversity="mmr", mmr_lambda=0.5, max_per_category=10),
                 RerankInput(k=4))
    cats = [meta[r.item_id]["category"] for r in out]
    # the first hat jumps ahead of two shoes; once both categories are in, every candidate is
    # equally similar to a pick and relevance decides again
    assert cats == ["shoes", "hats", "shoes", "shoes"]
    assert out[1].item_id == "i3" and "moved by diversity (MMR)" in out[1].notes


def test_boosts_promote_and_new_arrivals_with_notes() -> None:
    now = 100 * DAY_MS
    cands = cands_of(3)  # scores 3, 2, 1
    meta = {"i0": {}, "i1": {"first_seen_ms": now - DAY_MS}, "i2": {}}
    rules = Rules(diversity="none", promoted=frozenset({"i2"}), promoted_factor=4.0,
                  new_arrival_factor=2.0)
    out = rerank(cands, meta, rules, RerankInput(k=3, now_ms=now))
    assert [(r.item_id, r.score) for r in out] == [("i1", 4.0), ("i2", 4.0), ("i0", 3.0)]
    assert out[0].notes == ["new arrival ×2"]
    assert out[1].notes == ["promoted ×4"]
    # an old item is not new
    meta["i1"]["first_seen_ms"] = now - 30 * DAY_MS
    out = rerank(cands, meta, rules, RerankInput(k=3, now_ms=now))
    assert out[0].item_id == "i2"


def test_rotation_demotes_items_shown_again_and_again_but_not_acted_on() -> None:
    cands = cands_of(3)
    meta: dict[str, Any] = {c.item_id: {} for c in cands}
    rules = Rules(diversity="none", rotation_after=2, rotation_penalty=0.5)
    out = rerank(cands, meta, rules, RerankInput(k=3, shown={"i0": 3, "i1": 1}))
    assert [r.item_id for r in out] == ["i1", "i2", "i0"]  # i0: 3 * 0.5**2 = 0.75
    assert out[2].notes == ["shown 3 times: ×0.25"]
    spared = rerank(cands, meta, rules, RerankInput(k=3, shown={"i0": 3}, interacted={"i0"}))
    assert spared[0].item_id == "i0"


def test_sponsored_items_take_their_slots_when_eligible() -> None:
    cands = cands_of(5)
    meta: dict[str, Any] = {c.item_id: {} for c in cands}
    meta.update({"ad1": {"title": "Ad"}, "ad2": {"stock": 0}})
    rules = Rules(diversity="none", sponsored=("ad2", "ad1", "i4"), sponsored_slots=(2, 4))
    out = rerank(cands, meta, rules, RerankInput(k=4))
    # ad2 is sold out: ad1 takes slot 2, i4 (sponsored, so never organic) slot 4
    assert [r.item_id for r in out] == ["i0", "ad1", "i1", "i4"]
    assert out[1].sponsored and out[1].notes == ["sponsored slot 2"]
    # not on placements without sponsored slots; there i4 is organic again
    plain = rerank(cands, meta, rules, RerankInput(k=5, placement="similar"))
    assert [r.item_id for r in plain] == ["i0", "i1", "i2", "i3", "i4"]


def test_rules_file_shipped_loads_and_errors_name_key_and_value(tmp_path: Path) -> None:
    rules = load_rules()
    assert rules.diversity == "mmr" and rules.blend.remind == (0.6, 0.3, 0.15)
    cases = [
        ({"diversity": {"method": "random"}}, "diversity.method.*'random'"),
        ({"diversity": {"mmr_lambda": 2}}, "mmr_lambda.*2"),
        ({"rotation": {"after": 0}}, "rotation.after.*0"),
        ({"boosts": {"promoted": "i1"}}, "promoted.*'i1'"),
        ({"filterz": {}}, r"unknown section \[filterz\]"),
        ({"filters": {"out_of_stok": True}}, "filters.out_of_stok"),
        ({"blend": {"recent": 0}}, "recent.*0"),
        ({"sponsored": {"slots": [0]}}, "sponsored.slots.*0"),
    ]
    for doc, pattern in cases:
        with pytest.raises(RulesError, match=pattern):
            rules_from_doc(doc)
    bad = tmp_path / "rules.toml"
    bad.write_text("[diversity\n")
    with pytest.raises(RulesError, match=r"cannot read rules\.toml"):
        load_rules(bad)
