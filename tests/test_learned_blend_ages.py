"""The learned blend's age features (``LearnedBlendConfig.ages``, operators/freshness.py): present
only when on and given the request's time, their values on a hand-built session, a stale recent
item's votes weighed down against a fresh one's, nothing changed when off, the config's codec
(an older published value decodes as off), and the switches that turn them on (``--lb
ages=true``, ``RECS_BLEND_AGES``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import learned_blend as lb
from operators.blend import TRENDING, BlendParams, Fill
from operators.freshness import DAY_S, HOUR_S, freshness
from recs.settings import Settings

AGES = ("simh", "simd", "seenh", "seend", "simrh", "simrd")
HOUR_MS, DAY_MS = 3_600_000, 86_400_000
NOW = 10 * DAY_MS
# "a" read two days before the request, "b" an hour before; "b" is the newest recent item
SESSION = {"events": [["a", "view", NOW - 2 * DAY_MS], ["b", "view", NOW - HOUR_MS]],
           "purchased": []}
SIMILAR = {"b": (("c", 1.0), ("d", 0.5)), "a": (("d", 1.0), ("e", 0.5))}
FILLS = [Fill(TRENDING, "global", [["t", 5.0], ["c", 4.0], ["a", 3.0], ["b", 2.0]])]
ON = lb.LearnedBlendConfig(ages=True)
OFF = lb.LearnedBlendConfig(ages=False)


def _features(cfg: lb.LearnedBlendConfig, **kwargs: Any) -> dict[str, dict[str, float]]:
    cands = lb.candidates(SESSION, SIMILAR, {}, FILLS, BlendParams(allow_repeats=True), cfg,
                          **kwargs)
    return {c.item_id: dict(c.features) for c in cands}


def test_freshness_halves_per_hour_and_per_day_from_the_newest_event() -> None:
    session = {"events": [["x", "view", 0], ["y", "view", 5], ["x", "view", DAY_MS]]}
    assert freshness(session, ["x", "y"], DAY_MS + HOUR_MS) == [
        (0.5, 0.5 ** (HOUR_S / DAY_S)), (0.5 ** ((DAY_MS + HOUR_MS - 5) / 1000 / HOUR_S),
                                         0.5 ** ((DAY_MS + HOUR_MS - 5) / 1000 / DAY_S))]
    assert freshness(session, ["x"], 0) == [(1.0, 1.0)]  # a clock behind the event: age 0
    with pytest.raises(ValueError, match="recent item 'z' has no event"):
        freshness(session, ["z"], 0)


def test_age_features_only_when_on_and_given_the_time() -> None:
    for cfg, kwargs in ((OFF, {}), (OFF, {"now": NOW}), (ON, {})):
        assert not any(k in AGES for f in _features(cfg, **kwargs).values() for k in f)
    on = _features(ON, now=NOW, similar_recent=SIMILAR)
    assert {k for f in on.values() for k in f if k in AGES} == set(AGES)
    assert set(AGES) <= set(lb.FEATURES)


def test_values_on_a_hand_built_session() -> None:
    """``b`` (an hour old, r = 0) and ``a`` (two days old, r = 1): each vote is its share
    times the recent item's freshness over POSITIONS, summed over the recent items."""
    fb, fa = (0.5, 0.5 ** (1 / 24)), (0.5 ** 48, 0.25)
    f = _features(ON, now=NOW)
    assert f["c"]["simh"] == 1.0 * fb[0] / 5 and f["c"]["simd"] == 1.0 * fb[1] / 5
    assert f["d"]["simh"] == 0.5 * fb[0] / 5 + 1.0 * fa[0] / 5
    assert f["d"]["simd"] == 0.5 * fb[1] / 5 + 1.0 * fa[1] / 5
    assert f["e"]["simh"] == 0.5 * fa[0] / 5 and f["e"]["simd"] == 0.5 * fa[1] / 5
    assert (f["b"]["seenh"], f["b"]["seend"]) == fb and f["b"]["seen0"] == 1.0
    assert (f["a"]["seenh"], f["a"]["seend"]) == fa and f["a"]["seen1"] == 1.0
    assert "simh" not in f["t"] and "seenh" not in f["c"]  # trending only; not a recent item
    # the features of before are unchanged, in the same order
    plain = _features(OFF)
    assert {i: {k: v for k, v in x.items() if k not in AGES} for i, x in f.items()} == plain
    assert [list(x) for x in plain.values()] == \
        [[k for k in x if k not in AGES] for x in f.values()]


