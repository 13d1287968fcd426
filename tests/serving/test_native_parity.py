"""The compiled core (``native/``, :mod:`serving.native`) answers what the Python operators
answer: the same generated inputs through both, every output equal.

Inputs are drawn from a seeded generator over small alphabets so that they collide the way
real traffic does. The blend (:func:`operators.blend.blend`): recent items repeat in a session,
neighbour lists share items, shares tie (ties are broken by item id), lists are empty or missing,
the recent items are banned or allowed back, weights are zero, the learned retrieval is gated
off, fills run out, context fills name their own source and scope. The rules
(:func:`serving.rules.rerank`): scores tie, metadata is missing, empty or odd (a bool stock, a
string category), every rule and diversity method is on or off, factors that print with many
digits, sponsored slots past the end. Outputs are compared field by field: items, order, scores
(within 1e-9; they are in fact bit-identical, the same operations in the same order), every
piece of evidence (source, score, ``because``) in order, and the rules' notes word for word.
The learned blend's features are compared with the second similar-items lists present
(``similar_recent``: the ``simr*`` features) on the generated cases and, as a Hypothesis
property, on any small session, lists and fills; and with the age features on
(``LearnedBlendConfig.ages``) at a random request time, on both as well.
The whole server on each path is compared by ``test_answer_equality.py``.

Skipped, saying so, when the compiled core was not built (``make install`` builds it with
cargo; without cargo the server runs the Python path).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators import learned_blend
from operators.blend import BlendParams, Evidence, Fill, Scored, blend, shares, vector_shares
from serving import native
from serving.rules import DAY_MS, Ranked, RerankInput, Rules, rerank

CORE = native.compiled()
needs_core = pytest.mark.skipif(CORE is None, reason="compiled core not built (make install "
                                                      "builds it with cargo: native/build.sh)")

ITEMS = [f"i{n}" for n in range(60)]
SHARES = (1.0, 0.5, 0.25, 0.125)  # a few exact values: ties between votes are common
BLEND_CASES = 12_000
RERANK_CASES = 12_000
FEATURES_CASES = 10_000
NOW = 1_700_000_000_000
AGE_FEATURES = ("simh", "simd", "seenh", "seend", "simrh", "simrd")


def _ranked(rnd: random.Random, n: int) -> list[list[Any]]:
    """A ranked list of ``[item_id, log_score]``, best first (ties possible)."""
    items = rnd.sample(ITEMS, n)
    score = rnd.uniform(-5.0, 5.0)
    out: list[list[Any]] = []
    for item in items:
        out.append([item, score])
        score -= rnd.choice((0.0, 0.5, math.log(2), rnd.random()))
    return out


def _shares(rnd: random.Random, n: int) -> tuple[tuple[str, float], ...]:
    if rnd.random() < 0.5:
        return shares(_ranked(rnd, n))
    return tuple((i, rnd.choice(SHARES)) for i in rnd.sample(ITEMS, n))


def _params(rnd: random.Random) -> BlendParams:
    return BlendParams(
        recent=rnd.choice((1, 2, 5, 8)), recency_decay=rnd.choice((0.0, 0.5, 0.7, 1.0)),
        session_weight=rnd.choice((0.0, 1.0, 1.0, 0.8)),
        bought_weight=rnd.choice((0.0, 0.5, 0.3)),
        vector_weight=rnd.choice((0.0, 1.0, 0.6)), vector_temperature=0.2,
        vector_min_events=rnd.choice((0, 30)),
        remind=rnd.choice(((), (0.1,), (0.6, 0.3), (0.0, 0.5, 0.2))),
        allow_repeats=rnd.random() < 0.2, pool=rnd.choice((3, 10, 200)))


def _fill(rnd: random.Random) -> Fill:
    kind = rnd.random()
    if kind < 0.2:
        return Fill("trending", "global", [])
    items = _ranked(rnd, rnd.randrange(1, 30))
    if kind < 0.5:  # a context fill: each entry names its own source and scope
        return Fill("trending_context", "context", [
            [i, s, rnd.choice(("trending", "trending_context")),
             rnd.choice(("global", "ctx:device:mobile"))] for i, s in items])
    return Fill(rnd.choice(("trending", "trending_category", "new_arrival")),
                rnd.choice(("global", "c1", "")), items)


def blend_case(rnd: random.Random) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One call of :func:`operators.blend.blend`: positional and keyword arguments."""
    session: dict[str, Any] | None = None
    similar: dict[str, Any] = {}
    bought: dict[str, Any] = {}
    if rnd.random() < 0.85:
        events: list[list[Any]] = [[rnd.choice(ITEMS[:20]), "view", t]
                                   for t in range(rnd.randrange(0, 12))]
        session = {"events": events,
                   "purchased": rnd.sample(ITEMS, rnd.choice((0, 0, 1, 3)))}
        for item in sorted({str(e[0]) for e in events}):
            if rnd.random() < 0.85:
                similar[item] = _shares(rnd, rnd.randrange(0, 25))
            if rnd.random() < 0.5:
                bought[item] = _shares(rnd, rnd.randrange(0, 10))
    vector = vector_shares([(i, rnd.uniform(-1, 1)) for i in rnd.sample(ITEMS, 15)],
                           0.2) if rnd.random() < 0.3 else ()
    if vector:
        vector = tuple(sorted(vector, key=lambda e: -e[1]))
    kwargs = {"k": rnd.choice((0, 1, 4, 8, 21, 40)),
              "exclude": frozenset(rnd.sample(ITEMS, rnd.choice((0, 0, 2, 6)))),
              "vector": vector, "vector_because": rnd.choice(("", "model v3")),
              "vector_events": rnd.choice((0, 12, 50))}
    fills = [_fill(rnd) for _ in range(rnd.randrange(0, 4))]
    return (session, similar, bought, fills, _params(rnd)), kwargs


