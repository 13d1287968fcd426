"""``python -m recs.evaluation.tune`` on generated logs: the grids behind the engine's settings."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
import pytest

from operators.config import NeighbourConfig, recent_similar
from recs.evaluation.tune import main
from tests.test_evaluation_cli import write_ml100k, write_rsc15


def last_json(out: str) -> dict[str, object]:
    return orjson.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_blend_grid_scores_every_point_on_one_learner(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    assert main(["blend", "--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
                 "--weights", "0.1,1", "--temperatures", "0.1", "--min-events", "0,3"]) == 0
    rows = last_json(capsys.readouterr().out)["rows"]
    assert isinstance(rows, list)
    assert [r["method"] for r in rows] == [
        "engine_static", "engine.vector", "engine w=0.1 T=0.1 n=200 min=0",
        "engine w=0.1 T=0.1 n=200 min=3", "engine w=1 T=0.1 n=200 min=0",
        "engine w=1 T=0.1 n=200 min=3"]
    assert all(0.0 <= r["hr@20"] <= 1.0 for r in rows)


def test_mf_grid_reports_quality_and_learning_rate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    assert main(["mf", "--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
                 "--negatives", "5,2", "--view-sample", "1,0.5"]) == 0
    rows = last_json(capsys.readouterr().out)["rows"]
    assert isinstance(rows, list) and len(rows) == 4
    full, half = rows[0], rows[1]
    assert full["method"] == "online_mf neg=5 p=1" and full["learned_share"] == 1.0
    assert 0.3 < half["learned_share"] < 0.7  # every rsc15 event is a view
    assert all(r["learn_events_per_s"] > 0 for r in rows)
    assert rows[2]["updates_per_event"] < full["updates_per_event"]  # fewer negatives


def test_validation_is_for_movielens_only(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    write_ml100k(tmp_path / "ml-100k")
    assert main(["mf", "--dataset", "ml100k", "--data-dir", str(tmp_path), "--no-progress",
                 "--validation", "--negatives", "2"]) == 0
    assert "4-star" in capsys.readouterr().out
    write_rsc15(tmp_path / "rsc15-sample")
    assert main(["mf", "--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
                 "--validation"]) == 2
    assert "only for ml100k" in capsys.readouterr().err


def test_tune_learned_runs_the_learned_blend_with_the_settings_given(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from operators.learned_blend import LearnedBlendConfig
    from recs.evaluation import tune_learned

    write_rsc15(tmp_path / "rsc15-sample")
    argv = ["--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
            "--set", "similar.half_life_s=3600", "--set", "session.backward_weight=0",
            "--lb", "negatives=2", "--lb", "min_labelled=5", "--baselines", "ar"]
    assert tune_learned.main(argv) == 0
    out = capsys.readouterr().out
    assert "'similar.half_life_s=3600'" in out
    doc = last_json(out)
    rows = doc["rows"]
    assert isinstance(rows, list)
    assert [r["method"] for r in rows] == ["engine", "engine_prior", "engine.session",
                                           "engine.similar", "ar"]
    assert doc["served_learned"] + doc["served_prior"] > 0  # type: ignore[operator]
    cfg = tune_learned.engine_config(["similar.half_life_s=3600", "session.backward_weight=0"])
    assert (cfg.similar.half_life_s, cfg.session.backward_weight) == (3600.0, 0.0)
    assert tune_learned.blend_config(["negatives=2"]) == LearnedBlendConfig(negatives=2)
    for bad, said in ((["--set", "similar.nope=1"], "similar has no field 'nope'"),
                      (["--set", "model.lr=1"], "part must be one of"),
                      (["--lb", "negatives=two"], "expected a int, got 'two'"),
                      (["--lb", "negatives"], "expected NAME=VALUE, got 'negatives'"),
                      (["--engine", "engine_prior"], "'engine' first")):
        assert tune_learned.main(["--dataset", "rsc15", "--data-dir", str(tmp_path), *bad]) == 2
        assert said in capsys.readouterr().err


def test_last_days_keeps_every_user_of_the_logs_last_days(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from recs import datasets
    from recs.evaluation import tune_learned

    write_rsc15(tmp_path / "rsc15-sample")
    full = datasets.load("rsc15", tmp_path / "rsc15-sample")
    recent = full.last_days(2, quantile=1.0)
    cut = full.events[-1].ts - 2 * 86_400_000
    assert recent.events == [e for e in full.events if e.ts >= cut]
    assert 0 < len(recent.events) < len(full.events)
    assert recent.test_sessions == full.test_sessions  # the test day lies in the last 2 days
    # the log ends at its 99.9 % quantile: the events after it (here the last) are dropped
    assert full.last_days(1).events[-1].ts < full.events[-1].ts
    with pytest.raises(ValueError, match="days must be a finite number > 0, got 0"):
        full.last_days(0)
    argv = ["--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
            "--last-days", "2", "--lb", "min_labelled=5", "--baselines", "ar"]
    assert tune_learned.main(argv) == 0
    assert f"rsc15: {len(full.last_days(2).events):,} events" in capsys.readouterr().out
    assert tune_learned.main([*argv, "--engine", "engine"]) == 0  # the learned blend alone
    rows = last_json(capsys.readouterr().out)["rows"]
    assert isinstance(rows, list) and [r["method"] for r in rows] == ["engine", "ar"]
    # a second similar-items list at a shorter half-life (EngineConfig.similar_recent)
    cfg = dataclasses.replace(tune_learned.engine_config([]),
                              similar_recent=recent_similar(NeighbourConfig(), 3600.0))
    _, learner = tune_learned.methods(cfg, tune_learned.blend_config([]), [], ("engine",))
    for e in full.events[:200]:
        learner.learn(e)
    rel = learner.runner.relations
    fast = {src: st for (kind, src), st in rel.items() if kind == "similar_recent"}
    assert fast and set(fast) == {src for kind, src in rel if kind == "similar"}
    src = next(iter(fast))
    assert set(fast[src].scores) == set(rel[("similar", src)].scores)
    assert fast[src].scores != rel[("similar", src)].scores  # decayed at its own half-life
    without = dataclasses.replace(tune_learned.engine_config([]), similar_recent=None)
    _, plain = tune_learned.methods(without, tune_learned.blend_config([]), [], ("engine",))
    for e in full.events[:200]:
        plain.learn(e)
    published = {u.key: u.data for u in learner.runner.pending_updates()}
    alone = {u.key: u.data for u in plain.runner.pending_updates()}
    assert {k: v for k, v in published.items() if ":similar_recent:" not in k} == alone
    assert published[f"recs:v1:similar_recent:{src}"] is not None  # published under its key
    assert tune_learned.main([*argv, "--engine", "engine", "--similar-recent", "3600"]) == 0
    assert tune_learned.main([*argv, "--engine", "engine", "--similar-recent", "0"]) == 0
