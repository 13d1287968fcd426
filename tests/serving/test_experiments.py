"""A/B assignment: deterministic, stable across processes, split by weight; config validation."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.experiments import (
    ExperimentError,
    experiments_from_doc,
    load_experiments,
)
from tests.serving.kit import REPO


def doc(weights: tuple[int, ...] = (1, 1), **extra: Any) -> dict[str, Any]:
    variants = [{"name": f"v{i}", "weight": w} for i, w in enumerate(weights)]
    return {"experiment": [{"name": "hp", "placements": ["homepage"], "salt": "s",
                            "variant": variants, **extra}]}


@given(st.text(min_size=1, max_size=30))
def test_assignment_is_deterministic(user: str) -> None:
    a, b = experiments_from_doc(doc()), experiments_from_doc(doc())
    assert a.assign("homepage", user) == b.assign("homepage", user)


def test_assignment_is_stable_across_processes_and_pinned() -> None:
    """BLAKE2b, not hash(): another interpreter (another PYTHONHASHSEED) agrees, and the value
    is pinned so a refactor cannot silently move users between variants."""
    users = [f"user-{i}" for i in range(8)]
    here = [experiments_from_doc(doc()).assign("homepage", u).name for u in users]
    code = ("from serving.experiments import experiments_from_doc as f;"
            "import sys, json; d = json.loads(sys.argv[1]);"
            "print(','.join(f(d).assign('homepage', f'user-{i}').name for i in range(8)))")
    import json
    out = subprocess.run([sys.executable, "-c", code, json.dumps(doc())], cwd=REPO,
                         env={"PYTHONHASHSEED": "123", "PATH": ""}, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out.split(",") == here
    assert here == ["v0", "v0", "v0", "v1", "v1", "v1", "v0", "v1"]


def test_split_follows_weights_and_salt_reshuffles() -> None:
    exps = experiments_from_doc(doc((1, 3)))
    names = [exps.assign("homepage", f"u{i}").name for i in range(20_000)]
    share = names.count("v1") / len(names)
    assert 0.74 < share < 0.76
    other = experiments_from_doc(doc((1, 3), salt="t"))
    moved = sum(other.assign("homepage", f"u{i}").name != n for i, n in enumerate(names[:2000]))
    assert moved > 300  # a new salt is a new randomisation
    assert exps.assign("similar", "u1").label == "default"


def test_variant_params_override_rules() -> None:
    d = doc()
    d["experiment"][0]["variant"][1]["params"] = {"mmr_lambda": 0.2, "blend.bought_weight": 0.0}
    v1 = experiments_from_doc(d).experiments[0].variants[1]
    assert v1.rules.mmr_lambda == 0.2 and v1.rules.blend.bought_weight == 0.0
    assert v1.label == "hp/v1"


@pytest.mark.parametrize(("change", "pattern"), [
    ({"name": "Bad Name"}, "name must match.*'Bad Name'"),
    ({"placements": ["footer"]}, "unknown placement 'footer'"),
    ({"control": "v9"}, r"control must be one of \['v0', 'v1'\], got 'v9'"),
    ({"variant": []}, "has no variants"),
    ({"variant": [{"name": "a", "weight": -1}]}, "weight must be >= 0, got -1"),
    ({"variant": [{"name": "a", "weight": 1, "strategy": "magic"}]}, "strategy.*'magic'"),
    ({"variant": [{"name": "a", "weight": 1, "params": {"nope": 1}}]}, "unknown override 'nope'"),
    ({"variant": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}, "repeats a variant"),
])
def test_config_errors_name_field_and_value(change: dict[str, Any], pattern: str) -> None:
    d = doc()
    d["experiment"][0].update(change)
    with pytest.raises(ExperimentError, match=pattern):
        experiments_from_doc(d)


def test_two_experiments_cannot_share_a_placement() -> None:
    d = doc()
    d["experiment"].append({**d["experiment"][0], "name": "hp2"})
    with pytest.raises(ExperimentError, match="covered by both 'hp' and 'hp2'"):
        experiments_from_doc(d)


def test_shipped_file_loads() -> None:
    exps = load_experiments()
    assert [e.name for e in exps.experiments] == ["homepage-diversity"]
    assert {v.rules.diversity for v in exps.experiments[0].variants} == {"mmr", "caps"}