def test_a_stale_recent_item_votes_less_than_a_fresh_one() -> None:
    """The same vote (share 1.0 of the newest recent item) read a minute and three days after
    the item: the hour weight falls to nothing, the day weight to an eighth; ``sim0`` is the
    same either way (that is the point: it cannot tell them apart)."""
    session = {"events": [["b", "view", NOW]], "purchased": []}
    similar = {"b": (("c", 1.0),)}

    def at(now: int) -> dict[str, float]:
        cands = lb.candidates(session, similar, {}, [], BlendParams(), ON, now=now)
        return dict(next(c for c in cands if c.item_id == "c").features)

    fresh, stale = at(NOW + 60_000), at(NOW + 3 * DAY_MS)
    assert fresh["sim0"] == stale["sim0"] == 1.0
    assert fresh["simh"] > 0.19 and stale["simh"] < 1e-20
    assert fresh["simd"] > 0.199 and stale["simd"] == 0.2 / 8


_ids = st.sampled_from("abcdefgh")


@settings(max_examples=150, deadline=None)
@given(events=st.lists(st.tuples(_ids, st.integers(0, 5 * DAY_MS)), max_size=10),
       similar=st.dictionaries(_ids, st.lists(st.tuples(_ids, st.sampled_from((1.0, 0.5))),
                                              max_size=5).map(tuple), max_size=8),
       now=st.none() | st.integers(0, 10 * DAY_MS))
def test_off_changes_nothing(events: list[tuple[str, int]], similar: dict[str, Any],
                             now: int | None) -> None:
    """Off (the default), with or without ``now``, the candidates and their features (keys,
    order, values) are those of a call without either; on, only the age features are added."""
    session = {"events": [[i, "view", t] for i, t in events], "purchased": []}

    def cands(cfg: lb.LearnedBlendConfig, **kwargs: Any) -> tuple[lb.Candidate, ...]:
        return lb.candidates(session, similar, {}, FILLS, BlendParams(), cfg,
                             similar_recent=similar, **kwargs)

    def plain(found: tuple[lb.Candidate, ...]) -> list[tuple[str, int, list[Any]]]:
        return [(c.item_id, c.prior_rank, [(k, v) for k, v in c.features.items()
                                           if k not in AGES]) for c in found]

    before = cands(OFF)
    off, on = cands(OFF, now=now), cands(ON, now=now)
    assert off == before
    assert plain(on) == plain(before)


def test_the_config_travels_with_the_published_model() -> None:
    """On (the default), ``ages`` is published and read back; off it is left out, so the
    published value is the one of before (which the code of before, refusing unknown fields,
    still reads), and a value published before it, without ``ages``, decodes as off."""
    model = lb.BlendModel({"simh": 0.5, "prior": 1.0}, events=3)
    doc = orjson.loads(orjson.dumps(lb.published(model, ON)))
    assert doc["cfg"]["ages"] is True and lb.from_published(doc) == (model, ON)
    assert lb.published(model, lb.LearnedBlendConfig()) == lb.published(model, ON)
    off = lb.published(model, OFF)
    assert "ages" not in off["cfg"] and set(off["cfg"]) == {
        "lr", "l2", "negatives", "pool", "fill_pool", "k", "min_labelled", "window"}
    assert lb.from_published(orjson.loads(orjson.dumps(off)))[1].ages is False
    with pytest.raises(ValueError, match="ages must be true or false, got 'yes'"):
        lb.from_published({**doc, "cfg": {**doc["cfg"], "ages": "yes"}})


def test_switched_on_by_the_blend_learners_setting_and_the_tuner() -> None:
    from recs.evaluation import tune_learned

    assert Settings().blend_ages is True and Settings.from_env({}).blend_ages is True
    for text, on in (("1", True), ("true", True), ("0", False), ("false", False)):
        assert Settings.from_env({"RECS_BLEND_AGES": text}).blend_ages is on
    s = Settings(blend_ages=False)
    assert s.to_env()["RECS_BLEND_AGES"] == "0" and Settings.from_env(s.to_env()) == s
    assert tune_learned.blend_config(["ages=true"]) == ON
    assert tune_learned.blend_config([]) == ON == lb.LearnedBlendConfig()
    assert tune_learned.blend_config(["ages=false"]) == OFF
    with pytest.raises(ValueError, match="--lb ages: expected true or false, got 'yes'"):
        tune_learned.blend_config(["ages=yes"])


def test_the_evaluation_learns_the_age_features_with_lb_ages_true(tmp_path: Path) -> None:
    """``tune_learned --lb ages=true``'s learner computes them at each event's time (the
    weights learned include them); with ``ages=false`` none is learned."""
    from recs import datasets
    from recs.evaluation import tune_learned
    from tests.test_evaluation_cli import write_rsc15

    write_rsc15(tmp_path / "rsc15-sample")
    events = datasets.load("rsc15", tmp_path / "rsc15-sample").events[:400]
    weights = []
    for lbs in (["ages=true"], ["ages=false"]):
        _, learner = tune_learned.methods(tune_learned.engine_config([]),
                                          tune_learned.blend_config(lbs), [], ("engine",))
        for e in events:
            learner.learn(e)
        weights.append(learner.blend_model.weights)
    assert learner.blend_model.labelled > 0
    assert {"simh", "simd", "seenh", "seend"} & set(weights[0])
    assert not set(AGES) & set(weights[1])
