"""Service-free pieces of the stream shells: pair grouping, checkpoint discovery, loader batches."""

from __future__ import annotations

import random
from pathlib import Path

from operators import neighbours
from operators.config import NeighbourConfig
from operators.session import Pair
from state.records import Update
from state.store import MemoryStore
from stream.functions import group_pairs
from stream.job import latest_checkpoint
from stream.loader import LoaderStats, apply_batch


def test_grouped_pairs_give_the_same_neighbours_as_one_by_one() -> None:
    rng = random.Random(3)
    items = [f"i{n}" for n in range(30)]
    pairs = [Pair(rng.choice(["similar", "bought"]), rng.choice(items[:5]), rng.choice(items),
                  rng.random() + 0.1, 1_700_000_000_000 + n) for n in range(400)]
    cfg = NeighbourConfig(capacity=8, top_k=5)
    grouped: dict[tuple[str, str], neighbours.NeighbourState] = {}
    # the session operator emits the pairs of one event together; group per "event" of 7 pairs
    for start in range(0, len(pairs), 7):
        chunk = pairs[start:start + 7]
        for row in group_pairs([Pair(p.relation, p.src, p.dst, p.weight, chunk[0].ts)
                                for p in chunk]):
            state = grouped.get((row.relation, row.src))
            for dst, w in zip(row.dsts, row.weights, strict=True):
                state = neighbours.step(state, Pair(row.relation, row.src, dst, w, row.ts), cfg)
            assert state is not None
            grouped[(row.relation, row.src)] = state
    # same timestamps within an event in both runs: compare the scores
    expected: dict[tuple[str, str], neighbours.NeighbourState] = {}
    for start in range(0, len(pairs), 7):
        chunk = pairs[start:start + 7]
        for p in chunk:
            key = (p.relation, p.src)
            expected[key] = neighbours.step(expected.get(key), Pair(
                p.relation, p.src, p.dst, p.weight, chunk[0].ts), cfg)
    assert {k: v.scores for k, v in grouped.items()} == {k: v.scores for k, v in expected.items()}


def test_latest_checkpoint_picks_the_newest_completed(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    for job, n, done in [("a", 3, True), ("a", 12, True), ("b", 40, False), ("b", 7, True)]:
        chk = tmp_path / job / f"chk-{n}"
        chk.mkdir(parents=True)
        if done:
            (chk / "_metadata").write_bytes(b"x")
    assert latest_checkpoint(tmp_path) == tmp_path / "a" / "chk-12"


def test_loader_batch_keeps_newest_per_key_and_skips_malformed() -> None:
    store, stats = MemoryStore(), LoaderStats()
    batch = [Update("k1", 5, 5, "old").to_wire(), Update("k1", 9, 9, "new").to_wire(),
             b"not json", b'{"k": "k2"}', Update("k2", 3, 3, "x").to_wire()]
    apply_batch(store, batch, stats)
    assert (stats.records, stats.malformed, stats.applied) == (5, 2, 2)
    env = store.get("k1")
    assert env is not None and env.data == "new"
    assert store.freshness() == {"stream": 9}
    # a replayed older batch changes nothing
    apply_batch(store, [Update("k1", 5, 5, "old").to_wire()], stats)
    env = store.get("k1")
    assert env is not None and env.data == "new"
