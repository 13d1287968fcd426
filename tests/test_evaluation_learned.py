"""``online_mf`` in ``recs eval``, the rating protocol and the bench, on generated data only."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

from recs.evaluation.api import Query
from recs.evaluation.cli import build_methods, main
from recs.evaluation.learned import (
    RATING_MF,
    OnlineMFMethod,
    bench_main,
    learns,
    rating_eval,
    rating_models,
    synthetic_log,
)
from schemas.events import Interaction
from tests.test_evaluation_cli import last_json, write_ml100k


def test_the_default_set_holds_online_mf_and_the_engines() -> None:
    names = [m.name for m in build_methods(None)]
    assert {"online_mf", "engine", "engine_static", "pop"} <= set(names)
    assert names[:3] == ["engine", "engine_prior", "engine_static"]
    assert "engine_holdout" not in names  # only with --holdout
    assert [m.name for m in build_methods(["pop", "online_mf"])] == ["pop", "online_mf"]


def test_view_sampling_skips_only_views_and_counts_its_learning() -> None:
    log = synthetic_log(2_000, 50, 40)
    views = sum(e.type == "view" for e in log)
    method = OnlineMFMethod(view_sample=0.25)
    for e in log:
        method.learn(e)
    assert method.seen == len(log)
    assert method.learned == sum(learns(e, 0.25) for e in log)
    assert len(log) - views < method.learned < len(log) - views + 0.4 * views
    assert method.learn_seconds > 0
    assert all(learns(e, 0.0) == (e.type != "view") for e in log)
    with pytest.raises(ValueError, match="view_sample"):
        OnlineMFMethod(view_sample=1.5)


def test_streaming_protocol_reports_online_mf(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    write_ml100k(tmp_path / "ml")
    code = main(["--dataset", "ml100k", "--path", str(tmp_path / "ml"), "--no-progress",
                 "--methods", "online_mf,pop"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| `online_mf` |" in out
    result = last_json(out)
    assert set(result) == {"online_mf", "pop", "events", "seconds"}
    assert 0.0 <= result["online_mf"]["recall@10"] <= 1.0
    assert 0.0 <= result["online_mf"]["mpr"] <= 100.0


def test_the_method_excludes_the_users_items() -> None:
    method = OnlineMFMethod()
    for t, (user, item) in enumerate([("a", "x"), ("b", "y"), ("a", "z"), ("b", "x")]):
        method.learn(Interaction(f"e{t}", "view", user, "s", t, item_id=item))
    got = method.recommend(Query("a", "s", 9, ("x", "z"), frozenset({"x", "z"})), 10)
    assert got == ["y"]


def test_rating_protocol_prints_mae_and_rmse_beside_river(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_ml100k(tmp_path / "ml")
    code = main(["--dataset", "ml100k", "--path", str(tmp_path / "ml"), "--no-progress",
                 "--protocol", "rating"])
    assert code == 0
    out = capsys.readouterr().out
    assert "| `online_mf` |" in out and "published River BiasedMF" in out
    result = orjson.loads(out.strip().splitlines()[-1])
    assert set(result) == {"online_mf", "river.BiasedMF(docs)", "river.BiasedMF(defaults)",
                           "published.BiasedMF", "events", "seconds"}
    assert result["events"] == 600
    for name in ("online_mf", "river.BiasedMF(docs)"):
        assert 0.0 < result[name]["mae"] <= result[name]["rmse"] <= 4.0
        assert result[name]["n"] == 600
    assert result["published.BiasedMF"] == {"mae": 0.749, "rmse": 0.948}


def test_rating_report_joins_the_results_page(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    write_ml100k(tmp_path / "ml-100k")
    report = tmp_path / "docs" / "quality"
    for protocol in ("rating", "auto"):
        assert main(["--dataset", "ml100k", "--data-dir", str(tmp_path), "--no-progress",
                     "--protocol", protocol, "--report", str(report),
                     "--methods", "engine,engine_static,online_mf,pop"]) == 0
    capsys.readouterr()
    stored = orjson.loads((report / "ml100k-rating.json").read_bytes())
    assert set(stored["metrics"]) == {"online_mf", "river.BiasedMF(docs)",
                                      "river.BiasedMF(defaults)"}
    page = (tmp_path / "docs" / "quality.md").read_text()
    assert "## ml100k-rating" in page and "| River reco.BiasedMF (docs) | 0.749 | 0.948 |" in page
    assert "| incremental MF (ISGD, Vinagre et al. 2014) | 0.023 |" in page
    assert "--protocol rating --report" in page
    for name in ("online_mf", "engine", "engine_static", "pop"):
        assert f"| `{name}` |" in page.split("## Runs")[0]


def test_rating_protocol_needs_ratings(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    csv = tmp_path / "views.csv"
    csv.write_text("user,item,ts\nu1,i1,1400000000\nu1,i2,1400000001\n")
    assert main(["--dataset", "csv", "--path", str(csv), "--columns", "user=user,item=item,"
                 "ts=ts", "--protocol", "rating", "--no-progress"]) == 2
    assert "rating events" in capsys.readouterr().err


def test_online_mf_matches_rivers_biased_mf_on_ratings() -> None:
    """The wiring check: with River's documented settings the two error figures agree (they
    differ only in what an unseen user or item predicts: zeros here, random vectors in River)."""
    rng = random.Random(7)
    events = [Interaction(f"e{t}", "rating", f"u{rng.randrange(30)}", "s", t,
                          item_id=f"i{rng.randrange(40)}", value=float(rng.randint(1, 5)))
              for t in range(3_000)]
    result = rating_eval(events, rating_models(RATING_MF)[:2], progress=False)
    ours, river = result["online_mf"], result["river.BiasedMF(docs)"]
    assert ours["mae"] == pytest.approx(river["mae"], abs=0.01)
    assert ours["rmse"] == pytest.approx(river["rmse"], abs=0.01)


def test_bench_prints_one_json_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_main(["--events", "400", "--users", "20", "--items", "30",
                       "--memory-entries", "50"]) == 0
    row = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert row["events_per_s"] > 0 and row["bytes_per_user"] > 0 and row["bytes_per_item"] > 0
    assert row["learned_share"] == 1.0
    assert bench_main(["--events", "400", "--users", "20", "--items", "30",
                       "--memory-entries", "50", "--negatives", "2", "--view-sample", "0"]) == 0
    row = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 < row["learned_share"] < 0.5  # views are most of the synthetic log


def test_synthetic_log_is_seeded() -> None:
    assert synthetic_log(50, 5, 5) == synthetic_log(50, 5, 5)
