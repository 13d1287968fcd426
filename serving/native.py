"""The compiled core: Rust twins of pure steps of the serving path, chosen once at start-up.

``native/`` holds a Rust crate (PyO3) with one file per twin, each naming its Python original
(``native/src/blend.rs`` ↔ :func:`operators.blend.blend`, ``native/src/rules.rs`` ↔
:func:`serving.rules.rerank`, ``native/src/learned.rs`` ↔ the learned blend's features and
order, ``operators.learned_blend._features`` and :func:`~operators.learned_blend.
learned_order`). ``make install`` builds it with cargo into ``serving/_core*.so``
(``native/build.sh``); without cargo, or when the build failed, the module is absent and the
server runs the Python functions, which stay the specification and the reference:
``tests/serving/test_native_parity.py`` runs both on the same generated inputs and the
answer-equality test runs a whole server on each. ``RECS_NATIVE=0``
(:attr:`recs.settings.Settings.native`) forces the Python path.

>>> python().name, python().blend is blend, python().rerank is rerank
('python', True, True)
>>> python().features is learned_blend._features, python().learned_order is learned_order
(True, True)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final, Protocol

from operators import learned_blend
from operators.blend import blend
from operators.learned_blend import learned_order
from serving.rules import rerank

log = logging.getLogger("serving")

NATIVE: Final = "native"
PYTHON: Final = "python"
# native/Cargo.toml's version, raised with every change of a twin's arguments (0.2.0: the
# features' similar_recent; 0.3.0: their now, the age features): a module built from older
# sources is not loaded, the Python path runs instead of a call that would fail on every warm
# homepage (or compute features other than those the weights were learned on)
CORE_VERSION: Final = "0.3.0"


class BlendFn(Protocol):
    """:func:`operators.blend.blend`'s signature."""

    def __call__(self, session: Any, similar: Any, bought: Any, fills: Any, params: Any, *,
                 k: int, exclude: Any = (), vector: Any = (), vector_because: str = "",
                 vector_events: int = 0) -> Any: ...


class RerankFn(Protocol):
    """:func:`serving.rules.rerank`'s signature."""

    def __call__(self, cands: Any, meta: Any, rules: Any, req: Any) -> Any: ...


class FeaturesFn(Protocol):
    """``operators.learned_blend._features``' signature."""

    def __call__(self, prior: Any, session: Any, similar: Any, fills: Any, params: Any,
                 cfg: Any, exclude: Any, *, similar_recent: Any = None,
                 now: Any = None) -> Any: ...


class OrderFn(Protocol):
    """:func:`operators.learned_blend.learned_order`'s signature."""

    def __call__(self, model: Any, cands: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Kernels:
    """The implementation of each pure step the server calls."""

    name: str  # NATIVE or PYTHON
    blend: BlendFn
    rerank: RerankFn
    features: FeaturesFn
    learned_order: OrderFn


def python() -> Kernels:
    return Kernels(PYTHON, blend, rerank, learned_blend._features, learned_order)


def compiled() -> Kernels | None:
    """The compiled twins, ``None`` when the module was not built (or does not load, or was
    built from older sources: its version is not :data:`CORE_VERSION`)."""
    try:
        from serving import _core
    except ImportError:
        return None
    if getattr(_core, "VERSION", None) != CORE_VERSION:
        log.warning("serving: compiled core built from older sources version=%s expected=%s "
                    "(make install rebuilds it): running the Python path",
                    getattr(_core, "VERSION", None), CORE_VERSION)
        return None
    return Kernels(NATIVE, _core.blend, _core.rerank, _core.features, _core.learned_order)


def load(enabled: bool) -> Kernels:
    """The compiled twins when ``enabled`` and built, else the Python functions; says which
    (one log line)."""
    if not enabled:
        log.info("serving: compiled core off (RECS_NATIVE=0): running the Python path")
        return python()
    kernels = compiled()
    if kernels is None:
        log.warning("serving: compiled core not built (no serving/_core module: make install "
                    "builds it with cargo, native/build.sh): running the Python path")
        return python()
    log.info("serving: compiled core loaded (native/): blend, rerank, features, learned_order")
    return kernels
