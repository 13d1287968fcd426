"""The compiled core (``native/``, :mod:`serving.native`) answers what the Python operators
answer: the same generated inputs through both, every output equal.

Inputs are drawn from a seeded generator over small alphabets so that they collide the way
real traffic does: recent items repeat in a session, neighbour lists share items, shares tie
(ties are broken by item id), lists are empty or missing, the recent items are banned or allowed
back, weights are zero, the learned retrieval is gated off, fills run out, context fills name
their own source and scope. Outputs are compared field by field: items, order, scores (within
1e-9; they are in fact bit-identical, the same operations in the same order), and every piece
of evidence (source, score, ``because``) in order. The whole server on each path is compared
by ``test_answer_equality.py``.

Skipped, saying so, when the compiled core was not built (``make install`` builds it with
cargo; without cargo the server runs the Python path).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from operators.blend import BlendParams, Fill, Scored, blend, shares, vector_shares
from serving import native

CORE = native.compiled()
needs_core = pytest.mark.skipif(CORE is None, reason="compiled core not built (make install "
                                                      "builds it with cargo: native/build.sh)")

ITEMS = [f"i{n}" for n in range(60)]
SHARES = (1.0, 0.5, 0.25, 0.125)  # a few exact values: ties between votes are common
BLEND_CASES = 12_000


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
def test_blend_twin_does_not_mutate_its_input() -> None:
    assert CORE is not None
    rnd = random.Random(3)
    for _ in range(200):
        args, kwargs = blend_case(rnd)
        before = repr((args, kwargs))
        CORE.blend(*args, **kwargs)
        assert repr((args, kwargs)) == before


@needs_core
def test_blend_twin_names_a_bad_field() -> None:
    assert CORE is not None
    session = {"events": [["a", "view", 1]], "purchased": []}
    with pytest.raises(TypeError, match="item id must be a str, got 7"):
        CORE.blend(session, {"a": ((7, 1.0),)}, {}, [], BlendParams(), k=3)


def test_the_python_path_when_off_or_not_built(caplog: pytest.LogCaptureFixture,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger="serving")
    assert native.load(False).name == native.PYTHON
    assert "RECS_NATIVE=0" in caplog.text
    monkeypatch.setattr(native, "compiled", lambda: None)
    assert native.load(True).blend is blend
    assert "compiled core not built" in caplog.text
