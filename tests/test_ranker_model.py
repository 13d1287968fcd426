"""The online ranker's models (operators/ranker_models.py): on planted data they must find the
planted signal, deterministically, with honest prequential metrics; the sparse updates equal
stock River's; a snapshot restored mid-stream must end exactly where the uninterrupted run ends;
and the benchmark command runs.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import orjson
import pytest
from river import facto, linear_model, optim

from operators import ranker_models as rm
from operators.ranker import (
    NO_REC_ID,
    UNMATCHED,
    Example,
    LabelState,
    Ranker,
    RankerConfig,
    close,
    label_step,
)
from operators.ranker_bench import exact_auc, main, oracle_auc, planted_log, replay
from tests.rankerkit import CFG, T0, eng, run
from tests.strategies import is_json_plain

# ---- the model on planted data ------------------------------------------------------------------

IMPRESSIONS = 3_000


@pytest.fixture(scope="module")
def planted() -> Any:
    return planted_log(7, IMPRESSIONS)


@pytest.fixture(scope="module")
def trained(planted: Any) -> tuple[Ranker, list[tuple[bool, float, float]]]:
    ranker = Ranker()
    return ranker, replay(planted.events, ranker, planted.meta)


def test_ranker_learns_the_planted_signal(planted: Any, trained: Any) -> None:
    ranker, out = trained
    stats = ranker.stats()
    assert stats["examples"] == IMPRESSIONS * 10 == len(out)
    assert stats["auc"] > 0.8, stats  # the true click probabilities reach oracle_auc ≈ 0.87
    assert stats["auc"] > oracle_auc(planted) - 0.05
    assert stats["log_loss"] < 0.2 and ranker.is_warm()
    w = ranker.model.weights
    assert w["category|device=hot|mobile"] > 0.5          # the planted cross
    assert w["source=session"] > w["source=trending"] > w["source=explore"]  # sources matter


def test_prequential_auc_is_honest(planted: Any, trained: Any) -> None:
    """The prequential AUC is not flattered by the delayed labels: the same model frozen half
    way and scored on the second half's impressions scores about the same."""
    ranker, _ = trained
    half = len(planted.events) // 2
    frozen = Ranker()
    replay(planted.events[:half], frozen, planted.meta)
    states: dict[str, LabelState | None] = {}
    exs: list[Example] = []
    for ev in planted.events[half:]:
        states[ev.user_id], labels = label_step(states.get(ev.user_id), ev, CFG)
        exs.extend(labels.examples)
    for user, state in states.items():
        exs.extend(close(state, 10**15, user, CFG)[1].examples)
    ps = [rm.sigmoid(frozen.model.logit(frozen.features(
        e.user, e.item, e.source, dict(e.context), e.ts, planted.meta[e.item]))) for e in exs]
    held_out = exact_auc([e.label for e in exs], ps)
    assert abs(ranker.stats()["auc"] - held_out) < 0.03, (ranker.stats()["auc"], held_out)


def test_binned_auc_matches_the_exact_auc(trained: Any) -> None:
    ranker, out = trained
    assert abs(ranker.auc.get() - exact_auc([y for y, _, _ in out], [p for _, p, _ in out])) \
        < 0.002


def test_training_is_deterministic_under_the_seed(planted: Any, trained: Any) -> None:
    again = Ranker()
    replay(planted.events, again, planted.meta)
    assert again.snapshot() == trained[0].snapshot()
    assert planted_log(7, 50).events == planted_log(7, 50).events
    assert planted_log(7, 50).events != planted_log(8, 50).events


def test_rank_scores_candidates_without_changing_the_model(trained: Any) -> None:
    ranker, _ = trained
    before = orjson.dumps(ranker.snapshot())
    meta = {"h": {"category": "hot"}, "c": {"category": "c1"}}
    cands = [("c", "trending"), ("h", "trending"), ("h", "explore"), ("never-seen", "session")]
    mobile = ranker.rank("new-user", cands, {"device": "mobile", "placement": "homepage"},
                         ts=T0, meta=meta)
    web = ranker.rank("new-user", cands, {"device": "web", "placement": "homepage"}, ts=T0,
                      meta=meta)
    assert orjson.dumps(ranker.snapshot()) == before
    assert len(mobile) == 4 and all(0.0 < p < 1.0 for p in mobile)
    assert mobile[1] > mobile[2] and mobile[1] > mobile[0]  # hot on mobile, from a good source
    assert mobile[1] > web[1]
    assert ranker.rank("u", [], {}, ts=T0) == []


