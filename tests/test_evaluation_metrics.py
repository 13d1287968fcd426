"""Metric code against hand-computed cases and against session-rec's own saved top-50 lists."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from recs.evaluation.metrics import (
    Accumulator,
    hit,
    intra_list_diversity,
    ndcg,
    percentile_position,
    precision,
    rank_of,
    reciprocal_rank,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "rsc15-sample"
SAVED = SHARED / "session-rec-saved-recs"


def test_single_prediction_by_hand() -> None:
    ranked = ["a", "b", "c", "d"]
    assert rank_of(ranked, "c") == 3
    assert rank_of(ranked, "z") is None
    assert hit(3, 2) == 0.0 and hit(3, 3) == 1.0 and hit(None, 20) == 0.0
    assert reciprocal_rank(3, 20) == pytest.approx(1 / 3)
    assert reciprocal_rank(3, 2) == 0.0
    assert ndcg(1, 20) == 1.0
    assert ndcg(3, 20) == pytest.approx(0.5)  # 1 / log2(4)
    assert precision(3, 20) == pytest.approx(0.05)


def test_pooled_over_predictions_by_hand() -> None:
    acc = Accumulator(ks=(1, 2, 3), curve_k=4)
    acc.add(["a", "b", "c"], "a")    # rank 1
    acc.add(["a", "b", "c"], "c")    # rank 3
    acc.add(["d", "e"], "x")         # absent
    acc.add(["b", "a"], "a")         # rank 2
    r = acc.result(catalogue_size=10)
    assert r["predictions"] == 4
    assert r["hr@1"] == pytest.approx(1 / 4)
    assert r["hr@2"] == pytest.approx(2 / 4)
    assert r["hr@3"] == pytest.approx(3 / 4)
    assert r["mrr@3"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4)
    assert r["mrr@2"] == pytest.approx((1 + 0 + 0 + 1 / 2) / 4)
    assert r["ndcg@3"] == pytest.approx((1 + 0.5 + 0 + 1 / math.log2(3)) / 4)
    assert r["precision@2"] == pytest.approx(0.5 / 2)
    assert r["coverage@1"] == pytest.approx(3 / 10)  # a, d, b
    assert r["coverage@3"] == pytest.approx(5 / 10)  # a b c d e
    assert acc.curve() == pytest.approx([0.25, 0.5, 0.75, 0.75])
    assert r["diversity@3"] is None  # no categories known
    assert "mpr" not in r


def test_novelty_diversity_and_mpr_by_hand() -> None:
    acc = Accumulator(ks=(2,), curve_k=2, categories={"a": "x", "b": "y", "c": "x"})
    counts = {"a": 4, "b": 2}
    # items: a (4 of 8 -> 1 bit), c (never seen, counts once -> 3 bits)
    acc.add(["a", "c"], "c", counts=counts, total=8, n_candidates=5, mpr_denominator=9)
    acc.add(["a", "b"], "z", counts=counts, total=8, n_candidates=5, mpr_denominator=9)
    acc.add([], "z", counts=counts, total=8)  # an empty list has no novelty
    r = acc.result(catalogue_size=4)
    assert r["novelty@2"] == pytest.approx(((1 + 3) / 2 + (1 + 2) / 2) / 2)
    assert r["diversity@2"] == pytest.approx((0.0 + 1.0) / 2)  # (a,c) same, (a,b) different
    # rank 2 -> place 1; absent with 2 listed of 5 -> mean of places 2, 3, 4 = 3
    assert r["mpr"] == pytest.approx((100 * 1 / 9 + 100 * 3 / 9) / 2)
    assert r["predictions"] == 3
    assert percentile_position(1, 10, 100) == 0.0


def test_diversity_ignores_items_without_category() -> None:
    assert intra_list_diversity(["a", "b"], {"a": "x"}) is None
    assert intra_list_diversity(["a", "b", "c"], {"a": "x", "b": "x", "c": "x"}) == 0.0


def test_add_returns_rank_and_ranks_beyond_curve_count_as_misses_in_curve() -> None:
    acc = Accumulator(ks=(1,), curve_k=2)
    assert acc.add(["a", "b", "c"], "c") == 3
    assert acc.hr(2) == 0.0


# session-rec's own metrics on the 99 test sessions it saved lists for (computed from the files
# with session-rec's definitions; ../shared/data/published/self_computed_reference_baselines.tsv)
SESSION_REC = {"ar": (0.5917, 0.3160), "sr": (0.5607, 0.3275), "vsknn": (0.6098, 0.3342),
               "gru4rec": (0.5711, 0.3289)}


@pytest.mark.skipif(not SAVED.is_dir(), reason="../shared/data (session-rec saved lists) absent")
@pytest.mark.parametrize("algo", sorted(SESSION_REC))
def test_reproduces_session_rec_metrics_from_its_saved_lists(algo: str) -> None:
    sessions: dict[str, list[str]] = {}
    with (SHARED / "yoochoose-clicks-100k_test.txt").open() as fh:
        next(fh)
        for line in fh:
            sid, item, _ = line.rstrip("\n").split("\t")
            sessions.setdefault(sid, []).append(item)
    acc = Accumulator(ks=(20,), curve_k=50)
    with (SAVED / f"recoms_rsc15_100k_{algo}.csv").open() as fh:
        assert next(fh).strip() == "SessionId;Position;Recommendations;Scores"
        for line in fh:
            sid, pos, recs, _scores = line.rstrip("\n").split(";")
            target = sessions[sid][int(pos) + 1]
            acc.add(recs.split(","), target)
    r = acc.result(catalogue_size=1)
    assert r["predictions"] == 387
    hr, mrr = SESSION_REC[algo]
    assert r["hr@20"] == pytest.approx(hr, abs=5e-5)
    assert r["mrr@20"] == pytest.approx(mrr, abs=5e-5)