def _differences(a: Sequence[Scored], b: Sequence[Scored]) -> list[str]:
    if [c.item_id for c in a] != [c.item_id for c in b]:
        return [f"items {[c.item_id for c in a]} != {[c.item_id for c in b]}"]
    out: list[str] = []
    for x, y in zip(a, b, strict=True):
        if not math.isclose(x.score, y.score, rel_tol=0.0, abs_tol=1e-9):
            out.append(f"{x.item_id}: score {x.score!r} != {y.score!r}")
        ex = [(e.source, e.score, e.because) for e in x.evidence]
        ey = [(e.source, e.score, e.because) for e in y.evidence]
        if [(s, w) for s, _, w in ex] != [(s, w) for s, _, w in ey] or not all(
                math.isclose(p[1], q[1], rel_tol=0.0, abs_tol=1e-9)
                for p, q in zip(ex, ey, strict=True)):
            out.append(f"{x.item_id}: evidence {ex} != {ey}")
        if type(x) is not type(y):
            out.append(f"{x.item_id}: {type(x)} != {type(y)}")
    return out


@needs_core
def test_blend_twin_answers_what_the_python_blend_answers() -> None:
    assert CORE is not None
    rnd = random.Random(14)
    problems: list[str] = []
    filled = evidence = 0
    for n in range(BLEND_CASES):
        args, kwargs = blend_case(rnd)
        want = blend(*args, **kwargs)
        got = CORE.blend(*args, **kwargs)
        diff = _differences(got, want)
        if diff and len(problems) < 10:
            problems.append(f"case {n}: {diff[:3]}")
        filled += any(c.evidence and c.evidence[0].source != "session" for c in want)
        evidence += sum(len(c.evidence) > 1 for c in want)
    assert problems == []
    # the cases reached the fills and the merge of several sources (else this proved little)
    assert filled > BLEND_CASES // 4 and evidence > BLEND_CASES // 4, (filled, evidence)


@needs_core
def test_twins_do_not_mutate_their_input() -> None:
    assert CORE is not None
    rnd = random.Random(3)
    for _ in range(200):
        args, kwargs = blend_case(rnd)
        before = repr((args, kwargs))
        prior = CORE.blend(*args, **kwargs)
        assert repr((args, kwargs)) == before
        session, similar, _bought, fills, params = args
        recent = similar_recent_case(rnd, session, similar)
        before = repr((prior, args, recent))
        CORE.features(prior, session, similar, fills, params,
                      learned_blend.LearnedBlendConfig(), kwargs["exclude"],
                      similar_recent=recent)
        assert repr((prior, args, recent)) == before
        case = rerank_case(rnd)
        before = repr(case)
        CORE.rerank(*case)
        assert repr(case) == before


