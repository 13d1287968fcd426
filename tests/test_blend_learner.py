"""The blend learner's pure steps (stream/blend_learner.py): the session cut back to before the
event, the stateless sample, resuming from the published value (or not), the lockstep reads,
and that batching the reads of many events learns exactly what one event at a time learns."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators import learned_blend as lb
from operators.config import BASKET_TYPES, INTEREST_TYPES
from operators.trending import daypart
from recs.settings import Settings
from schemas.events import Interaction
from serving.experiments import load_experiments
from serving.rules import load_rules
from state.keys import MODEL_BLEND, model_key, session_key, trending_context_key, uservec_key
from state.records import Envelope, Update, encode_envelope
from state.store import MemoryStore
from stream.blend_learner import (
    BlendLearner,
    Counts,
    check_share,
    resume,
    sampled,
    session_before,
)
from stream.blend_learner_run import options_of
from stream.model_views import blend_updates
from tests.streamkit import T0, generated_log, reference

TYPES = sorted(INTEREST_TYPES)
events_st = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(TYPES),
                               st.integers(0, 20)), max_size=12)


def _session(events: list[tuple[str, str, int]]) -> dict[str, Any]:
    events = sorted(events, key=lambda e: e[2])
    bought = list(dict.fromkeys(i for i, t, _ in events if t == "purchase"))
    basket = list(dict.fromkeys(i for i, t, _ in events if t in BASKET_TYPES))
    return {"session_id": "s", "start": 0, "last_ts": max((e[2] for e in events), default=0),
            "events": [list(e) for e in events], "basket": basket, "purchased": bought,
            "shown": [["x", 1, 3], ["y", 2, 9]]}


@given(events_st, st.integers(0, 22))
def test_session_before_keeps_only_what_came_before(events: list[tuple[str, str, int]],
                                                    ts: int) -> None:
    session = _session(events)
    frozen = repr(session)
    before = session_before(session, ts)
    assert repr(session) == frozen  # the input is not mutated
    kept = [e for e in session["events"] if e[2] < ts]
    if before is None:
        assert not kept and all(s[2] >= ts for s in session["shown"])
        return
    assert before["events"] == kept
    assert all(s[2] < ts for s in before["shown"])
    assert before["last_ts"] == max((e[2] for e in kept), default=0)
    # what the session would hold had it stopped before ts (built from the kept events alone)
    rebuilt = _session([(e[0], e[1], e[2]) for e in kept])
    assert before["purchased"] == rebuilt["purchased"]
    assert before["basket"] == rebuilt["basket"]


def test_the_event_itself_is_dropped_and_nothing_newer_survives() -> None:
    s = _session([("a", "view", 1), ("b", "view", 5), ("c", "purchase", 5), ("d", "view", 7)])
    before = session_before(s, 5)
    assert before is not None and before["events"] == [["a", "view", 1]]
    assert before["purchased"] == [] and before["basket"] == []
    assert session_before(None, 5) is None
    assert session_before(_session([("a", "view", 5)]) | {"shown": []}, 5) is None


@given(st.text(min_size=1, max_size=30), st.floats(0.01, 1.0))
def test_the_sample_is_a_pure_function_of_the_event_id(event_id: str, share: float) -> None:
    assert sampled(event_id, share) == sampled(event_id, share)
    assert sampled(event_id, 1.0)
    if sampled(event_id, share):  # a larger share keeps every event a smaller one kept
        assert sampled(event_id, min(1.0, share * 1.5))


def test_the_sample_keeps_about_its_share() -> None:
    kept = sum(sampled(f"e{n}", 0.2) for n in range(20_000))
    assert 0.19 < kept / 20_000 < 0.21


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, float("nan"), True, "0.5"])
def test_a_bad_share_is_refused_by_name(bad: Any) -> None:
    with pytest.raises(ValueError, match="sample must be a number in"):
        check_share(bad)


def test_options_take_the_flags_else_the_settings() -> None:
    settings = Settings(blend_sample=0.25, blend_publish_ms=3_000)
    opts = options_of(settings)
    assert (opts.sample, opts.publish_every_s, opts.topic, opts.redis_url) == \
        (0.25, 3.0, settings.topics.interactions, settings.redis_url)
    assert Settings.from_env(settings.to_env()) == settings


def _published(model: lb.BlendModel, version: int | None = None) -> bytes:
    (upd,) = blend_updates(model, lb.LearnedBlendConfig())
    if version is not None:
        upd = Update(upd.key, version, upd.as_of, upd.data)
    return encode_envelope(upd)


def test_resume_from_the_published_value() -> None:
    model = lb.BlendModel({"prior": 0.5, "trend": 0.25}, events=30, labelled=12,
                          prior_gain=0.3, learned_gain=0.4, pairs=36, pair_wins=20.0, as_of=99)
    got, how = resume(_published(model))
    assert got == model and "version 12" in how
    (upd,) = blend_updates(model, lb.LearnedBlendConfig())
    assert (upd.key, upd.version, upd.as_of) == (model_key(MODEL_BLEND), 12, 99)


@pytest.mark.parametrize("raw", [None, b"not json", b'{"v":1,"t":2,"d":[1]}',
                                 b'{"v":1,"t":2,"d":{"_c":99,"weights":{}}}',
                                 b'{"v":1,"t":2,"d":{"_c":1,"weights":{"prior":1.0}}}',
                                 b'{"v":4,"t":2,"d":null}', b"\xff\xfe"])
def test_an_absent_deleted_or_unreadable_value_starts_from_the_prior(raw: bytes | None) -> None:
    model, how = resume(raw)
    assert model == lb.initial()
    assert "prior" in how


# ---- lockstep reads against the in-memory store -------------------------------------------

def _reader(store: MemoryStore, calls: list[int]) -> Any:
    async def get_many(keys: Sequence[str]) -> list[Envelope | None]:
        calls.append(len(keys))
        return store.get_many(keys)
    return get_many


def _learner() -> BlendLearner:
    rules = load_rules(None)
    return BlendLearner(load_experiments(None, rules), 1.0, examples=[])


def test_batched_reads_learn_what_one_event_at_a_time_learns() -> None:
    log = generated_log(1_500, n_users=60, n_items=450, seed=3)
    runner_store = reference(log).store  # the state after the whole log, tail included
    assert isinstance(runner_store, MemoryStore)
    tail = log.events[-300:]
    wanted = [e for e in tail if lb.label_of(e) is not None]
    batched, single = _learner(), _learner()
    calls: list[int] = []
    chosen = batched.select([e.to_json() for e in tail])
    assert chosen == wanted
    asyncio.run(batched.learn(chosen, _reader(runner_store, calls)))
    assert len(calls) == 3  # three round trips for the whole batch
    for event in wanted:
        asyncio.run(single.learn([event], _reader(runner_store, [])))
    assert batched.model == single.model
    assert batched.examples == single.examples
    assert batched.counts.stepped == single.counts.stepped > 50
    assert batched.model.labelled > 0
    # the model is the examples stepped in order, from the prior
    replay = lb.initial()
    for ex in batched.examples or []:
        replay, _ = lb.step(replay, ex, batched.cfg)
    assert replay == batched.model


def test_events_a_list_already_counts_are_skipped_unless_asked() -> None:
    log = generated_log(1_500, n_users=60, n_items=450, seed=3)
    store = reference(log).store  # the state after the whole log: every list counts the tail
    assert isinstance(store, MemoryStore)
    tail = [e for e in log.events[-200:] if lb.label_of(e) is not None]
    skipping = BlendLearner(load_experiments(None, load_rules(None)), 1.0, skip_leaked=True)
    asyncio.run(skipping.learn(tail, _reader(store, [])))
    learning = _learner()
    asyncio.run(learning.learn(tail, _reader(store, [])))
    c = skipping.counts
    assert c.leaked == learning.counts.leaked > 0.9 * (len(tail) - c.no_session)
    assert c.skipped_leaked == c.leaked
    assert c.stepped == learning.counts.stepped - c.leaked
    # a state that does not count them (the log without its tail) leaks far fewer: only where
    # the log's events arrived out of order by more than their distance in time (up to 1.5 s
    # here), a list reflecting a later event time than the event's
    early = reference(dataclasses.replace(log, events=log.events[:-200])).store
    assert isinstance(early, MemoryStore)
    fresh = BlendLearner(load_experiments(None, load_rules(None)), 1.0, skip_leaked=True)
    asyncio.run(fresh.learn(tail, _reader(early, [])))
    assert fresh.counts.leaked < c.leaked / 2 and fresh.counts.stepped > c.stepped


def test_the_plan_asks_the_events_usable_context_as_a_request_would() -> None:
    learner = _learner()
    session = Envelope(1, 1, _session([("a", "view", 1)]))
    keys = []
    for context in ({"device": "Web ", "country": "de"}, {"device": "   ", "country": "x" * 65},
                    {"device": 3}):
        plan = learner.plan(Interaction("e", "view", "u", "s", T0, item_id="b", context=context))
        first = next(plan)
        assert first.keys == [session_key("u"), uservec_key("u")] and not first.cache
        keys.append([k for k in plan.send([session, None]).keys if ":ctx:" in k])
    daypart_key = trending_context_key("daypart", daypart(T0))
    assert keys[0] == [trending_context_key("country", "de"),
                       trending_context_key("device", "web"), daypart_key]
    assert keys[1] == keys[2] == [daypart_key]  # unusable values: no scope, no error


def test_malformed_events_are_counted_and_logged_by_field(
        caplog: pytest.LogCaptureFixture) -> None:
    learner = _learner()
    good = Interaction("e1", "view", "u", "s", 1_700_000_000_000, item_id="i1")
    bad = b'{"event_id":"m","type":"view","user_id":"u","session_id":"s","ts":"soon"}'
    with caplog.at_level("WARNING", logger="stream.blend_learner"):
        kept = learner.select([good.to_json(), bad, b"{"])
    assert kept == [good]
    assert (learner.counts.seen, learner.counts.malformed, learner.counts.interest) == (3, 2, 1)
    assert "field=ts value='soon'" in caplog.text


def test_metrics_render_the_counts_and_have_no_publication_series_before_one() -> None:
    from recs.readings import samples_of
    from stream.blend_learner_metrics import COUNTERS, LearnerCollector, LearnerReading
    from tests.test_prometheus import catalogue

    counts = Counts(seen=7, malformed=1, interest=5, sampled=4, no_session=1, leaked=2,
                    skipped_leaked=2, unread=0, stepped=1)
    model = lb.BlendModel(events=3, labelled=2, prior_gain=0.5, learned_gain=0.25)
    reading = LearnerReading(counts, model, False, True, None, {("t", 1): 9, ("t", 0): 0})

    def got() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for s in samples_of(LearnerCollector(lambda: reading))}

    before = got()
    assert [before[(f"recs_blend_learner_{name}_total", ())] for _, name, _ in COUNTERS] == \
        [7, 1, 5, 4, 1, 2, 2, 0, 1, 0]
    assert before[("recs_blend_learner_labelled", ())] == 2
    assert before[("recs_blend_learner_gain", (("order", "learned"),))] == 0.25
    assert before[("recs_blend_learner_lag_records", (("partition", "1"), ("topic", "t")))] == 9
    assert not [n for n, _ in before if "publish" in n and not n.endswith("publishes_total")]
    reading = dataclasses.replace(
        reading, counts=dataclasses.replace(counts, publishes=1, last_publish_version=2,
                                            last_publish_as_of=5_000), published_at_s=12.5)
    after = got()
    assert {name for name, _ in after} <= set(catalogue())  # docs/observability.md lists them
    assert (after[("recs_blend_learner_published_version", ())],
            after[("recs_blend_learner_published_event_time_seconds", ())],
            after[("recs_blend_learner_last_publish_timestamp_seconds", ())]) == (2, 5.0, 12.5)


def test_with_ages_on_the_examples_carry_the_age_features_at_each_events_time() -> None:
    """``RECS_BLEND_AGES`` (Settings.blend_ages, on by default) builds the learner's config
    with ``ages`` on, published with the weights; its examples are the candidates of the
    learner with it off plus the age features, computed at each event's time, and the weights
    learn them."""
    from stream.blend_learner_run import Shell

    off_settings = Settings(blend_ages=False)
    assert Shell(options_of(Settings()), Settings()).learner.cfg.ages
    assert not Shell(options_of(off_settings), off_settings).learner.cfg.ages
    log = generated_log(1_500, n_users=60, n_items=450, seed=3)
    store = reference(log).store
    assert isinstance(store, MemoryStore)
    wanted = [e for e in log.events[-300:] if lb.label_of(e) is not None]
    rules = load_rules(None)
    # the second lists left out: the age features of the similar lists alone are compared
    on = BlendLearner(load_experiments(None, rules), 1.0, lb.LearnedBlendConfig(ages=True),
                      examples=[], similar_recent=False)
    off = BlendLearner(load_experiments(None, rules), 1.0, lb.LearnedBlendConfig(ages=False),
                       examples=[], similar_recent=False)
    for learner in (on, off):
        asyncio.run(learner.learn(wanted, _reader(store, [])))
    ages = ("simh", "simd", "seenh", "seend")
    assert on.examples is not None and off.examples is not None
    for a, b in zip(on.examples, off.examples, strict=True):
        assert (a.target, a.ts) == (b.target, b.ts)
        assert [(c.item_id, c.prior_rank, {k: v for k, v in c.features.items() if k not in ages})
                for c in a.candidates] == \
            [(c.item_id, c.prior_rank, dict(c.features)) for c in b.candidates]
        for c in a.candidates:  # the freshness of a vote is that of an event before this one
            assert all(0.0 < c.features.get(k, 1.0) <= 1.0 for k in ("seenh", "seend"))
    aged = [ex for ex in on.examples if any(k in ages for c in ex.candidates
                                             for k in c.features)]
    assert len(aged) > len(on.examples) // 2
    assert any(k in ages and w != 0.0 for k, w in on.model.weights.items())
    assert not any(k in ages for k in off.model.weights)
    (upd,) = blend_updates(on.model, on.cfg)
    assert upd.data is not None and upd.data["cfg"]["ages"] is True
