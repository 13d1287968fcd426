"""The experiments the report compares: from the serving TOML file, or inferred from the data.

Only what the report needs is read from the file: each experiment's ``name``, ``control`` and
variant names. Everything else (placements, weights, strategies) belongs to the server, which
validates it; the report leaves it alone.

>>> doc = '''
... [[experiment]]
... name = "homepage-ranking"
... control = "blend"
... [[experiment.variant]]
... name = "blend"
... [[experiment.variant]]
... name = "diverse"
... '''
>>> [(e.name, e.control, e.variants) for e in parse_experiments(doc)]
[('homepage-ranking', 'blend', ('blend', 'diverse'))]
>>> try:
...     parse_experiments(doc.replace('"homepage-ranking"', '"Home Page"'))
... except ExperimentConfigError as exc:
...     print(exc.field, repr(exc.value))
experiment[0].name 'Home Page'
>>> infer_control(["b", "control", "a"]), infer_control(["treat", "base"])
('control', 'base')
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

DEFAULT_PATH: Final = Path("serving/config/experiments.toml")
NAME_RE: Final = re.compile(r"[a-z0-9-]+")
CONTROL_NAME: Final = "control"

ControlSource = Literal["config", "inferred"]


class ExperimentConfigError(ValueError):
    """The experiments file broke its contract; ``field`` and ``value`` say where and what."""

    def __init__(self, source: str, field_name: str, message: str, value: Any) -> None:
        self.source = source
        self.field = field_name
        self.value = value
        super().__init__(f"{source}: {field_name}: {message}, got {value!r}")


@dataclass(frozen=True, slots=True)
class Experiment:
    name: str
    control: str
    variants: tuple[str, ...]
    control_source: ControlSource


def infer_control(variants: Iterable[str]) -> str:
    """The variant named ``control`` if there is one, else the alphabetically first."""
    names = sorted(set(variants))
    if not names:
        raise ValueError("infer_control.variants: expected at least one variant, got []")
    return CONTROL_NAME if CONTROL_NAME in names else names[0]


def load_experiments(path: Path) -> tuple[Experiment, ...]:
    """Read and validate the experiments file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ExperimentConfigError(str(path), "<file>", f"cannot be read ({exc.strerror})",
                                    str(path)) from None
    return parse_experiments(text, source=str(path))


def parse_experiments(text: str, *, source: str = "<experiments>") -> tuple[Experiment, ...]:
    """Parse the TOML text; raise :class:`ExperimentConfigError` on the first problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ExperimentConfigError(source, "<document>", f"not valid TOML ({exc})",
                                    text[:80]) from None
    raw = doc.get("experiment", [])
    if not isinstance(raw, list):
        raise ExperimentConfigError(source, "experiment",
                                    "expected an array of tables ([[experiment]])", raw)
    out: list[Experiment] = []
    seen: set[str] = set()
    for i, table in enumerate(raw):
        exp = _experiment(source, f"experiment[{i}]", table)
        if exp.name in seen:
            raise ExperimentConfigError(source, f"experiment[{i}].name", "duplicate name",
                                        exp.name)
        seen.add(exp.name)
        out.append(exp)
    return tuple(out)


def _name(source: str, where: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise ExperimentConfigError(source, where, "expected a non-empty string of [a-z0-9-]",
                                    value)
    return value


def _experiment(source: str, where: str, table: Any) -> Experiment:
    if not isinstance(table, dict):
        raise ExperimentConfigError(source, where, "expected a table", table)
    name = _name(source, f"{where}.name", table.get("name"))
    variants_raw = table.get("variant")
    if not isinstance(variants_raw, list) or not variants_raw:
        raise ExperimentConfigError(source, f"{where}.variant",
                                    "expected a non-empty array of tables "
                                    "([[experiment.variant]])", variants_raw)
    variants: list[str] = []
    for j, var in enumerate(variants_raw):
        vwhere = f"{where}.variant[{j}]"
        if not isinstance(var, dict):
            raise ExperimentConfigError(source, vwhere, "expected a table", var)
        vname = var.get("name")
        if not isinstance(vname, str) or not vname or "/" in vname or vname.strip() != vname:
            raise ExperimentConfigError(source, f"{vwhere}.name", "expected a non-empty string "
                                        "without '/' or surrounding spaces", vname)
        if vname in variants:
            raise ExperimentConfigError(source, f"{vwhere}.name", "duplicate variant name",
                                        vname)
        variants.append(vname)
    control = table.get("control")
    if not isinstance(control, str) or control not in variants:
        raise ExperimentConfigError(source, f"{where}.control",
                                    f"expected one of the variant names {variants}", control)
    return Experiment(name, control, tuple(variants), "config")


def resolve(configured: Iterable[Experiment],
            observed: dict[str, set[str]]) -> tuple[list[Experiment], list[str]]:
    """The experiments to report, and notes on how data and configuration disagree.

    ``observed`` maps each experiment name seen in the data to its variant names. Configured
    experiments are kept (also with no data); experiments seen only in the data get an inferred
    control; variants seen but not configured are added to their experiment (and noted).

    >>> conf = parse_experiments('[[experiment]]\\nname = "x"\\ncontrol = "a"\\n'
    ...                          '[[experiment.variant]]\\nname = "a"\\n')
    >>> exps, notes = resolve(conf, {"x": {"a", "b"}, "y": {"t", "control"}})
    >>> [(e.name, e.control, e.variants, e.control_source) for e in exps]
    [('x', 'a', ('a', 'b'), 'config'), ('y', 'control', ('control', 't'), 'inferred')]
    >>> for note in notes:
    ...     print(note[:60])
    x: variant 'b' is in the data but not in the configuration
    y: not in the configuration; control 'control' inferred (the
    """
    out: list[Experiment] = []
    notes: list[str] = []
    configured_names: set[str] = set()
    for exp in configured:
        configured_names.add(exp.name)
        extra = sorted(observed.get(exp.name, set()) - set(exp.variants))
        for v in extra:
            notes.append(f"{exp.name}: variant {v!r} is in the data but not in the "
                         "configuration")
        out.append(Experiment(exp.name, exp.control, (*exp.variants, *extra),
                              exp.control_source))
    for name in sorted(set(observed) - configured_names):
        variants = tuple(sorted(observed[name]))
        control = infer_control(variants)
        notes.append(f"{name}: not in the configuration; control {control!r} inferred (the "
                     f"variant named {CONTROL_NAME!r}, else the alphabetically first)")
        out.append(Experiment(name, control, variants, "inferred"))
    return out, notes