@needs_core
def test_blend_twin_names_a_bad_field() -> None:
    assert CORE is not None
    session = {"events": [["a", "view", 1]], "purchased": []}
    with pytest.raises(TypeError, match="item id must be a str, got 7"):
        CORE.blend(session, {"a": ((7, 1.0),)}, {}, [], BlendParams(), k=3)


def _meta(rnd: random.Random) -> dict[str, Any] | None:
    """An item's metadata, with the odd values the rules must read as Python reads them."""
    if rnd.random() < 0.1:
        return rnd.choice((None, {}))
    m: dict[str, Any] = {}
    for name, values in (
            ("category", ("c0", "c1", "c2", 7)), ("brand", ("b0", "b1", None)),
            ("stock", (0, -1, 5, True, False, "0", None)), ("deleted", (True, False, 1)),
            ("first_seen_ms", (NOW - 3 * DAY_MS, NOW - 20 * DAY_MS, NOW + 5, True, "x"))):
        if rnd.random() < 0.6:
            m[name] = rnd.choice(values)
    return m


def rerank_case(rnd: random.Random) -> tuple[list[Scored], dict[str, Any], Rules, RerankInput]:
    """One call of :func:`serving.rules.rerank`."""
    ids = rnd.sample(ITEMS, rnd.randrange(0, 45))
    score = rnd.uniform(0.5, 3.0)
    cands: list[Scored] = []
    for item in ids:
        cands.append(Scored(item, score, [Evidence("session", score, "x")]))
        score -= rnd.choice((0.0, 0.01, 0.1, rnd.random() / 3))
    if cands and rnd.random() < 0.05:
        cands.append(cands[0])  # a duplicate candidate
    meta = {i: _meta(rnd) for i in ITEMS if rnd.random() < 0.9}
    pick = rnd.sample
    rules = Rules(
        out_of_stock=rnd.random() < 0.8, already_purchased=rnd.random() < 0.8,
        diversity=rnd.choice(("mmr", "mmr", "caps", "none")),
        mmr_lambda=rnd.choice((0.0, 0.5, 0.7, 1.0)),
        max_per_category=rnd.choice((1, 2, 4)), max_per_brand=rnd.choice((1, 3)),
        diversity_placements=rnd.choice((("homepage", "cart"), ("cart",))),
        promoted=frozenset(pick(ITEMS, rnd.choice((0, 3, 10)))),
        promoted_factor=rnd.choice((1.0, 1.5, 1.2345678, 2.0, 0.333333333)),
        new_arrival_days=rnd.choice((0.0, 14.0, 2.5)),
        new_arrival_factor=rnd.choice((1.0, 1.2, 1.0000001)),
        rotation_after=rnd.choice((1, 3)),
        rotation_penalty=rnd.choice((0.7, 0.33, 1.0, 0.0, 0.999, 0.1)),  # 0.1**6: "1e-06"
        sponsored=tuple(pick(ITEMS, rnd.choice((0, 0, 1, 3)))),
        sponsored_slots=tuple(pick((1, 2, 3, 5, 9), rnd.choice((1, 2)))),
        sponsored_placements=rnd.choice((("homepage",), ("cart",))))
    req = RerankInput(
        k=rnd.choice((1, 2, 4, 8, 20)), placement=rnd.choice(("homepage", "cart", "similar")),
        now_ms=NOW, exclude=frozenset(pick(ITEMS, rnd.choice((0, 2, 5)))),
        purchased=pick(ITEMS, rnd.choice((0, 2))),
        shown={i: rnd.randrange(0, 9) for i in pick(ITEMS, rnd.choice((0, 10, 30)))},
        interacted=set(pick(ITEMS, rnd.choice((0, 5)))))
    return cands, meta, rules, req


