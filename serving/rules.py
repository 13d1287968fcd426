"""Re-ranking and business rules, as pure functions over scored candidates.

The configuration lives in one TOML file (``serving/config/rules.toml``; ``RECS_RULES_FILE``
points elsewhere); :func:`load_rules` validates it into a frozen :class:`Rules`. A/B variants
override single keys with :meth:`Rules.with_overrides`.

:func:`rerank` applies, in order: filters (deleted, out of stock, already purchased, explicit
excludes), boosts (promoted items, new arrivals), rotation (demote what the user was shown again
and again without acting on it), diversity (MMR over category/brand similarity, then per-category
and per-brand caps), and sponsored slots. Every rule that changes an item's score or place adds a
note to it, so the answer can say why an item sits where it does.

>>> from operators.blend import Evidence, Scored
>>> cands = [Scored("a", 3.0, [Evidence("session", 3.0, "x")]),
...          Scored("b", 2.0, [Evidence("session", 2.0, "x")]),
...          Scored("c", 1.0, [Evidence("trending", 1.0, "global")])]
>>> meta = {"a": {"category": "shoes"}, "b": {"category": "shoes", "stock": 0},
...         "c": {"category": "hats"}}
>>> [(r.item_id, r.notes) for r in rerank(cands, meta, Rules(), RerankInput(k=2))]
[('a', []), ('c', [])]
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final

from operators.blend import BlendParams, Scored

DEFAULT_RULES_FILE: Final = Path(__file__).parent / "config" / "rules.toml"
DIVERSITY_METHODS: Final = ("mmr", "caps", "none")
DAY_MS: Final = 86_400_000
SAME_CATEGORY: Final = 1.0  # MMR similarity of two items of one category
SAME_BRAND: Final = 0.5     # ... of two items of one brand (the larger of the two counts)
MMR_POOL: Final = 2         # MMR looks at the best MMR_POOL * k candidates


class RulesError(ValueError):
    """A rules file or override that does not validate; names the key and the value."""


@dataclass(frozen=True, slots=True)
class Rules:
    out_of_stock: bool = True
    already_purchased: bool = True
    diversity: str = "mmr"
    mmr_lambda: float = 0.7
    max_per_category: int = 4
    max_per_brand: int = 3
    diversity_placements: tuple[str, ...] = ("homepage", "cart")
    promoted: frozenset[str] = frozenset()
    promoted_factor: float = 1.5
    new_arrival_days: float = 14.0
    new_arrival_factor: float = 1.2
    rotation_after: int = 3
    rotation_penalty: float = 0.7
    sponsored: tuple[str, ...] = ()
    sponsored_slots: tuple[int, ...] = (3,)
    sponsored_placements: tuple[str, ...] = ("homepage",)
    explore_slot: int = 8
    explore_epsilon: float = 0.1
    blend: BlendParams = field(default_factory=BlendParams)

    def __post_init__(self) -> None:
        if self.diversity not in DIVERSITY_METHODS:
            raise RulesError(f"rules: diversity.method must be one of {DIVERSITY_METHODS}, "
                             f"got {self.diversity!r}")
        _in_range("diversity.mmr_lambda", self.mmr_lambda, 0.0, 1.0)
        _in_range("rotation.penalty", self.rotation_penalty, 0.0, 1.0)
        _in_range("exploration.epsilon", self.explore_epsilon, 0.0, 1.0)
        counts: tuple[tuple[str, object], ...] = (
            ("diversity.max_per_category", self.max_per_category),
                            ("diversity.max_per_brand", self.max_per_brand),
            ("rotation.after", self.rotation_after))
        for name, value in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise RulesError(f"rules: {name} must be an integer >= 1, got {value!r}")
        factors: tuple[tuple[str, object], ...] = (
            ("boosts.promoted_factor", self.promoted_factor),
            ("boosts.new_arrival_factor", self.new_arrival_factor),
            ("boosts.new_arrival_days", self.new_arrival_days))
        for name, value in factors:
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise RulesError(f"rules: {name} must be a finite number >= 0, got {value!r}")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 1
               for s in self.sponsored_slots):
            raise RulesError(f"rules: sponsored.slots must be integers >= 1, "
                             f"got {list(self.sponsored_slots)!r}")
        if isinstance(self.explore_slot, bool) or not isinstance(self.explore_slot, int) \
                or self.explore_slot < 0:
            raise RulesError(f"rules: exploration.slot must be an integer >= 0, "
                             f"got {self.explore_slot!r}")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Rules:
        """A copy with ``overrides`` (``{"mmr_lambda": 0.5, "blend.bought_weight": 0.2}``)."""
        flat: dict[str, Any] = {}
        blend: dict[str, Any] = {}
        names = {f.name for f in fields(self)} - {"blend"}
        blend_names = {f.name for f in fields(BlendParams)}
        for key, value in overrides.items():
            if key.startswith("blend."):
                name = key.removeprefix("blend.")
                if name not in blend_names:
                    raise RulesError(f"rules: unknown override {key!r} (value {value!r})")
                blend[name] = tuple(value) if isinstance(value, list) else value
            elif key in names:
                flat[key] = _coerce(key, value)
            else:
                raise RulesError(f"rules: unknown override {key!r} (value {value!r})")
        try:
            new_blend = replace(self.blend, **blend) if blend else self.blend
        except (TypeError, ValueError) as exc:
            raise RulesError(f"rules: bad blend override {blend!r}: {exc}") from None
        return replace(self, blend=new_blend, **flat)


def _coerce(key: str, value: Any) -> Any:
    if key in ("promoted",):
        return frozenset(_ids(key, value))
    if key in ("sponsored",):
        return tuple(_ids(key, value))
    if key in ("sponsored_slots", "diversity_placements", "sponsored_placements"):
        return tuple(value) if isinstance(value, list) else value
    return value


def _ids(key: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RulesError(f"rules: {key} must be a list of item ids, got {value!r}")
    return list(value)


def _in_range(name: str, value: Any, lo: float, hi: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise RulesError(f"rules: {name} must be a number in [{lo}, {hi}], got {value!r}")


_SECTIONS: Final = {
    "filters": {"out_of_stock": "out_of_stock", "already_purchased": "already_purchased"},
    "diversity": {"method": "diversity", "mmr_lambda": "mmr_lambda",
                  "max_per_category": "max_per_category", "max_per_brand": "max_per_brand",
                  "placements": "diversity_placements"},
    "boosts": {"promoted": "promoted", "promoted_factor": "promoted_factor",
               "new_arrival_days": "new_arrival_days",
               "new_arrival_factor": "new_arrival_factor"},
    "rotation": {"after": "rotation_after", "penalty": "rotation_penalty"},
    "sponsored": {"items": "sponsored", "slots": "sponsored_slots",
                  "placements": "sponsored_placements"},
    "exploration": {"slot": "explore_slot", "epsilon": "explore_epsilon"},
}


def rules_from_doc(doc: Mapping[str, Any]) -> Rules:
    """Validate a parsed rules document; unknown sections or keys are errors (typos surface)."""
    overrides: dict[str, Any] = {}
    for section, body in doc.items():
        if section == "blend":
            if not isinstance(body, dict):
                raise RulesError(f"rules: [blend] must be a table, got {body!r}")
            overrides.update({f"blend.{k}": v for k, v in body.items()})
            continue
        mapping = _SECTIONS.get(section)
        if mapping is None or not isinstance(body, dict):
            raise RulesError(f"rules: unknown section [{section}] (known: "
                             f"{sorted([*_SECTIONS, 'blend'])})")
        for key, value in body.items():
            if key not in mapping:
                raise RulesError(f"rules: unknown key {section}.{key} = {value!r}")
            overrides[mapping[key]] = value
    return Rules().with_overrides(overrides)


def load_rules(path: Path | None = None) -> Rules:
    path = path or DEFAULT_RULES_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"rules: cannot read {path.name}: {exc}") from None
    return rules_from_doc(doc)


# ---- re-ranking ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RerankInput:
    """What the rules need to know about the request, besides the candidates and metadata."""

    k: int
    placement: str = "homepage"
    now_ms: int = 0
    exclude: Collection[str] = ()
    purchased: Collection[str] = ()
    shown: Mapping[str, int] = field(default_factory=dict)  # item -> times shown to the user
    interacted: Collection[str] = ()  # items the user acted on (rotation spares them)


@dataclass(slots=True)
class Ranked:
    item_id: str
    score: float
    candidate: Scored
    rank_before: int                       # 1-based place in the blended order
    notes: list[str] = field(default_factory=list)
    sponsored: bool = False


Meta = Mapping[str, Mapping[str, Any] | None]


def rerank(cands: Sequence[Scored], meta: Meta, rules: Rules, req: RerankInput) -> list[Ranked]:
    kept = _filter(cands, meta, rules, req)
    changed = False
    for r in kept:
        _boost(r, meta.get(r.item_id), rules, req)
        _rotate(r, rules, req)
        changed = changed or bool(r.notes)
    if changed:  # stable: ties keep the sources' order
        kept.sort(key=lambda r: -r.score)
    diversify = req.placement in rules.diversity_placements
    if diversify and rules.diversity == "mmr":
        kept = _mmr(kept, meta, rules.mmr_lambda, req.k)
    if diversify and rules.diversity != "none":
        kept = _caps(kept, meta, rules.max_per_category, rules.max_per_brand, req.k)
    out = kept[:req.k]
    if rules.sponsored and req.placement in rules.sponsored_placements:
        out = _sponsor(out, cands, meta, rules, req)
    return out


def _filter(cands: Sequence[Scored], meta: Meta, rules: Rules,
            req: RerankInput) -> list[Ranked]:
    out: list[Ranked] = []
    purchased = set(req.purchased) if rules.already_purchased else set()
    for place, c in enumerate(cands, start=1):
        m = meta.get(c.item_id)
        sponsored_here = c.item_id in rules.sponsored and \
            req.placement in rules.sponsored_placements
        if c.item_id in req.exclude or c.item_id in purchased or _retired(m) or \
                (rules.out_of_stock and _sold_out(m)) or sponsored_here:
            continue
        out.append(Ranked(c.item_id, c.score, c, place))
    return out


def _retired(m: Mapping[str, Any] | None) -> bool:
    return bool(m and m.get("deleted"))


def _sold_out(m: Mapping[str, Any] | None) -> bool:
    stock = m.get("stock") if m else None
    return isinstance(stock, int) and not isinstance(stock, bool) and stock <= 0


def is_new_arrival(m: Mapping[str, Any] | None, rules: Rules, now_ms: int) -> bool:
    first = m.get("first_seen_ms") if m else None
    return isinstance(first, int) and 0 <= now_ms - first <= rules.new_arrival_days * DAY_MS


def _boost(r: Ranked, m: Mapping[str, Any] | None, rules: Rules, req: RerankInput) -> None:
    if r.item_id in rules.promoted and rules.promoted_factor != 1.0:
        r.score *= rules.promoted_factor
        r.notes.append(f"promoted ×{rules.promoted_factor:g}")
    if rules.new_arrival_factor != 1.0 and is_new_arrival(m, rules, req.now_ms):
        r.score *= rules.new_arrival_factor
        r.notes.append(f"new arrival ×{rules.new_arrival_factor:g}")


def _rotate(r: Ranked, rules: Rules, req: RerankInput) -> None:
    times = req.shown.get(r.item_id, 0)
    if times >= rules.rotation_after and r.item_id not in req.interacted:
        factor = rules.rotation_penalty ** (times - rules.rotation_after + 1)
        r.score *= factor
        r.notes.append(f"shown {times} times: ×{factor:.2g}")


def _attrs(m: Mapping[str, Any] | None) -> tuple[str | None, str | None]:
    if not m:
        return None, None
    cat, brand = m.get("category"), m.get("brand")
    return (cat if isinstance(cat, str) else None, brand if isinstance(brand, str) else None)


def _mmr(ranked: list[Ranked], meta: Meta, lam: float, k: int) -> list[Ranked]:
    """Greedy maximal marginal relevance over the best ``MMR_POOL * k`` candidates."""
    if lam >= 1.0 or len(ranked) < 2:
        return ranked
    pool, rest = ranked[:MMR_POOL * k], ranked[MMR_POOL * k:]
    top = max(r.score for r in pool) or 1.0
    attrs = [_attrs(meta.get(r.item_id)) for r in pool]
    penalty = [0.0] * len(pool)  # max similarity to anything picked so far
    left = list(range(len(pool)))
    picked: list[Ranked] = []
    while left and len(picked) < k:
        best = max(left, key=lambda i: (lam * pool[i].score / top - (1 - lam) * penalty[i], -i))
        left.remove(best)
        picked.append(pool[best])
        cat, brand = attrs[best]
        for i in left:
            c2, b2 = attrs[i]
            sim = SAME_CATEGORY if cat is not None and c2 == cat else \
                SAME_BRAND if brand is not None and b2 == brand else 0.0
            penalty[i] = max(penalty[i], sim)
        if picked[-1] is not pool[len(picked) - 1]:
            picked[-1].notes.append("moved by diversity (MMR)")
    return picked + [pool[i] for i in left] + rest


def _caps(ranked: list[Ranked], meta: Meta, max_cat: int, max_brand: int,
          k: int) -> list[Ranked]:
    """At most ``max_cat`` per category and ``max_brand`` per brand among the first ``k``;
    items over a cap move behind the rest (used only if nothing else fills the answer)."""
    cats: dict[str, int] = {}
    brands: dict[str, int] = {}
    head: list[Ranked] = []
    tail: list[Ranked] = []
    for r in ranked:
        cat, brand = _attrs(meta.get(r.item_id))
        over = (cat is not None and cats.get(cat, 0) >= max_cat) or \
            (brand is not None and brands.get(brand, 0) >= max_brand)
        if over and len(head) < k:
            capped = f"category {cat}" if cat is not None and cats.get(cat, 0) >= max_cat \
                else f"brand {brand}"
            r.notes.append(f"moved down: {capped} cap")
            tail.append(r)
            continue
        head.append(r)
        if cat is not None:
            cats[cat] = cats.get(cat, 0) + 1
        if brand is not None:
            brands[brand] = brands.get(brand, 0) + 1
    return head + tail


def _sponsor(out: list[Ranked], cands: Sequence[Scored], meta: Meta, rules: Rules,
             req: RerankInput) -> list[Ranked]:
    """Put eligible sponsored items (in stock, not excluded or bought) into their slots."""
    purchased = set(req.purchased) if rules.already_purchased else set()
    eligible = [s for s in rules.sponsored
                if s not in req.exclude and s not in purchased and s in meta
                and not _retired(meta.get(s))
                and not (rules.out_of_stock and _sold_out(meta.get(s)))]
    by_id = {c.item_id: c for c in cands}
    for slot, item_id in zip(sorted(rules.sponsored_slots), eligible, strict=False):
        place = min(slot, len(out) + 1)
        cand = by_id.get(item_id) or Scored(item_id, 0.0, [])
        r = Ranked(item_id, out[place - 2].score if place > 1 else cand.score, cand, place,
                   [f"sponsored slot {slot}"], sponsored=True)
        out.insert(place - 1, r)
    return out[:req.k]
