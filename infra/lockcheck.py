"""Does ``requirements.lock`` still answer ``pyproject.toml``?

``pyproject.toml`` says which versions the code supports (ranges); ``requirements.lock`` says
which exact versions, with hashes, were tested and are installed by every path (``make demo``,
``make test``, CI). ``make lock`` regenerates the lock with ``uv pip compile`` and stamps its
header with a digest of the inputs it was made from. This check fails, naming what disagrees:

- the inputs changed since the lock was made (the stamped digest differs);
- a direct requirement is missing from the lock, or pinned outside its range.

    python -m infra.lockcheck            # check; exit 1 with the reasons when they disagree
    python -m infra.lockcheck --stamp    # after `uv pip compile`: write the inputs' digest

The digest part uses the standard library only; the range part uses ``packaging`` (pip's own copy
before the locked environment, which has it, is installed).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final, TypedDict

ROOT: Final = Path(__file__).resolve().parent.parent
PYPROJECT: Final = ROOT / "pyproject.toml"
LOCK: Final = ROOT / "requirements.lock"
BUILD_IN: Final = ROOT / "infra" / "lock" / "build.in"
LOCKED_EXTRAS: Final = ("test",)
DIGEST_PREFIX: Final = "# inputs-sha256: "
REGENERATE: Final = "run `make lock` and commit requirements.lock"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class LockInputs(TypedDict):
    """The parts of the project's metadata that decide the lock's content."""

    requires_python: str
    dependencies: list[str]
    extras: dict[str, list[str]]
    build: list[str]


def lock_inputs(pyproject: Path = PYPROJECT, build_in: Path = BUILD_IN) -> LockInputs:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return LockInputs(
        requires_python=project.get("requires-python", ""),
        dependencies=list(project.get("dependencies", [])),
        extras={name: list(extras.get(name, [])) for name in LOCKED_EXTRAS},
        build=_requirement_lines(build_in.read_text(encoding="utf-8").splitlines()),
    )


def direct_requirements(inputs: LockInputs) -> list[str]:
    """Every requirement the project states itself: runtime, the locked extras, the build."""
    extras = [req for reqs in inputs["extras"].values() for req in reqs]
    return [*inputs["dependencies"], *extras, *inputs["build"]]


def inputs_digest(inputs: LockInputs) -> str:
    blob = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def _requirement_lines(lines: Iterable[str]) -> list[str]:
    return [s for s in (line.split("#", 1)[0].strip() for line in lines) if s]


def locked_pins(lock_text: str) -> dict[str, str]:
    """``{canonical name: version}`` of every ``name==version`` line in a lock."""
    pins: dict[str, str] = {}
    for line in lock_text.splitlines():
        match = _PIN.match(line)
        if match:
            pins[_canonical(match.group(1))] = match.group(2)
    return pins


def stamped_digest(lock_text: str) -> str | None:
    for line in lock_text.splitlines():
        if line.startswith(DIGEST_PREFIX):
            return line[len(DIGEST_PREFIX):].strip()
    return None


def range_problems(requirements: Sequence[str], pins: dict[str, str]) -> list[str]:
    """Each direct requirement that the lock leaves out or pins outside the requirement's range."""
    try:
        from packaging.requirements import Requirement
    except ModuleNotFoundError:  # a bare .venv before the sync: pip carries its own copy
        from pip._vendor.packaging.requirements import (  # type: ignore[assignment]
            Requirement,
        )

    problems = []
    for text in requirements:
        req = Requirement(text)
        name = _canonical(req.name)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        pinned = pins.get(name)
        if pinned is None:
            problems.append(f"{req.name!r} (pyproject.toml: {text!r}) is not in the lock")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(
                f"{req.name!r} is locked at {pinned}, outside pyproject.toml's {text!r}")
    return problems


def check(pyproject: Path = PYPROJECT, lock: Path = LOCK, build_in: Path = BUILD_IN) -> list[str]:
    """Every reason the lock does not answer pyproject.toml; empty when it does."""
    if not lock.exists():
        return [f"{lock.name} is missing; {REGENERATE}"]
    text = lock.read_text(encoding="utf-8")
    inputs = lock_inputs(pyproject, build_in)
    problems = []
    stamped = stamped_digest(text)
    if stamped is None:
        problems.append(f"{lock.name} has no '{DIGEST_PREFIX.strip()}' line; {REGENERATE}")
    elif stamped != inputs_digest(inputs):
        problems.append(
            f"pyproject.toml's dependencies (or {build_in.name}) changed after {lock.name} was "
            f"made (inputs digest {inputs_digest(inputs)[:12]}, lock made from {stamped[:12]}); "
            f"{REGENERATE}")
    problems.extend(range_problems(direct_requirements(inputs), locked_pins(text)))
    return problems


def stamp(pyproject: Path = PYPROJECT, lock: Path = LOCK, build_in: Path = BUILD_IN) -> None:
    """Write (or replace) the inputs' digest line at the top of the lock."""
    lines = [ln for ln in lock.read_text(encoding="utf-8").splitlines()
             if not ln.startswith(DIGEST_PREFIX)]
    digest = inputs_digest(lock_inputs(pyproject, build_in))
    lock.write_text("\n".join([DIGEST_PREFIX + digest, *lines]) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lockcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stamp", action="store_true",
                        help="write the digest of the current inputs into the lock's header")
    args = parser.parse_args(argv)
    if args.stamp:
        stamp()
    problems = check()
    if problems:
        print("lockcheck: requirements.lock does not match pyproject.toml:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(f"lockcheck: {LOCK.name} matches pyproject.toml "
          f"({len(locked_pins(LOCK.read_text(encoding='utf-8')))} pinned packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
