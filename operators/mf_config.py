"""The collaborative model's configuration, importable without numpy or River.

Every Python operator of the job imports :mod:`operators.config`, which holds an
:class:`MFConfig`; keeping it apart from :mod:`operators.online_mf` keeps the counting operators
from loading numpy, scipy and River when Flink opens them (in thread mode several task threads
unpickle their functions at once, and concurrent first imports of those extension modules
deadlocked the embedded interpreter: see ``stream/job.py``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

IMPLICIT: Final = "implicit"
EXPLICIT: Final = "explicit"
BIASED: Final = "biased"
FUNK: Final = "funk"
SQUARED: Final = "squared"
LOG: Final = "log"
DEFAULT_MF_WEIGHTS: Final = MappingProxyType(
    {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 4.0})


@dataclass(frozen=True, slots=True)
class MFConfig:
    mode: str = IMPLICIT
    model: str = BIASED
    n_factors: int = 16
    lr: float = 0.05              # latent SGD learning rate (× the event's weight)
    bias_lr: float = 0.001        # bias SGD learning rate (biased model only)
    l2: float = 0.03              # L2 on latent vectors
    l2_bias: float = 0.0          # L2 on biases (biased model only)
    init_sigma: float = 0.1       # latent vectors start as Normal(0, init_sigma)
    loss: str = SQUARED           # or "log" (implicit only: scores are logits)
    clip_gradient: float = 10.0   # cap on |loss gradient| (River's clip_gradient)
    negatives: int = 20           # sampled target-0 items per positive (implicit)
    positive_rating: float = 4.0  # implicit: ratings at or above are positives
    event_weights: Mapping[str, float] = field(default_factory=lambda: DEFAULT_MF_WEIGHTS)
    max_users: int = 1_000_000
    max_items: int = 1_000_000
    max_user_items: int = 200     # a user's newest items excluded from their negatives
    seed: int = 0

    def __post_init__(self) -> None:
        for name, allowed in (("mode", (IMPLICIT, EXPLICIT)), ("model", (BIASED, FUNK)),
                              ("loss", (SQUARED, LOG))):
            if getattr(self, name) not in allowed:
                _bad(name, f"expected one of {list(allowed)}", getattr(self, name))
        if self.mode == EXPLICIT and self.loss != SQUARED:
            _bad("loss", "explicit mode regresses ratings: needs 'squared'", self.loss)
        for names, low in ((("n_factors", "max_users", "max_items"), 1),
                           (("negatives", "max_user_items", "seed"), 0)):
            for name in names:
                value = getattr(self, name)
                if not (isinstance(value, int) and low <= value < 2**32):
                    _bad(name, f"must be an integer in [{low}, 2**32)", value)
        for name in ("lr", "bias_lr", "init_sigma", "clip_gradient", "l2", "l2_bias",
                     "positive_rating"):
            value, low = getattr(self, name), name.startswith(("l2", "positive"))
            if not (math.isfinite(value) and (value >= 0 if low else value > 0)):
                _bad(name, f"must be a finite number {'>=' if low else '>'} 0", value)
        weights = dict(self.event_weights)
        if any(not (isinstance(w, int | float) and math.isfinite(w) and w >= 0)
               for w in weights.values()):
            _bad("event_weights", "weights must be finite numbers >= 0", weights)
        top = max([1.0, *weights.values()])
        if max(self.lr, self.bias_lr) * top > 1.0:
            _bad("lr", f"lr × the largest weight ({top:g}) must be <= 1", self.lr)
        object.__setattr__(self, "event_weights", MappingProxyType(weights))

    def to_dict(self) -> dict[str, Any]:
        doc = {name: getattr(self, name) for name in self.__dataclass_fields__}
        return {**doc, "event_weights": dict(self.event_weights)}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> MFConfig:
        unknown = sorted(set(doc) - set(cls.__dataclass_fields__))
        if unknown:
            _bad(unknown[0], "unknown field", doc[unknown[0]])
        return cls(**doc)


def _bad(name: str, message: str, value: object) -> None:
    raise ValueError(f"operators.mf_config: MFConfig.{name}: {message}, got {value!r}")