def _ranked_differences(a: Sequence[Ranked], b: Sequence[Ranked]) -> list[str]:
    if [r.item_id for r in a] != [r.item_id for r in b]:
        return [f"items {[r.item_id for r in a]} != {[r.item_id for r in b]}"]
    out: list[str] = []
    for x, y in zip(a, b, strict=True):
        if not math.isclose(x.score, y.score, rel_tol=0.0, abs_tol=1e-9):
            out.append(f"{x.item_id}: score {x.score!r} != {y.score!r}")
        if (x.notes, x.rank_before, x.sponsored) != (y.notes, y.rank_before, y.sponsored):
            out.append(f"{x.item_id}: {(x.notes, x.rank_before, x.sponsored)} != "
                       f"{(y.notes, y.rank_before, y.sponsored)}")
        out += _differences([x.candidate], [y.candidate])
        if type(x) is not type(y):
            out.append(f"{x.item_id}: {type(x)} != {type(y)}")
    return out


@needs_core
def test_rules_twin_answers_what_the_python_rules_answer() -> None:
    assert CORE is not None
    rnd = random.Random(41)
    problems: list[str] = []
    notes: dict[str, int] = {}
    for n in range(RERANK_CASES):
        cands, meta, rules, req = rerank_case(rnd)
        want = rerank(cands, meta, rules, req)
        got = CORE.rerank(cands, meta, rules, req)
        diff = _ranked_differences(got, want)
        if diff and len(problems) < 10:
            problems.append(f"case {n}: {diff[:3]}")
        for r in want:
            for note in r.notes:
                kind = note.split(" ")[0]
                notes[kind] = notes.get(kind, 0) + 1
    assert problems == []
    # every rule wrote notes in some cases (else this proved little)
    for kind in ("promoted", "new", "shown", "moved", "sponsored"):
        assert notes.get(kind, 0) > 200, notes


def similar_recent_case(rnd: random.Random, session: dict[str, Any] | None,
                        similar: dict[str, Any]) -> Mapping[str, Any] | None:
    """The recent items' second similar-items lists (``simr*``): absent (``None`` or empty,
    the list off), or a list for most session items, often sharing items with the first list
    (the same pairs at a shorter half-life: a reordered or shortened copy), sometimes empty;
    sometimes a read-only mapping (the twin reads it through ``.get``)."""
    kind = rnd.random()
    if session is None or kind < 0.15:
        return None if kind < 0.08 else {}
    lists: dict[str, Any] = {}
    for item in sorted({str(e[0]) for e in session["events"]}):
        if rnd.random() < 0.15:
            continue
        first = list(similar.get(item, ()))
        if first and rnd.random() < 0.6:
            kept = rnd.sample(first, rnd.randrange(0, len(first) + 1))
            lists[item] = tuple(sorted(((i, rnd.choice((w, w / 2, *SHARES))) for i, w in kept),
                                       key=lambda e: -e[1]))
        else:
            lists[item] = _shares(rnd, rnd.randrange(0, 25))
    return MappingProxyType(lists) if rnd.random() < 0.2 else lists


def _warm_model(rnd: random.Random) -> learned_blend.BlendModel:
    """Weights over the features, some zero, some equal (learned scores tie: the hand-tuned
    order breaks the tie), some of sizes that make the terms' sum round."""
    weights = {name: rnd.choice((0.0, 0.5, 1e16, rnd.uniform(-1, 1)))
               for name in learned_blend.FEATURES}
    return learned_blend.BlendModel(weights, events=10_000, labelled=10_000, prior_gain=0.5,
                                    learned_gain=0.6)


@needs_core
def test_a_prior_score_too_small_to_divide_sits_at_the_floor_on_both_sides() -> None:
    """A candidate whose score over the best one's underflows to 0.0 (long logs at short
    half-lives) gets the floor's ``prior`` (0.0) from Python, as from the twin's ln(0) = -inf,
    instead of a math domain error."""
    assert CORE is not None
    prior = [Scored("a", 1e300, []), Scored("b", 1e-300, [])]
    args: tuple[Any, ...] = (prior, None, {}, [], BlendParams(),
                             learned_blend.LearnedBlendConfig(), ())
    want = learned_blend._features(*args)
    assert want[1].features["prior"] == 0.0 and want[0].features["prior"] == 1.0
    assert [dict(c.features) for c in CORE.features(*args)] == [dict(c.features) for c in want]


