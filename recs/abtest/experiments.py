"""The experiments the report compares: from the serving TOML file, or inferred from the data.

The file is read and validated by the server's parser (:mod:`serving.experiments`); the report
keeps what it needs: each experiment's ``name``, ``control`` and variant names.

>>> infer_control(["b", "control", "a"]), infer_control(["treat", "base"])
('control', 'base')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

DEFAULT_PATH: Final = Path("serving/config/experiments.toml")  # from the working directory
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
    """The experiments of the server's file at ``path``, validated by the server's own parser
    (:func:`serving.experiments.load_experiments`: one contract, one parser)."""
    from serving.experiments import ExperimentError
    from serving.experiments import load_experiments as load_serving

    try:
        exps = load_serving(path)
    except ExperimentError as exc:
        err = ExperimentConfigError(str(path), "<file>", str(exc), str(path))
        err.args = (f"{path}: {exc}",)  # the server's message already names field and value
        raise err from None
    return tuple(Experiment(e.name, e.control, tuple(v.name for v in e.variants), "config")
                 for e in exps.experiments)


def resolve(configured: Iterable[Experiment],
            observed: dict[str, set[str]]) -> tuple[list[Experiment], list[str]]:
    """The experiments to report, and notes on how data and configuration disagree.

    ``observed`` maps each experiment name seen in the data to its variant names. Configured
    experiments are kept (also with no data); experiments seen only in the data get an inferred
    control; variants seen but not configured are added to their experiment (and noted).

    >>> conf = [Experiment("x", "a", ("a",), "config")]
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
