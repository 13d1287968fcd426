"""First imports of the model stack, done on a fresh thread inside Flink's embedded Python.

In thread mode (``stream/job.py``) every Python operator of a task runs in the JVM on the task's
thread, each with its own Python thread state; a task chaining two Python operators puts two
thread states on one OS thread. CPython's ``PyGILState_Ensure`` knows one thread state per OS
thread (the first one), so when code running under the second one calls it, it waits for the
GIL its own thread already holds, forever. pybind11 extension modules call it once, when they
are first imported (``get_internals``), and SciPy has several (``scipy.spatial``,
``scipy.optimize``, ``scipy.fft``), imported by River's ``linear_model``. So whenever the first
import of River happened under a chained operator's second thread state, the job hung at
start-up, in about one start in ten at parallelism 2 (diagnosed from native stacks: the
opening operator blocked in ``take_gil`` under ``PyGILState_Ensure`` in
``PyInit__distance_pybind``).

:func:`preload` imports the model stack on a new thread, which has exactly one thread state, and
waits for it; ``stream/__init__.py`` calls it when it finds itself in the embedded interpreter,
before any operator module is unpickled. Imports are per process, so it runs once per JVM. Once
the model stack has been imported, the job imports no further extension modules (measured by
running the models over a generated log), and nothing else in it calls ``PyGILState_Ensure``.

This module imports nothing heavy itself: the counting operators' modules stay light
(:mod:`stream.functions` loads neither numpy, SciPy nor River; a test holds it to that).
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence
from typing import Final

#: Importing these pulls in numpy, SciPy (with its pybind11 modules), pandas and River.
MODEL_STACK: Final = ("operators.ranker", "operators.ranker_state", "operators.vector_model",
                      "operators.mf_codec")
THREAD_NAME: Final = "recs-preload"


def in_embedded_python() -> bool:
    """Whether this interpreter is the one Flink embeds in the JVM (thread mode): there the
    ``pemja`` module is the bridge's own, with ``findClass``; the PyPI stub of it has none."""
    pemja = sys.modules.get("pemja")
    return pemja is not None and hasattr(pemja, "findClass")


def preload(modules: Sequence[str] = MODEL_STACK) -> None:
    """Import ``modules`` on a fresh thread and wait; re-raises what the import raised."""
    failed: list[BaseException] = []

    def run() -> None:
        try:
            for name in modules:
                importlib.import_module(name)
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    worker = threading.Thread(target=run, name=THREAD_NAME, daemon=True)
    worker.start()
    worker.join()
    if failed:
        raise failed[0]