@needs_core
def test_learned_twins_answer_what_the_python_learned_blend_answers() -> None:
    """The learned blend's candidates and features (the warm homepage's step after the blend):
    the same candidates in the same order, each feature dict with the same keys in the same
    order (the learned score sums its terms in that order) and the same values; their learned
    order the same; and the warm blend served through each side's kernels the same answer."""
    assert CORE is not None
    rnd = random.Random(23)
    second = random.Random(29)  # the second lists drawn apart: the other draws stay as before
    ages = random.Random(37)  # so are the age features' switch and the request time
    problems: list[str] = []
    fill_added = with_simr = with_ages = 0
    for n in range(FEATURES_CASES):
        (session, similar, bought, fills, params), kwargs = blend_case(rnd)
        recent = similar_recent_case(second, session, similar)
        cfg = learned_blend.LearnedBlendConfig(pool=rnd.choice((5, 50)),
                                               fill_pool=rnd.choice((1, 3, 20)),
                                               ages=ages.random() < 0.7)
        # the events' times are 0..11 ms: a clock behind them, within them, hours or days on
        now = ages.choice((None, -1, 6, ages.randrange(0, 3 * 86_400_000)))
        prior = blend(session, similar, bought, fills, params, **{**kwargs, "k": cfg.pool})
        feature_args = (prior, session, similar, fills, params, cfg, kwargs["exclude"])
        want = learned_blend._features(*feature_args, similar_recent=recent, now=now)
        got = CORE.features(*feature_args, similar_recent=recent, now=now)
        a = [(c.item_id, c.prior_rank, list(c.features.items())) for c in got]
        b = [(c.item_id, c.prior_rank, list(c.features.items())) for c in want]
        if a != b and len(problems) < 10:
            problems.append(f"features case {n}: {a[:3]} != {b[:3]}")
        fill_added += len(want) > len(prior)
        with_simr += any(k.startswith("simr") for c in want for k in c.features)
        with_ages += any(k in AGE_FEATURES for c in want for k in c.features)
        model = _warm_model(rnd)
        order = [c.item_id for c in learned_blend.learned_order(model, want)]
        if [c.item_id for c in CORE.learned_order(model, want)] != order and len(problems) < 10:
            problems.append(f"order case {n}: {order[:5]}")
        served = [learned_blend.serve(model, cfg, session, similar, bought, fills, params,
                                      **kwargs, similar_recent=recent, now=now,
                                      blend_fn=k.blend,
                                      features_fn=k.features, order_fn=k.learned_order)
                  for k in (CORE, native.python())]
        diff = _differences(*served)
        if diff and len(problems) < 10:
            problems.append(f"serve case {n}: {diff[:3]}")
    assert problems == []
    assert fill_added > FEATURES_CASES // 4, fill_added
    assert with_simr > FEATURES_CASES // 3, with_simr  # the second lists were exercised
    assert with_ages > FEATURES_CASES // 3, with_ages  # and the age features


@needs_core
def test_without_second_lists_the_twin_gives_the_candidates_of_before() -> None:
    """``similar_recent`` absent, ``None`` or empty: no ``simr*`` feature on either side, the
    same candidates as a call without it (the second list off changes nothing)."""
    assert CORE is not None
    rnd = random.Random(31)
    for _ in range(300):
        (session, similar, bought, fills, params), kwargs = blend_case(rnd)
        cfg = learned_blend.LearnedBlendConfig()
        prior = blend(session, similar, bought, fills, params, **{**kwargs, "k": cfg.pool})
        args = (prior, session, similar, fills, params, cfg, kwargs["exclude"])
        plain = [(c.item_id, dict(c.features)) for c in learned_blend._features(*args)]
        nothing: tuple[dict[str, Any] | None, ...] = (None, {})
        for recent in nothing:
            for fn in (CORE.features, learned_blend._features):
                got = [(c.item_id, dict(c.features)) for c in fn(*args, similar_recent=recent)]
                assert got == plain
        assert [(c.item_id, dict(c.features)) for c in CORE.features(*args)] == plain
        assert not any(k.startswith("simr") for _, f in plain for k in f)