def test_cold_ranker_is_not_warm() -> None:
    ranker = Ranker()
    assert not ranker.is_warm()
    assert ranker.stats() == {"examples": 0, "positives": 0, "negatives": 0, "ignored": {},
                              "auc": 0.5, "log_loss": 0.0, "warm": False, "model_size": 0}
    # the scores of a cold model are all alike: the blend's order is kept
    assert len(set(ranker.rank("u", [("a", "session"), ("b", "trending")], {}, ts=T0))) == 1


def test_observe_counts_ignored_events() -> None:
    ranker = Ranker()
    _, out = run([eng("click", "r9", "a", T0), eng("click", None, "a", T0)])
    for labels in out:
        ranker.observe(labels)
    assert ranker.ignored == {UNMATCHED: 1, NO_REC_ID: 1}


def test_factorization_machine_learns_the_planted_signal() -> None:
    log = planted_log(3, 600)
    ranker = Ranker(RankerConfig(model=rm.FACTORIZATION_MACHINE, lr=0.05))
    replay(log.events, ranker, log.meta)
    assert ranker.stats()["auc"] > 0.7, ranker.stats()


# ---- sparse learning equals River's own ---------------------------------------------------------

def _xs(n: int) -> list[tuple[dict[str, float], bool]]:
    rng = np.random.default_rng(5)
    out = []
    for _ in range(n):
        keys = {f"f{rng.integers(0, 40)}" for _ in range(6)}
        x = {k: float(rng.uniform(0.2, 1.0)) for k in sorted(keys)}
        out.append((x, bool(rng.random() < 0.3)))
    return out


@pytest.mark.parametrize("optimizer", [rm.SGD, rm.ADAGRAD, rm.FTRL])
def test_linear_model_learns_like_stock_river(optimizer: str) -> None:
    cfg = RankerConfig(optimizer=optimizer, l2=1e-3 if optimizer != rm.FTRL else 1.0)
    ours = rm.LinearModel(cfg)
    stock: Any = linear_model.LogisticRegression(
        optimizer=rm._optimizer(optimizer, cfg.lr, cfg.l2),
        l2=0.0 if optimizer == rm.FTRL else cfg.l2, intercept_lr=cfg.intercept_lr)
    for x, y in _xs(300):
        assert ours.logit(x) == pytest.approx(stock._raw_dot_one(x), abs=1e-9)
        ours.learn(x, y, 1.5)
        stock.learn_one(x, y, w=1.5)
    assert ours.weights.keys() == stock.weights.keys()
    for k, v in stock.weights.items():
        assert ours.weights[k] == pytest.approx(v, abs=1e-9)
    assert ours.river.intercept == pytest.approx(stock.intercept, abs=1e-9)


def test_factorization_model_learns_like_stock_river() -> None:
    cfg = RankerConfig(model=rm.FACTORIZATION_MACHINE, l2=1e-3)
    ours = rm.FactorizationModel(cfg)
    stock: Any = facto.FMClassifier(n_factors=cfg.fm_factors, weight_optimizer=optim.SGD(cfg.lr),
                               latent_optimizer=optim.SGD(cfg.fm_latent_lr), l2_weight=cfg.l2,
                               l2_latent=cfg.l2, intercept_lr=cfg.intercept_lr)
    for x, y in _xs(200):
        for k in x:
            if k not in stock.latents:
                stock.latents[k] = ours.init_latent(k)
        if all(k in ours.latents for k in x):  # an unseen feature adds nothing to ours
            assert ours.logit(x) == pytest.approx(stock._raw_dot(x), abs=1e-9)
        ours.learn(x, y, 2.0)
        stock.learn_one(x, y, w=2.0)
    for k, v in stock.weights.items():
        assert ours.weights[k] == pytest.approx(v, abs=1e-9)
        assert np.allclose(ours.latents[k], stock.latents[k], atol=1e-9)
    assert ours.river.intercept == pytest.approx(stock.intercept, abs=1e-9)


def test_latent_initialisation_does_not_depend_on_arrival_order() -> None:
    a = rm.FactorizationModel(RankerConfig(model=rm.FACTORIZATION_MACHINE))
    b = rm.FactorizationModel(RankerConfig(model=rm.FACTORIZATION_MACHINE))
    assert np.array_equal(a.init_latent("x=1"), b.init_latent("x=1"))
    assert not np.array_equal(a.init_latent("x=1"), a.init_latent("x=2"))


# ---- snapshot -----------------------------------------------------------------------------------

