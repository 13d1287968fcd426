"""``recs eval`` end to end on small generated logs in the public formats (never shared data)."""

from __future__ import annotations

import importlib.util
import random
from pathlib import Path

import orjson
import pytest

from recs import datasets
from recs.cli import COMMANDS
from recs.evaluation.cli import build_methods, engine_config, main, parser
from recs.evaluation.engine_recs import EngineLearner

T0 = 1_396_310_400  # 2014-04-01, unix seconds


def write_rsc15(folder: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    train, test = ["SessionId\tItemId\tTime"], ["SessionId\tItemId\tTime"]
    for s in range(150):
        day = 6 if s >= 120 else s // 20
        t = T0 + day * 86_400 + (s % 20) * 600
        item = rng.randrange(40)
        rows = test if day == 6 else train
        for j in range(rng.randint(2, 5)):
            item = (item + rng.choice([0, 1, 1, 3])) % 40
            rows.append(f"{s}\t{100 + item}\t{t + 30 * j}.5")
    (folder / "tiny_train_full.txt").write_text("\n".join(train) + "\n")
    (folder / "tiny_test.txt").write_text("\n".join(test) + "\n")


def write_ml100k(folder: Path, seed: int = 0) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    rows = []
    for n in range(600):
        user, item = rng.randrange(30), rng.randrange(60)
        rows.append(f"{user + 1}\t{item + 1}\t{rng.choice([3, 4, 5, 5])}\t{881_250_000 + 97 * n}")
    (folder / "u.data").write_text("\n".join(rows) + "\n")


def last_json(out: str) -> dict[str, dict[str, float]]:
    return orjson.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_eval_is_a_recs_command() -> None:
    assert COMMANDS["eval"][0] == "recs.evaluation.cli"


def test_rsc15_prints_table_and_one_json_line_and_writes_the_report(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    report = tmp_path / "docs" / "quality"
    code = main(["--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
                 "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| `engine` |" in out and "| `engine_static` |" in out and "| `online_mf` |" in out
    result = last_json(out)
    methods = {"engine", "engine_prior", "engine_static", "engine.session", "engine.similar",
               "engine.bought", "engine.trending", "pop", "recent_pop", "covisit", "ar", "sr",
               "vsknn", "online_mf"}
    assert set(result) == methods | {"events", "seconds"}
    for name in methods:
        for key in ("hr@20", "mrr@20", "ndcg@20", "coverage@20"):
            assert 0.0 <= result[name][key] <= 1.0
    assert result["events"] > 0  # type: ignore[operator]
    assert (report / "rsc15.json").is_file()
    page = (tmp_path / "docs" / "quality.md").read_text()
    assert "## rsc15" in page and "| `engine` |" in page
    assert "## Summary" in page and "| `engine_static` |" in page and "impressions" in page
    if importlib.util.find_spec("matplotlib") is not None:
        assert (report / "rsc15.png").stat().st_size < 200_000
        assert "quality/rsc15.png" in page


def test_ml100k_streaming_reports_recall_and_mpr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ml100k(tmp_path / "ml")
    code = main(["--dataset", "ml100k", "--path", str(tmp_path / "ml"), "--no-progress",
                 "--methods", "engine,engine_static,online_mf,pop,ar"])
    assert code == 0
    result = last_json(capsys.readouterr().out)
    names = ("engine", "engine_static", "online_mf", "pop", "ar")
    assert set(result) == {*names, "events", "seconds"}
    for name in names:
        assert 0.0 <= result[name]["recall@10"] <= 1.0
        assert 0.0 <= result[name]["mpr"] <= 100.0


def test_errors_name_the_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--dataset", "rsc15", "--path", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["--dataset", "rsc15", "--path", str(tmp_path), "--methods", "magic"]) == 2
    assert "magic" in capsys.readouterr().err


def test_save_blend_then_holdout_freezes_the_weights_of_another_log(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "a", seed=1)
    write_rsc15(tmp_path / "b", seed=2)
    report = tmp_path / "docs" / "quality"
    saved = report / "blend-a.json"  # beside the runs: the page does not take it for one
    assert main(["--dataset", "rsc15", "--path", str(tmp_path / "a"), "--no-progress",
                 "--methods", "engine,pop", "--save-blend", str(saved)]) == 0
    doc = orjson.loads(saved.read_bytes())
    assert doc["learned_on"] == "rsc15" and doc["labelled"] > 0 and "prior" in doc["weights"]
    capsys.readouterr()
    assert main(["--dataset", "rsc15", "--path", str(tmp_path / "b"), "--no-progress",
                 "--methods", "engine,engine_prior,engine_holdout,pop",
                 "--holdout", str(saved), "--report", str(report)]) == 0
    out = capsys.readouterr().out
    page = (tmp_path / "docs" / "quality.md").read_text()
    assert "Hold-out, HR@20 / MRR@20" in page and "| rsc15 |" in page
    assert "learned blend: " in page  # the run's notes say what the blend did
    assert "| `engine_holdout` |" in out and "frozen as learned on rsc15" in out
    result = last_json(out)
    assert set(result) == {"engine", "engine_prior", "engine_holdout", "pop", "events",
                           "seconds"}
    # a broken file is an error naming it
    bad = tmp_path / "bad.json"
    bad.write_text('{"weights": {}}')
    assert main(["--dataset", "rsc15", "--path", str(tmp_path / "b"), "--holdout",
                 str(bad)]) == 2
    assert "bad.json" in capsys.readouterr().err


def _run_reduced(tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str],
                 events: int, said: str, name: str, bad: str, refused: str) -> None:
    """``recs eval`` on a reduced log (``option``): run on its ``events``, saying ``said``,
    stored as ``name`` and listed on the page; ``bad`` in place of the value is refused."""
    report = tmp_path / "docs" / "quality"
    code = main(["--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress", *option,
                 "--methods", "engine,ar", "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"{events:,} events" in out and said in out
    assert last_json(out)["events"] == events  # type: ignore[comparison-overlap]
    rec = orjson.loads((report / f"{name}.json").read_bytes())
    assert rec["command"].endswith(" ".join(option) + " --report " + report.as_posix())
    assert f"\n## {name}\n" in (tmp_path / "docs" / "quality.md").read_text()
    assert main(["--dataset", "rsc15", "--data-dir", str(tmp_path), option[0], bad]) == 2
    assert refused in capsys.readouterr().err


def test_sample_users_keeps_whole_histories_of_a_stable_share_of_the_users(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    full = datasets.load("rsc15", tmp_path / "rsc15-sample")
    half = full.user_sample(0.5)
    users = {e.user_id for e in half.events}
    assert 0 < len(users) < len({e.user_id for e in full.events})
    assert half.events == [e for e in full.events if e.user_id in users]  # whole histories
    assert half.test_sessions == full.test_sessions & {e.session_id for e in half.events}
    assert full.user_sample(0.5) == half and full.user_sample(1.0) is full
    _run_reduced(tmp_path, capsys, ["--sample-users", "0.5"], len(half.events),
                 "50% sample of the users", "rsc15-users50", "0",
                 "share must be in (0, 1], got 0.0")


def test_last_days_is_run_and_stored_under_its_own_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    recent = datasets.load("rsc15", tmp_path / "rsc15-sample").last_days(2)
    _run_reduced(tmp_path, capsys, ["--last-days", "2"], len(recent.events), "its last 2 days",
                 "rsc15-last2d", "-1", "days must be a finite number > 0, got -1.0")


def test_similar_recent_runs_the_engine_with_the_second_list_and_is_never_stored(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_rsc15(tmp_path / "rsc15-sample")
    base = ["--dataset", "rsc15", "--data-dir", str(tmp_path), "--no-progress",
            "--methods", "engine"]
    assert main([*base, "--similar-recent", "0"]) == 0
    off = last_json(capsys.readouterr().out)["engine"]
    assert main([*base, "--similar-recent", "3600"]) == 0
    on = last_json(capsys.readouterr().out)["engine"]
    assert set(on) == set(off)  # the same metrics, of an engine that kept the second list:
    args = parser().parse_args([*base, "--similar-recent", "3600"])
    assert engine_config(args).neighbour("similar_recent").half_life_s == 3600.0
    # the default is the engine's (the list at 1 day); 0 runs without it
    assert engine_config(parser().parse_args(base)).neighbour("similar_recent").half_life_s \
        == 86_400.0
    assert engine_config(parser().parse_args([*base, "--similar-recent", "0"])) \
        .similar_recent is None
    (engine,) = build_methods(["engine"], None, engine_config(args))
    learner = engine.learner
    assert isinstance(learner, EngineLearner)
    for event in datasets.load("rsc15", tmp_path / "rsc15-sample").events[:300]:
        learner.learn(event)
    kinds = {kind for kind, _ in learner.runner.relations}
    assert kinds == {"similar", "similar_recent"}
    assert main([*base, "--similar-recent", "-1"]) == 2
    assert "expected >= 0 (0: off), got -1.0" in capsys.readouterr().err
    for given in ("3600", "0"):  # not even the default's value: the page holds the defaults
        assert main([*base, "--similar-recent", given, "--report", str(tmp_path / "q")]) == 2
        assert "--similar-recent is not stored with --report" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()
