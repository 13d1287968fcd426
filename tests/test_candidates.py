"""Session candidates (``operators/candidates.py``): bans, tie order, recency weighting.

The property test recomputes the documented score,
``Σ_r recency_decay**r · exp(s(a->b) - s(a->top))`` over the last ``recent`` distinct items,
for random sessions and neighbour lists, and checks the contract: no banned item (purchased,
recent unless ``allow_repeats``, ``exclude``), at most ``k``,
ordered by score then id, ``because`` naming the strongest contributor.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.candidates import Candidate, recent_items, session_candidates

ITEMS = tuple(f"i{n}" for n in range(10))


def session_of(*items: str, purchased: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"events": [[i, "view", t] for t, i in enumerate(items)],
            "purchased": list(purchased)}


def ids(cands: list[Candidate]) -> list[str]:
    return [c.item_id for c in cands]


def test_excludes_purchased_recent_and_exclude() -> None:
    session = session_of("a", "b", purchased=("p",))
    neighbours = {"b": [["a", 9.0], ["p", 8.0], ["x", 7.0], ["y", 6.0], ["z", 5.0]]}
    assert ids(session_candidates(session, neighbours)) == ["x", "y", "z"]
    assert ids(session_candidates(session, neighbours, exclude={"y"})) == ["x", "z"]
    assert ids(session_candidates(session, neighbours, allow_repeats=True)) == [
        "a", "x", "y", "z"]


def test_only_the_last_recent_items_are_banned_and_voting() -> None:
    session = session_of("old", "a", "b", "c")
    neighbours = {"c": [["old", 1.0]], "old": [["n", 1.0]]}
    assert recent_items(session, 3) == ["c", "b", "a"]
    # "old" is outside the 3 most recent distinct items: it is a candidate, and does not vote
    assert ids(session_candidates(session, neighbours, recent=3)) == ["old"]
    assert ids(session_candidates(session, neighbours, recent=4)) == ["n"]


def test_recent_items_are_distinct_newest_first() -> None:
    assert recent_items(session_of("a", "b", "a", "c", "c"), 5) == ["c", "a", "b"]
    assert recent_items({}, 5) == []


def test_tie_order_is_by_item_id_whatever_the_input_order() -> None:
    session = session_of("a", "b")
    one = {"b": [["y", 1.0], ["x", 1.0]], "a": [["w", 3.0], ["v", 3.0]]}
    two = {"a": [["v", 3.0], ["w", 3.0]], "b": [["x", 1.0], ["y", 1.0]]}
    first, second = session_candidates(session, one), session_candidates(session, two)
    assert ids(first) == ids(second) == ["x", "y", "v", "w"]
    assert first == second


def test_equal_votes_credit_the_most_recent_item() -> None:
    session = session_of("a", "b")
    cands = session_candidates(session, {"a": [["x", 1.0]], "b": [["x", 1.0]]},
                               recency_decay=1.0)
    assert cands == [Candidate("x", 2.0, "b")]


def test_recency_weighting() -> None:
    session = session_of("a", "b", "c")  # c is rank 0, b rank 1, a rank 2
    neighbours = {"a": [["x", 5.0]], "b": [["y", 5.0]], "c": [["z", 5.0]]}
    got = session_candidates(session, neighbours, recency_decay=0.5)
    assert [(c.item_id, c.score, c.because) for c in got] == [
        ("z", 1.0, "c"), ("y", 0.5, "b"), ("x", 0.25, "a")]
    # votes add up: an item near two recent items beats one near the newest alone
    got = session_candidates(session, {"c": [["z", 1.0]], "b": [["y", 1.0]],
                                       "a": [["y", 1.0]]}, recency_decay=0.8)
    assert ids(got) == ["y", "z"] and got[0].score == pytest.approx(0.8 + 0.64)


def test_scores_normalised_per_source_list() -> None:
    # log scores: a's list is e^10 times stronger in absolute terms, yet normalised per list
    session = session_of("a", "b")
    got = session_candidates(session, {"a": [["x", 20.0]], "b": [["y", 10.0], ["w", 9.0]]},
                             recency_decay=0.9)
    assert [(c.item_id, round(c.score, 9)) for c in got] == [
        ("y", 1.0), ("x", 0.9), ("w", round(math.exp(-1.0), 9))]


def test_k_limits_and_empty_inputs() -> None:
    neighbours = {"a": [[f"n{k}", float(-k)] for k in range(10)]}
    assert len(session_candidates(session_of("a"), neighbours, k=3)) == 3
    assert session_candidates(session_of("a"), neighbours, k=0) == []
    assert session_candidates({}, neighbours) == []
    assert session_candidates(session_of("a"), {"a": []}) == []


@pytest.mark.parametrize(("neighbours", "decay"), [
    ({"b": [["c", 1.0]], "a": [["d", 1.0]]}, 0.0),
    ({"b": [["c", 0.0], ["d", -1000.0]]}, 0.7),
], ids=["recency_decay_0", "exp_underflow"])
def test_zero_vote_does_not_crash(neighbours: dict[str, list[list[Any]]], decay: float) -> None:
    got = session_candidates(session_of("a", "b"), neighbours, recency_decay=decay)
    assert "c" in ids(got)


def test_recent_zero_means_no_recent_items() -> None:
    assert recent_items(session_of("a", "b"), 0) == []


# -- property ---------------------------------------------------------------------------------

@st.composite
def neighbour_lists(draw: st.DrawFn) -> dict[str, list[list[Any]]]:
    """Lists shaped like ``neighbours.render``: distinct items, log scores descending."""
    out = {}
    for src in draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=6)):
        dsts = draw(st.lists(st.sampled_from(ITEMS), unique=True, max_size=6))
        scores = sorted(draw(st.lists(st.floats(-30.0, 30.0), min_size=len(dsts),
                                      max_size=len(dsts))), reverse=True)
        out[src] = [[d, s] for d, s in zip(dsts, scores, strict=True) if d != src]
    return out


def naive(session: dict[str, Any], neighbours: dict[str, list[list[Any]]], *, recent: int,
          recency_decay: float, exclude: set[str], allow_repeats: bool
          ) -> tuple[dict[str, float], set[str]]:
    history: list[str] = []
    for item, _, _ in reversed(session["events"]):
        if item not in history and len(history) < recent:
            history.append(item)
    banned = exclude | set(session["purchased"]) | (set() if allow_repeats else set(history))
    scores: dict[str, float] = {}
    for rank, src in enumerate(history):
        lst = neighbours.get(src, [])
        for item, s in lst:
            if item not in banned:
                scores[item] = scores.get(item, 0.0) + recency_decay**rank * math.exp(
                    s - lst[0][1])
    return scores, banned


@settings(max_examples=150, deadline=None)
@given(events=st.lists(st.sampled_from(ITEMS), max_size=8),
       purchased=st.lists(st.sampled_from(ITEMS), max_size=3, unique=True),
       neighbours=neighbour_lists(),
       exclude=st.sets(st.sampled_from(ITEMS), max_size=3),
       k=st.integers(0, 6), recent=st.integers(1, 6),
       recency_decay=st.floats(0.05, 1.0), allow_repeats=st.booleans())
def test_never_banned_never_more_than_k_and_scored_as_documented(
        events: list[str], purchased: list[str], neighbours: dict[str, list[list[Any]]],
        exclude: set[str], k: int, recent: int, recency_decay: float,
        allow_repeats: bool) -> None:
    session = session_of(*events, purchased=tuple(purchased))
    got = session_candidates(session, neighbours, k=k, recent=recent,
                             recency_decay=recency_decay, exclude=exclude,
                             allow_repeats=allow_repeats)
    want, banned = naive(session, neighbours, recent=recent, recency_decay=recency_decay,
                         exclude=exclude, allow_repeats=allow_repeats)
    assert len(got) <= k
    assert not banned & set(ids(got))
    assert len(set(ids(got))) == len(got)
    assert len(got) == min(k, len(want))
    history = recent_items(session, recent)
    for c in got:
        assert c.score == pytest.approx(want[c.item_id], rel=1e-9)
        # because = the recent item with the largest vote (the most recent one among equals)
        votes = [(recency_decay**r * math.exp(s - neighbours[src][0][1]), -r, src)
                 for r, src in enumerate(history) for i, s in neighbours.get(src, [])
                 if i == c.item_id]
        assert c.because == max(votes)[2]
    keys = [(-c.score, c.item_id) for c in got]
    assert keys == sorted(keys)
    if got:  # nothing left out scores clearly better than the last one kept
        assert all(s <= got[-1].score * (1 + 1e-9) for i, s in want.items()
                   if i not in ids(got))
