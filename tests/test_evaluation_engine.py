"""The engine's methods read the reference runner the way the server reads Redis."""

from __future__ import annotations

import random

from operators.blend import VECTOR
from operators.candidates import recent_items, session_candidates
from recs.evaluation.api import Query
from recs.evaluation.engine_methods import (
    FullBlend,
    RelationSource,
    SessionSource,
    TrendingSource,
    engine_methods,
)
from recs.evaluation.engine_recs import TUNED_BLEND, Blend, EngineLearner
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


def spaced(users: int = 20, per_user: int = 6, seed: int = 4) -> list[Interaction]:
    """Two taste groups (items a0..a6, b0..b6); every event an hour after the user's previous
    one, so no two share a session: no co-visitation, the learned model is the only signal
    that tells a user's group."""
    rng = random.Random(seed)
    out = []
    for n in range(per_user):
        for u in range(users):
            group = "a" if u % 2 else "b"
            item = f"{group}{rng.randrange(7)}"
            ts = BASE + n * 3_600_000 + u * 1_000
            out.append(Interaction(f"e{n}-{u}", "view", f"u{u}", f"s{n}-{u}", ts,
                                   item_id=item))
    return out


def test_the_engine_blends_the_learned_source_and_engine_static_does_not() -> None:
    methods = {m.name: m for m in engine_methods()}
    engine, static = methods["engine"], methods["engine_static"]
    assert isinstance(engine, FullBlend) and isinstance(static, FullBlend)
    learner = engine.learner
    assert isinstance(learner, EngineLearner) and static.learner is learner
    events = spaced(per_user=TUNED_BLEND.vector_min_events + 2)  # past the tuned gate
    for e in events:
        learner.learn(e)
    assert learner.runner.relations == {}  # no session pairs: only the model is personal
    assert learner.mf is not None and learner.mf.events == len(events)
    q = Query("u1", "s-next", BASE + 10**9, ())
    with_vector = engine.scored(q, 5)
    assert all(any(e.source == VECTOR for e in c.evidence) for c in with_vector)
    vector = [e for c in with_vector for e in c.evidence if e.source == VECTOR]
    assert vector[0].because == f"model v{learner.mf.updates}"  # the model version
    assert all(c.item_id.startswith("a") for c in with_vector[:3])  # u1's group
    without = static.scored(q, 5)
    assert not any(e.source == VECTOR for c in without for e in c.evidence)
    assert [c.item_id for c in with_vector] != [c.item_id for c in without]


def test_the_learned_source_needs_a_known_user_and_learns_test_then_train() -> None:
    learner = EngineLearner()
    events = spaced()
    for e in events[:-1]:
        learner.learn(e)
    assert learner.vector_list("stranger", 5) == []
    last = events[-1]
    assert learner.vector_list(last.user_id, 5, min_events=99) == []  # the gate
    gated = FullBlend(learner, Blend(vector_min_events=99))
    static = FullBlend(learner, Blend(vector_weight=0.0))
    q = Query(last.user_id, "s-next", BASE + 10**9, ())
    assert gated.recommend(q, 10) == static.recommend(q, 10)
    assert FullBlend(learner, Blend()).recommend(q, 10) != static.recommend(q, 10)
    before = learner.vector_list(last.user_id, 5)
    assert before
    learner.observe(last)  # a frozen test part: the model does not move
    assert learner.vector_list(last.user_id, 5) == before
    assert learner.mf is not None and learner.mf.events == len(events) - 1
    plain = EngineLearner(learned=False)
    plain.learn(last)
    assert plain.mf is None and plain.vector_list(last.user_id, 5) == []


def test_prior_events_count_only_earlier_sessions() -> None:
    learner = EngineLearner()
    for t, sess in enumerate(["s1", "s1", "s1", "s2", "s2"]):
        learner.learn(Interaction(f"e{t}", "view", "u", sess, BASE + t, item_id=f"i{t}"))
    assert learner.mf_events["u"] == 5
    assert learner.prior_events("u", "s2") == 3  # the current session does not count
    assert learner.prior_events("u", "s3") == 5  # a new session: everything learned so far
    assert learner.prior_events("nobody", "s1") == 0
    assert learner.vector_list("u", 3, min_prior=4, session_id="s2") == []
    assert learner.vector_list("u", 3, min_prior=4, session_id="s3")
