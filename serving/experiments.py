"""A/B experiments: configuration, deterministic assignment, per-variant rules.

Assignment hashes ``salt/experiment/user`` with BLAKE2b (stable across processes, machines and
Python versions, unlike ``hash()``) to a bucket in ``[0, 10000)`` and walks the variants' weight
shares. A placement no experiment covers is served by the ``default`` variant with the base rules.

>>> exps = experiments_from_doc({"experiment": [{
...     "name": "hp", "placements": ["homepage"], "control": "a",
...     "variant": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1,
...                                                "params": {"mmr_lambda": 0.5}}]}]})
>>> v = exps.assign("homepage", "user-1")
>>> v.label, v == exps.assign("homepage", "user-1")
('hp/a', True)
>>> exps.assign("similar", "user-1").label
'default'
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from serving.rules import Rules, RulesError

DEFAULT_EXPERIMENTS_FILE: Final = Path(__file__).parent / "config" / "experiments.toml"
PLACEMENTS: Final = ("homepage", "session", "similar", "bought_together", "cart", "trending")
STRATEGIES: Final = ("blend", "trending")
BUCKETS: Final = 10_000
DEFAULT_VARIANT: Final = "default"
_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class ExperimentError(ValueError):
    """An experiments file that does not validate; names the field and the value."""


@dataclass(frozen=True, slots=True)
class Variant:
    experiment: str | None  # None: no experiment covers the placement
    name: str
    weight: int
    strategy: str
    rules: Rules

    @property
    def label(self) -> str:
        """The ``variant`` field of responses and events: ``experiment/variant``."""
        return self.name if self.experiment is None else f"{self.experiment}/{self.name}"


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    placements: tuple[str, ...]
    control: str
    salt: str
    variants: tuple[Variant, ...]

    def bucket(self, unit: str) -> int:
        digest = hashlib.blake2b(f"{self.salt}/{self.name}/{unit}".encode(),
                                 digest_size=8).digest()
        return int.from_bytes(digest, "big") % BUCKETS

    def assign(self, unit: str) -> Variant:
        total = sum(v.weight for v in self.variants)
        point = self.bucket(unit) * total / BUCKETS
        acc = 0
        for v in self.variants:
            acc += v.weight
            if point < acc:
                return v
        return self.variants[-1]


class Experiments:
    def __init__(self, experiments: Sequence[Experiment], base: Rules) -> None:
        self.experiments = tuple(experiments)
        self.default = Variant(None, DEFAULT_VARIANT, 1, "blend", base)
        self._by_placement: dict[str, Experiment] = {}
        for exp in experiments:
            for p in exp.placements:
                other = self._by_placement.get(p)
                if other is not None:
                    raise ExperimentError(f"experiments: placement {p!r} is covered by both "
                                          f"{other.name!r} and {exp.name!r}")
                self._by_placement[p] = exp

    def assign(self, placement: str, unit: str) -> Variant:
        """The variant serving ``unit`` (a user id, or the request's id when anonymous)."""
        exp = self._by_placement.get(placement)
        return self.default if exp is None else exp.assign(unit)


def _field(where: str, doc: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = doc.get(name, default)
    if value is None or (isinstance(value, bool) and kind is not bool) or \
            not isinstance(value, kind):
        raise ExperimentError(f"experiments: {where}.{name} must be a {kind.__name__}, "
                              f"got {value!r}")
    return value


def experiments_from_doc(doc: Mapping[str, Any], base: Rules | None = None) -> Experiments:
    base = base or Rules()
    unknown = set(doc) - {"experiment"}
    if unknown:
        raise ExperimentError(f"experiments: unknown top-level key {sorted(unknown)[0]!r}")
    out: list[Experiment] = []
    for i, raw in enumerate(_field("file", doc, "experiment", list, [])):
        name = _named_table(f"experiment[{i}]", raw)
        where = f"experiment {name!r}"
        placements = tuple(_field(where, raw, "placements", list))
        for p in placements:
            if p not in PLACEMENTS:
                raise ExperimentError(f"experiments: {where}.placements: unknown placement "
                                      f"{p!r} (known: {PLACEMENTS})")
        variants = tuple(_variant(f"{where}.variant[{j}]", name, v, base)
                         for j, v in enumerate(_field(where, raw, "variant", list)))
        if not variants:
            raise ExperimentError(f"experiments: {where} has no variants")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ExperimentError(f"experiments: {where} repeats a variant name: {names}")
        control = _field(where, raw, "control", str, names[0])
        if control not in names:
            raise ExperimentError(f"experiments: {where}.control must be one of {names}, "
                                  f"got {control!r}")
        salt = _field(where, raw, "salt", str, "")
        out.append(Experiment(name, placements, control, salt, variants))
    names = [e.name for e in out]
    if len(set(names)) != len(names):
        raise ExperimentError(f"experiments: experiment names repeat: {names}")
    return Experiments(out, base)


def _named_table(where: str, raw: Any) -> str:
    """The ``name`` of a TOML table that must have a valid one."""
    if not isinstance(raw, dict):
        raise ExperimentError(f"experiments: {where} must be a table, got {raw!r}")
    name: str = _field(where, raw, "name", str)
    if not _NAME.match(name):
        raise ExperimentError(f"experiments: {where}.name must match {_NAME.pattern}, "
                              f"got {name!r}")
    return name


def _variant(where: str, experiment: str, raw: Any, base: Rules) -> Variant:
    name = _named_table(where, raw)
    weight = _field(where, raw, "weight", int)
    if weight < 0:
        raise ExperimentError(f"experiments: {where}.weight must be >= 0, got {weight!r}")
    strategy = _field(where, raw, "strategy", str, "blend")
    if strategy not in STRATEGIES:
        raise ExperimentError(f"experiments: {where}.strategy must be one of {STRATEGIES}, "
                              f"got {strategy!r}")
    params = _field(where, raw, "params", dict, {})
    try:
        rules = base.with_overrides(params)
    except (RulesError, TypeError, ValueError) as exc:
        raise ExperimentError(f"experiments: {where}.params: {exc}") from None
    return Variant(experiment, name, weight, strategy, rules)


def load_experiments(path: Path | None = None, base: Rules | None = None) -> Experiments:
    path = path or DEFAULT_EXPERIMENTS_FILE
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ExperimentError(f"experiments: cannot read {path.name}: {exc}") from None
    return experiments_from_doc(doc, base)