def test_the_python_path_when_off_or_not_built(caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="serving")
    assert native.load(False).name == native.PYTHON
    assert "RECS_NATIVE=0" in caplog.text
    if CORE is not None:  # a module built from older sources is not loaded
        from serving import _core
        monkeypatch.setattr(_core, "VERSION", "0.1.0")
        assert native.compiled() is None
        assert "built from older sources version=0.1.0" in caplog.text
        monkeypatch.undo()
    monkeypatch.setattr(native, "compiled", lambda: None)
    assert native.load(True).blend is blend
    assert native.load(True).rerank is rerank
    assert "compiled core not built" in caplog.text


_ids = st.sampled_from(ITEMS[:12])
_lists = st.dictionaries(_ids, st.lists(st.tuples(_ids, st.sampled_from(SHARES)), max_size=8)
                         .map(lambda es: tuple(sorted(es, key=lambda e: -e[1]))), max_size=8)


@needs_core
@settings(max_examples=300, deadline=None)
@given(events=st.lists(_ids, max_size=10), similar=_lists, recent=_lists,
       fills=st.lists(st.lists(_ids, max_size=6), max_size=2))
def test_the_twin_reads_the_second_lists_as_the_operator_for_any_input(
        events: list[str], similar: dict[str, Any], recent: dict[str, Any],
        fills: list[list[str]]) -> None:
    """Property: over any session of a small catalogue, any first and second lists (shared
    items, repeats within a list, lists of items outside the session) and any fills, the
    twin's candidates and features equal the operator's, ``simr*`` included; and the second
    lists give ``simr*`` exactly where the same lists as first lists would give ``sim*``."""
    assert CORE is not None
    session = {"events": [[i, "view", t] for t, i in enumerate(events)], "purchased": []}
    fill_lists = [Fill("trending", "global", [[i, -float(n)] for n, i in enumerate(f)])
                  for f in fills]
    params, cfg = BlendParams(), learned_blend.LearnedBlendConfig(pool=20, fill_pool=5)
    prior = blend(session, similar, {}, fill_lists, params, k=cfg.pool)
    args = (prior, session, similar, fill_lists, params, cfg, ())
    want = learned_blend._features(*args, similar_recent=recent)
    got = CORE.features(*args, similar_recent=recent)
    assert [(c.item_id, c.prior_rank, list(c.features.items())) for c in got] == \
        [(c.item_id, c.prior_rank, list(c.features.items())) for c in want]
    as_first = learned_blend._features(prior, session, recent, fill_lists, params, cfg, ())
    by_id = {c.item_id: c.features for c in as_first}
    for c in want:  # same candidates (the prior does not depend on the second lists)
        simr = {k[4:]: v for k, v in c.features.items() if k.startswith("simr")}
        first = {k[3:]: v for k, v in by_id[c.item_id].items() if k.startswith("sim")
                 and not k.startswith("simr")}
        assert simr == first


_times = st.integers(0, 5 * 86_400_000) | st.floats(0, 5 * 86_400_000, allow_nan=False)


@needs_core
@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.tuples(_ids, _times), max_size=10), similar=_lists, recent=_lists,
       now=st.integers(-86_400_000, 10 * 86_400_000), repeats=st.booleans())
def test_the_twin_computes_the_age_features_as_the_operator_for_any_input(
        events: list[tuple[str, float]], similar: dict[str, Any], recent: dict[str, Any],
        now: int, repeats: bool) -> None:
    """Property: with the age features on, over any session (its events' times in any order,
    ints or floats, after or before the request), any lists and any request time, the twin's
    candidates and features equal the operator's: the same keys in the same order, the same
    floating-point values."""
    assert CORE is not None
    session = {"events": [[i, "view", t] for i, t in events], "purchased": []}
    fill_lists = [Fill("trending", "global", [[i, -float(n)] for n, i in enumerate(ITEMS[:12])])]
    params = BlendParams(allow_repeats=repeats)
    cfg = learned_blend.LearnedBlendConfig(pool=20, fill_pool=12, ages=True)
    prior = blend(session, similar, {}, fill_lists, params, k=cfg.pool)
    args = (prior, session, similar, fill_lists, params, cfg, ())
    want = learned_blend._features(*args, similar_recent=recent, now=now)
    got = CORE.features(*args, similar_recent=recent, now=now)
    assert [(c.item_id, c.prior_rank, list(c.features.items())) for c in got] == \
        [(c.item_id, c.prior_rank, list(c.features.items())) for c in want]
