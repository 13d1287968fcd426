"""Baselines against brute-force recomputations on small generated logs (seeded)."""

from __future__ import annotations

import heapq
import itertools
import math
import random
from fractions import Fraction

import pytest

from recs.evaluation.api import Query
from recs.evaluation.baselines import (
    AssociationRules,
    CoVisitation,
    GrowingTop,
    Popularity,
    RecentPopularity,
    SequentialRules,
)
from recs.evaluation.sknn import VSKNN
from schemas.events import Interaction


def make_log(seed: int, sessions: int = 60, items: int = 25) -> list[Interaction]:
    """Sessions of 1-8 clicks on skewed items, interleaved in time; repeats happen."""
    rng = random.Random(seed)
    weights = [1.0 / (i + 1) for i in range(items)]
    events = []
    for s in range(sessions):
        start = rng.randrange(0, 100_000)
        for j in range(rng.randint(1, 8)):
            item = f"i{rng.choices(range(items), weights)[0]}"
            events.append(Interaction(f"e{s}-{j}", "view", f"u{s}", f"s{s}",
                                      start + 10 * j, item_id=item))
    return sorted(events, key=lambda e: e.ts)


def by_session(events: list[Interaction]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in events:
        assert e.item_id is not None
        out.setdefault(e.session_id, []).append(e.item_id)
    return out


def learn_all(method: object, events: list[Interaction]) -> None:
    for e in events:
        method.learn(e)  # type: ignore[attr-defined]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_association_rules_count_every_pair_of_a_session(seed: int) -> None:
    events = make_log(seed)
    ar = AssociationRules()
    learn_all(ar, events)
    naive: dict[str, dict[str, float]] = {}
    for items in by_session(events).values():
        for j, b in enumerate(items):
            for a in items[:j]:
                naive.setdefault(a, {}).setdefault(b, 0.0)
                naive.setdefault(b, {}).setdefault(a, 0.0)
                naive[a][b] += 1
                naive[b][a] += 1
    assert ar.rules == naive
    for src, row in naive.items():
        best = ar.best(src)
        assert len(best) == min(20, len(row))
        scores = [row[i] for i in best]
        assert scores == sorted(scores, reverse=True)
        assert min(scores) >= max((v for i, v in row.items() if i not in best), default=0)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sequential_rules_weight_one_over_gap_within_steps(seed: int) -> None:
    events = make_log(seed, sessions=40)
    sr = SequentialRules(steps=3)
    learn_all(sr, events)
    naive: dict[str, dict[str, float]] = {}
    for items in by_session(events).values():
        for j, b in enumerate(items):
            for gap in range(1, min(3, j) + 1):
                a = items[j - gap]
                naive.setdefault(a, {})
                naive[a][b] = naive[a].get(b, 0.0) + 1.0 / gap
    assert sr.rules.keys() == naive.keys()
    for src, row in naive.items():
        assert sr.rules[src] == pytest.approx(row)


def test_rules_recommend_from_the_last_item_and_respect_exclusions() -> None:
    sr = SequentialRules()
    for t, item in enumerate(["a", "b", "a", "c"]):
        sr.learn(Interaction(f"e{t}", "view", "u", "s", t, item_id=item))
    q = Query("v", "s2", 10, ("x", "a"))
    # a->c: 1 (gap 1) + 1/3 (gap 3); a->b: 1; a->a: 1/2 (gap 2)
    assert sr.recommend(q, 5) == ["c", "b", "a"]
    assert sr.recommend(Query("v", "s2", 10, ("x", "a"), frozenset({"b"})), 5) == ["c", "a"]
    assert sr.recommend(Query("v", "s2", 10, ()), 5) == []


@pytest.mark.parametrize("seed", [4, 5])
def test_covisitation_matches_the_iknn_formula(seed: int) -> None:
    events = make_log(seed)
    cv = CoVisitation(n_sims=1000)
    learn_all(cv, events)
    support: dict[str, int] = {}
    co: dict[tuple[str, str], int] = {}
    for items in by_session(events).values():
        for a in items:
            support[a] = support.get(a, 0) + 1
        for a in set(items):
            for b in set(items):
                if a != b:
                    co[(a, b)] = co.get((a, b), 0) + items.count(a) * items.count(b)
    for src in support:
        got = dict(cv.similar(src))
        want = {b: c / (math.sqrt(support[src] + 20) * math.sqrt(support[b] + 20))
                for (a, b), c in co.items() if a == src}
        assert got == pytest.approx(want)


def test_growing_top_matches_a_full_sort() -> None:
    rng = random.Random(7)
    top = GrowingTop(m=5)
    scores: dict[str, float] = {}
    first: dict[str, int] = {}
    for _ in range(2000):
        item = f"i{rng.randrange(40)}"
        first.setdefault(item, len(first))
        scores[item] = scores.get(item, 0.0) + rng.choice([0.0, 1.0, 2.5])
        top.bump(item, scores[item])
        brute = sorted(scores, key=lambda i: (-scores[i], first[i]))
        assert top.ranked(5) == brute[:5]
        assert top.ranked(3, {brute[0]}) == brute[1:4]
        assert top.ranked(12) == brute[:12]  # beyond m: falls back to all scores


def test_popularity_and_recent_popularity() -> None:
    pop, recent = Popularity(), RecentPopularity(half_life_s=1.0)
    log = [("a", 0), ("a", 1_000), ("a", 2_000), ("b", 50_000)]
    for t, (item, ts) in enumerate(log):
        e = Interaction(f"e{t}", "view", "u", "s", ts, item_id=item)
        pop.learn(e)
        recent.learn(e)
    q = Query("u", "s", 60_000, ())
    assert pop.recommend(q, 5) == ["a", "b"]
    assert recent.recommend(q, 5) == ["b", "a"]  # a's three clicks are 48 half-lives old
    impression = Interaction("imp", "impression", "u", "s", 1, item_ids=("z",))
    pop.learn(impression)
    assert pop.recommend(q, 5) == ["a", "b"]


def brute_vsknn(events: list[Interaction], query: Query, k: int = 100,
                sample_size: int = 1000) -> dict[str, float]:
    """session-rec's VMContextKNN, literally: all sessions, most recent sample, no shortcuts."""
    items: dict[str, set[str]] = {}
    last: dict[str, int] = {}
    for n, e in enumerate(events):
        assert e.item_id is not None
        items.setdefault(e.session_id, set()).add(e.item_id)
        last[e.session_id] = n
    history = query.history
    relevant = {s for s, its in items.items() if its & set(history) and s != query.session_id}
    sample = heapq.nlargest(sample_size, relevant, key=last.__getitem__)
    # exact fractions: with floats, equal similarities can differ in the last bit
    pos = {item: Fraction(p, len(history)) for p, item in enumerate(history, 1)}
    sims = [(sum(pos[i] for i in items[s] & set(history)) / len(pos), last[s], s)
            for s in sample]
    neighbours = heapq.nlargest(k, sims)
    scores: dict[str, float] = {}
    for sim, _, s in neighbours:
        step = next(st for st, i in enumerate(reversed(history), 1) if i in items[s])
        for item in items[s]:
            scores[item] = scores.get(item, 0.0) + float(sim) / step
    return scores


@pytest.mark.parametrize("seed", [11, 12, 13])
@pytest.mark.parametrize(("k", "sample"), [(100, 1000), (5, 8), (3, 4)])
def test_vsknn_equals_a_literal_reimplementation(seed: int, k: int, sample: int) -> None:
    events = make_log(seed, sessions=80, items=15)
    knn = VSKNN(k=k, sample_size=sample)
    learned: list[Interaction] = []
    histories: dict[str, list[str]] = {}
    for e in events:
        assert e.item_id is not None
        hist = histories.setdefault(e.session_id, [])
        if hist:
            q = Query(e.user_id, e.session_id, e.ts, tuple(hist))
            want = brute_vsknn(learned, q, k, sample)
            assert knn.scores(q) == pytest.approx(want)
            ranked = knn.recommend(q, 50)
            assert len(ranked) == min(50, len(want))
            assert all(want[a] >= want[b] - 1e-9 for a, b in itertools.pairwise(ranked))
        knn.learn(e)
        learned.append(e)
        hist.append(e.item_id)
