"""One conformance suite run on every operator step function (as River checks every estimator).

Each operator is described by an :class:`OperatorSpec`: a step normalised to
``(state | None, input) -> (state | None, emitted)``, the strategy of its inputs, its state codec,
its render function and the :mod:`stream.views` updates published for it. States are reached by
folding random input sequences from ``None`` (the state factory), so codecs and renders are
checked on states the operators really produce, evictions and session restarts included.

Properties, for every operator:

- deterministic: equal state and input give equal state and equal emitted values;
- pure: neither the input state (dicts inside the frozen dataclasses included) nor the input
  record is mutated, and no state reached earlier in a fold changes later (no aliasing);
- starts from ``None``;
- codec round-trips through JSON bytes, and stepping a restored state equals stepping the
  original (restore after a crash is invisible);
- render output and published updates are plain JSON (no tuples, no non-finite floats).
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import arrivals, learned_blend, neighbours, session, trending
from operators.config import EngineConfig, NeighbourConfig, SessionConfig, TrendingConfig
from operators.session import Pair
from schemas.events import Interaction, ItemUpsert
from state.keys import MODEL_BLEND
from state.records import Update
from stream import views
from tests.strategies import DAY, ITEMS, T0, interactions, is_json_plain, upserts

# Small bounds so short random sequences hit every branch: evictions, trims, new sessions, TTL,
# shown lists and context scopes over their bounds.
CFG = EngineConfig(
    session=SessionConfig(max_events=4, pair_window=3, max_basket=3, max_purchased=2,
                          max_shown=3),
    similar=NeighbourConfig(capacity=3, top_k=2, half_life_s=3_600.0),
    trending=TrendingConfig(half_life_s=3_600.0, top_k=3, max_context_scopes=2, new_top_k=2),
)
ITEM = "i0"


@dataclass(frozen=True)
class OperatorSpec:
    name: str
    step: Callable[[Any, Any], tuple[Any, Any]]
    inputs: st.SearchStrategy[Any]
    encode: Callable[[Any], dict[str, Any]]
    decode: Callable[[dict[str, Any]], Any]
    render: Callable[[Any], Any]
    views: Callable[[Any], list[Update]]

    def reach(self, inputs: Sequence[Any]) -> list[Any]:
        """The state factory: every state of the fold of ``inputs`` from ``None``."""
        states, state = [], None
        for x in inputs:
            state, _ = self.step(state, x)
            states.append(state)
        return states


def _session_step(state: Any, event: Interaction) -> tuple[Any, Any]:
    return session.step(state, event, CFG.session)


def _neighbour_step(state: Any, pair: Pair) -> tuple[Any, Any]:
    return neighbours.step(state, pair, CFG.similar), None


def _item_step(state: Any, rec: Interaction | ItemUpsert) -> tuple[Any, Any]:
    if isinstance(rec, ItemUpsert):
        return trending.item_upsert_step(state, rec, CFG)
    if rec.item_id is not None:
        return trending.item_step(state, rec, CFG)
    return trending.item_event_step(state, ITEM, rec.type, rec.value, rec.ts, CFG,
                                    device=trending.context_field(rec, "device"),
                                    country=trending.context_field(rec, "country"))


def _topk_step(state: Any, score: trending.ScopeScore) -> tuple[Any, Any]:
    new, changed = trending.topk_step(state, score)
    return (trending.trim(new, CFG.trending, score.scope) if new is not None else None), changed


pairs = st.builds(
    Pair,
    relation=st.just("similar"),
    src=st.just("a"),
    dst=st.sampled_from(ITEMS),
    weight=st.sampled_from((0.1, 0.5, 1.0, 2.0)),
    ts=st.integers(T0, T0 + 5 * DAY),
)
scope_scores = st.builds(
    trending.ScopeScore,
    scope=st.just("ctx:device:web"),
    item_id=st.sampled_from(ITEMS),
    log_score=st.floats(-50.0, 50.0, allow_nan=False),
    ts=st.integers(T0, T0 + DAY),
)
# new-arrival offers: first-seen scores, some of them retractions (deleted, moved or lowered)
arrival_scores = st.builds(
    trending.ScopeScore,
    scope=st.just("new:global"),
    item_id=st.sampled_from(ITEMS),
    log_score=st.one_of(st.just(trending.RETRACT),
                        st.integers(T0, T0 + DAY).map(lambda t: arrivals.score(t, 3_600.0))),
    ts=st.integers(T0, T0 + DAY),
)

# the learned blend: examples of a few candidates with random features, the target among them
# or not
BLEND_CFG = learned_blend.LearnedBlendConfig(min_labelled=3, window=4, negatives=2)
blend_candidates = st.lists(
    st.dictionaries(st.sampled_from((*learned_blend.FEATURES[:6], "prior", "trend")),
                    st.floats(0.0, 1.0, allow_nan=False), max_size=4),
    max_size=4).map(lambda fs: tuple(learned_blend.Candidate(ITEMS[n], n, f)
                                     for n, f in enumerate(fs)))
blend_examples = st.builds(learned_blend.Example, target=st.sampled_from(ITEMS[:5]),
                           candidates=blend_candidates, ts=st.integers(T0, T0 + DAY))


def _blend_step(state: Any, ex: learned_blend.Example) -> tuple[Any, Any]:
    return learned_blend.step(state, ex, BLEND_CFG)


def _blend_published(state: Any) -> dict[str, Any]:
    return learned_blend.published(state, BLEND_CFG)


SPECS = [
    OperatorSpec(
        "session", _session_step,
        # 40 days of spread: out-of-order events, gaps and TTL expiries all happen.
        interactions(span=40 * DAY, items=ITEMS[:4]),
        session.encode, session.decode, session.render,
        lambda s: [views.session_update("u", s)],
    ),
    OperatorSpec(
        "neighbours", _neighbour_step, pairs,
        neighbours.encode, neighbours.decode,
        lambda s: neighbours.render(s, CFG.similar),
        lambda s: [views.neighbour_update("similar", "a", s, CFG)],
    ),
    OperatorSpec(
        "item", _item_step,
        st.one_of(interactions(items=(ITEM,)), upserts(item=ITEM)),
        trending.encode_item, trending.decode_item,
        lambda s: {"stats": trending.render_stats(s), "item": trending.render_item(s)},
        lambda s: views.item_updates(ITEM, s),
    ),
    OperatorSpec(
        "topk", _topk_step, scope_scores,
        trending.encode_topk, trending.decode_topk,
        lambda s: trending.render_topk(s, CFG.trending),
        lambda s: [views.trending_update("ctx:device:web", s, CFG)],
    ),
    OperatorSpec(
        "new-arrivals", _topk_step, arrival_scores,
        trending.encode_topk, trending.decode_topk,
        lambda s: trending.render_topk(s, CFG.trending, "new:global"),
        lambda s: [views.trending_update("new:global", s, CFG)],
    ),
    OperatorSpec(
        "learned-blend", _blend_step, blend_examples,
        learned_blend.encode, learned_blend.decode, _blend_published,
        lambda s: [views.model_update(MODEL_BLEND, _blend_published(s), version=s.labelled,
                                      as_of=s.as_of)],
    ),
]
IDS = [s.name for s in SPECS]
operators = pytest.mark.parametrize("spec", SPECS, ids=IDS)
examples = settings(max_examples=30, deadline=None)


def _sequence(data: st.DataObject, spec: OperatorSpec, max_size: int = 10) -> list[Any]:
    return data.draw(st.lists(spec.inputs, max_size=max_size), label="prefix")


def _last(states: list[Any]) -> Any:
    return states[-1] if states else None


def _round_trip(spec: OperatorSpec, state: Any) -> Any:
    return spec.decode(orjson.loads(orjson.dumps(spec.encode(state))))


@operators
@examples
@given(data=st.data())
def test_deterministic(spec: OperatorSpec, data: st.DataObject) -> None:
    prefix = _sequence(data, spec)
    x = data.draw(spec.inputs, label="input")
    assert spec.reach(prefix) == spec.reach(copy.deepcopy(prefix))
    state = _last(spec.reach(prefix))
    first = spec.step(copy.deepcopy(state), copy.deepcopy(x))
    second = spec.step(copy.deepcopy(state), copy.deepcopy(x))
    assert first == second


@operators
@examples
@given(data=st.data())
def test_does_not_mutate_inputs(spec: OperatorSpec, data: st.DataObject) -> None:
    inputs = [*_sequence(data, spec), data.draw(spec.inputs, label="input")]
    inputs_before = copy.deepcopy(inputs)
    states, snapshots, state = [], [], None
    for x in inputs:
        before: Any = copy.deepcopy(state)
        fields_before: Any = dataclasses.asdict(state) if state is not None else None
        new, _ = spec.step(state, x)
        # the state just stepped, its nested dicts included, is untouched
        assert state == before
        assert (dataclasses.asdict(state) if state is not None else None) == fields_before
        state = new
        states.append(state)
        snapshots.append(copy.deepcopy(state))
    # no later step reached back into an earlier state through a shared dict
    assert states == snapshots
    assert inputs == inputs_before


@operators
@examples
@given(data=st.data())
def test_works_from_empty_state(spec: OperatorSpec, data: st.DataObject) -> None:
    x = data.draw(spec.inputs, label="input")
    state, _ = spec.step(None, x)
    if state is not None:
        assert _round_trip(spec, state) == state
        assert is_json_plain(spec.render(state))


@operators
@examples
@given(data=st.data())
def test_codec_round_trips_and_restore_is_invisible(spec: OperatorSpec,
                                                    data: st.DataObject) -> None:
    prefix = _sequence(data, spec)
    x = data.draw(spec.inputs, label="input")
    for state in spec.reach(prefix):
        if state is None:
            continue
        doc = spec.encode(state)
        assert is_json_plain(doc), doc
        restored = _round_trip(spec, state)
        assert restored == state
        assert spec.step(restored, x) == spec.step(state, x)


@operators
@examples
@given(data=st.data())
def test_render_and_views_are_plain_json(spec: OperatorSpec, data: st.DataObject) -> None:
    for state in spec.reach(_sequence(data, spec)):
        if state is None:
            continue
        rendered = spec.render(state)
        assert is_json_plain(rendered), rendered
        assert orjson.loads(orjson.dumps(rendered)) == rendered
        for update in spec.views(state):
            assert is_json_plain(update.data), update
            assert Update.from_wire(update.to_wire()) == update


@operators
def test_decode_rejects_unknown_codec(spec: OperatorSpec) -> None:
    with pytest.raises(ValueError, match=r"codec 99"):
        spec.decode({"_c": 99})
