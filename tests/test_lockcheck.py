"""The lock answers pyproject.toml, and the check says so when it does not."""

from __future__ import annotations

import shutil
from pathlib import Path

from infra import lockcheck


def copies(tmp_path: Path) -> tuple[Path, Path, Path]:
    paths = []
    for src in (lockcheck.PYPROJECT, lockcheck.LOCK, lockcheck.BUILD_IN):
        dst = tmp_path / src.name
        shutil.copy(src, dst)
        paths.append(dst)
    return paths[0], paths[1], paths[2]


def test_the_committed_lock_matches_pyproject() -> None:
    assert lockcheck.check() == []


def test_a_changed_range_is_caught_by_digest_and_range(tmp_path: Path) -> None:
    pyproject, lock, build_in = copies(tmp_path)
    text = pyproject.read_text()
    assert '"orjson>=3.10,<4"' in text
    pyproject.write_text(text.replace('"orjson>=3.10,<4"', '"orjson>=99"'))
    problems = lockcheck.check(pyproject, lock, build_in)
    assert any("changed after requirements.lock was made" in p and "make lock" in p
               for p in problems), problems
    assert any("'orjson' is locked at" in p and "orjson>=99" in p for p in problems), problems


def test_a_new_dependency_missing_from_the_lock_is_named(tmp_path: Path) -> None:
    pyproject, lock, build_in = copies(tmp_path)
    text = pyproject.read_text()
    added = 'dependencies = [\n    "msgspec>=0.18",\n'
    pyproject.write_text(text.replace("dependencies = [\n", added, 1))
    problems = lockcheck.check(pyproject, lock, build_in)
    assert any("'msgspec'" in p and "is not in the lock" in p for p in problems), problems


def test_stamp_records_the_inputs(tmp_path: Path) -> None:
    pyproject, lock, build_in = copies(tmp_path)
    lock.write_text("\n".join(ln for ln in lock.read_text().splitlines()
                              if not ln.startswith(lockcheck.DIGEST_PREFIX)) + "\n")
    assert any("has no" in p for p in lockcheck.check(pyproject, lock, build_in))
    lockcheck.stamp(pyproject, lock, build_in)
    assert lockcheck.check(pyproject, lock, build_in) == []
    assert lock.read_text().startswith(lockcheck.DIGEST_PREFIX)
