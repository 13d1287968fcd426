"""The engine's methods read the reference runner the way the server reads Redis."""

from __future__ import annotations

import random

from operators.candidates import recent_items, session_candidates
from recs.evaluation.api import Query
from recs.evaluation.engine_recs import (
    Blend,
    EngineLearner,
    FullBlend,
    RelationSource,
    SessionSource,
    TrendingSource,
    engine_methods,
)
from schemas.events import Interaction, ItemUpsert
from state import keys
from stream.reference import ReferenceRunner
from stream.views import neighbour_update, session_update, trending_update

BASE = 1_600_000_000_000


def generated(seed: int, repeat: float, sessions: int = 120) -> list[Interaction]:
    """Sessions over 30 items; ``repeat``: chance that a click repeats the previous item."""
    rng = random.Random(seed)
    out = []
    for s in range(sessions):
        item = rng.randrange(30)
        for j in range(rng.randint(2, 6)):
            if j and rng.random() >= repeat:
                item = (item + rng.choice([1, 1, 2, 7])) % 30
            out.append(Interaction(f"e{s}-{j}", "view", f"u{s}", f"s{s}",
                                   BASE + s * 60_000 + j * 1_000, item_id=f"i{item}"))
    return out


def test_sources_equal_what_the_published_values_give() -> None:
    events = generated(1, repeat=0.2)
    learner = EngineLearner()
    runner = ReferenceRunner()
    for e in events:
        learner.learn(e)
        runner.on_event(e)
    user = events[-1].user_id
    session_value = session_update(user, runner.sessions[user]).data
    assert session_value is not None
    lists = {}
    for item in recent_items(session_value):
        state = runner.relations.get((keys.KIND_SIMILAR, item))
        if state is not None:
            lists[item] = neighbour_update(keys.KIND_SIMILAR, item, state, runner.cfg).data["items"]
    want = [c.item_id for c in session_candidates(session_value, lists, k=10)]
    q = Query(user, events[-1].session_id, events[-1].ts + 1, ())
    assert SessionSource(learner).recommend(q, 10) == want
    last = session_value["events"][-1][0]
    assert RelationSource(learner, keys.KIND_SIMILAR).recommend(q, 5) == \
        [i for i, _ in lists[last][:5]]
    top = trending_update("global", runner.topk["global"], runner.cfg).data["items"]
    assert TrendingSource(learner).recommend(q, 5) == [i for i, _ in top[:5]]


def test_every_method_respects_exclusions() -> None:
    events = generated(2, repeat=0.3)
    methods = engine_methods()
    learner = methods[0].learner
    for e in events:
        learner.learn(e)
    user = events[-1].user_id
    q = Query(user, events[-1].session_id, events[-1].ts + 1, ())
    for m in methods:
        full = m.recommend(q, 10)
        banned = frozenset(full[:3])
        again = m.recommend(Query(q.user_id, q.session_id, q.ts, (), banned), 10)
        assert not banned & set(again), m.name


def test_calibrated_reminders_follow_the_measured_repeat_rate() -> None:
    sticky, fickle = EngineLearner(), EngineLearner()
    for e in generated(3, repeat=0.6):
        sticky.learn(e)
    for e in generated(3, repeat=0.0):
        fickle.learn(e)
    assert sticky.remind_scores(1)[0] > 0.5
    assert fickle.remind_scores(3) == [0.0, 0.0, 0.0]
    user = "u119"
    last = sticky.session(user)["events"][-1][0]  # type: ignore[index]
    q = Query(user, "s119", BASE + 10**9, ())
    assert FullBlend(sticky).recommend(q, 5)[0] == last
    fickle_last = fickle.session(user)["events"][-1][0]  # type: ignore[index]
    assert fickle_last not in FullBlend(fickle, Blend(allow_repeats=False)).recommend(q, 20)


def test_observe_moves_only_the_session() -> None:
    learner = EngineLearner()
    learner.on_item(ItemUpsert(item_id="a", ts=BASE, category="c1"))
    learner.observe(Interaction("e1", "view", "u", "s", BASE, item_id="a"))
    learner.observe(Interaction("e2", "view", "u", "s", BASE + 1, item_id="b"))
    assert [e[0] for e in learner.session("u")["events"]] == ["a", "b"]  # type: ignore[index]
    assert learner.runner.relations == {}
    assert learner.category("a") == "c1"
    assert learner.repeat_events == 0
