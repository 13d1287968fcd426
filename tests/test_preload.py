"""The job's Python start-up inside the JVM (stream/preload.py).

- the counting operators' module (stream.functions) loads neither numpy, SciPy, pandas nor
  River, so opening those operators never makes a first import of an extension module;
- in the embedded interpreter (detected by pemja's ``findClass``) importing the package
  imports the model stack on the ``recs-preload`` thread, SciPy's pybind11 modules included,
  before any operator module; outside it nothing is preloaded;
- a failed preload raises in the importing thread instead of vanishing with the worker.

Each case runs in a fresh interpreter: imports are once per process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.preload import MODEL_STACK, THREAD_NAME, preload

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "scipy", "pandas", "river")

# Records the thread that first imports a pybind11 module of SciPy (the ones that deadlocked).
RECORD_FIRST_IMPORT = """
import sys, threading, types
seen = {}
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "scipy.spatial._distance_pybind":
            seen.setdefault(name, threading.current_thread().name)
        return None
sys.meta_path.insert(0, Spy())
"""


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_counting_operators_load_no_extension_heavy_module() -> None:
    out = _run("import sys, stream.functions, stream.routing, operators.config\n"
               f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert out == "[]"


def test_embedded_interpreter_imports_the_model_stack_on_its_own_thread() -> None:
    out = _run(RECORD_FIRST_IMPORT + (
        "sys.modules['pemja'] = types.SimpleNamespace(findClass=lambda name: None)\n"
        "import stream\n"
        f"print(seen.get('scipy.spatial._distance_pybind'), all(m in sys.modules for m in "
        f"{MODEL_STACK!r}))"))
    assert out == f"{THREAD_NAME} True"


def test_outside_the_jvm_nothing_is_preloaded() -> None:
    # the PyPI package named pemja (installed with PyFlink) is not the bridge: no findClass
    out = _run(RECORD_FIRST_IMPORT + (
        "import pemja, stream\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"))
    assert out == "[]"


def test_a_failed_preload_raises_in_the_caller() -> None:
    with pytest.raises(ModuleNotFoundError, match="no_such_module_for_recs"):
        preload(["no_such_module_for_recs"])