MODELS = {"lr": RankerConfig(),
          "lr-adagrad": RankerConfig(optimizer=rm.ADAGRAD, lr=0.05),
          "lr-ftrl": RankerConfig(optimizer=rm.FTRL, lr=0.1, l2=1.0),
          "fm": RankerConfig(model=rm.FACTORIZATION_MACHINE, optimizer=rm.ADAGRAD)}


def _through_json(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_restore_then_continue_equals_uninterrupted(name: str) -> None:
    log = planted_log(11, 240)
    cut = len(log.events) // 2
    whole = Ranker(MODELS[name])
    replay(log.events, whole, log.meta)
    # the first half, snapshot through JSON bytes, restore, the second half (the join's state
    # is carried over like the Flink job's keyed state)
    first = Ranker(MODELS[name])
    states: dict[str, LabelState | None] = {}
    for ev in log.events[:cut]:
        states[ev.user_id], labels = label_step(states.get(ev.user_id), ev, first.cfg)
        first.observe(labels, log.meta)
    doc = _through_json(first.snapshot())
    assert is_json_plain(doc)
    second = Ranker.restore(doc)
    assert _through_json(second.snapshot()) == doc
    for ev in log.events[cut:]:
        states[ev.user_id], labels = label_step(states.get(ev.user_id), ev, second.cfg)
        second.observe(labels, log.meta)
    last = log.events[-1].ts
    for user, state in states.items():
        second.observe(close(state, last + second.cfg.window_ms + 1, user, second.cfg)[1],
                       log.meta)
    assert second.snapshot() == whole.snapshot()


def test_snapshot_header_is_inspectable(trained: Any) -> None:
    ranker, _ = trained
    doc = _through_json(ranker.snapshot())
    assert list(doc)[:4] == ["format", "version", "config", "stats"]
    assert (doc["format"], doc["version"]) == ("recs.ranker", 1)
    assert doc["config"]["model"] == "logistic_regression"
    assert doc["config"]["positive_weights"] == {"click": 1.0, "add_to_cart": 2.0,
                                                 "purchase": 4.0}
    stats = doc["stats"]
    assert stats["examples"] == stats["positives"] + stats["negatives"] == IMPRESSIONS * 10
    assert 0.8 < stats["auc"] < 1 and stats["warm"] is True
    assert doc["model"]["weights"]["category|device=hot|mobile"] > 0
    assert doc["model"]["optimizer"]["name"] == "sgd"
    assert ranker.top_features(3)[0][0] in doc["model"]["weights"]


def test_restore_rejects_what_it_cannot_read() -> None:
    doc = _through_json(Ranker().snapshot())
    with pytest.raises(ValueError, match=r"format/version 'recs.ranker'/2"):
        Ranker.restore({**doc, "version": 2})
    with pytest.raises(ValueError, match=r"model.kind 'factorization_machine' does not match"):
        Ranker.restore({**doc, "model": {**doc["model"], "kind": "factorization_machine"}})
    bad_opt = {**doc["model"], "optimizer": {"name": "adagrad", "n_iterations": 0, "g2": {}}}
    with pytest.raises(ValueError, match=r"optimizer.name 'adagrad' does not match"):
        Ranker.restore({**doc, "model": bad_opt})
    fm = _through_json(Ranker(MODELS["fm"]).snapshot())
    with pytest.raises(ValueError, match=r"latents\['x'\] has 2 factors"):
        Ranker.restore({**fm, "model": {**fm["model"], "latents": {"x": [0.0, 1.0]}}})


def test_metric_states_round_trip() -> None:
    auc = rm.BinnedAUC()
    for y, p in [(True, 0.9), (False, 1e-9), (True, 0.5), (False, 0.999999)]:
        auc.update(y, p)
    again = rm.BinnedAUC.decode(_through_json(auc.encode()))
    assert again.pos == auc.pos and again.neg == auc.neg
    with pytest.raises(ValueError, match=r"bins/logit_range 10/"):
        rm.BinnedAUC.decode({**auc.encode(), "bins": 10})
    loss = rm.new_log_loss()
    loss.update(True, 0.7)
    assert rm.decode_log_loss(rm.encode_log_loss(loss)).get() == loss.get()


# ---- the benchmark command ----------------------------------------------------------------------

def test_bench_prints_every_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--impressions", "60", "--models", "lr-sgd,fm-sgd"]) == 0
    printed = capsys.readouterr().out
    assert "oracle AUC" in printed and "lr-sgd" in printed and "fm-sgd" in printed


def test_bench_runs_as_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "operators.ranker", "bench", "--impressions",
                           "30", "--models", "lr-sgd"], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "examples/s" in done.stdout
