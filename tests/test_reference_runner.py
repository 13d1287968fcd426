"""The in-process reference runner (``stream/reference.py``) as a whole.

For generated logs: the keys it writes are exactly those the log implies (built with
:mod:`state.keys`, new-arrival lists included), every version is the event time the value
reflects, replaying the same log
into the same store changes nothing, and how the log is cut into ``run`` calls or flushes does not
change the store.
"""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.config import INTEREST_TYPES, EngineConfig, NeighbourConfig, TrendingConfig
from schemas.events import Interaction, ItemUpsert
from state import keys
from state.records import Envelope
from state.store import MemoryStore, Store
from stream.reference import WRITER, ReferenceRunner
from stream.routing import item_targets
from tests.strategies import (
    DAY,
    T0,
    TTL_STEPS,
    RandomLog,
    Record,
    logs,
    naive_categories,
    naive_context_popularity,
    naive_context_scopes,
    naive_new_arrival_versions,
    naive_new_arrivals,
    naive_pairs,
    naive_popularity,
    naive_weight,
)

CFG = EngineConfig(similar=NeighbourConfig(capacity=4, top_k=3),
                   bought=NeighbourConfig(capacity=4, top_k=3, half_life_s=30 * 86_400.0),
                   similar_recent=NeighbourConfig(capacity=4, top_k=3, half_life_s=3_600.0),
                   trending=TrendingConfig(top_k=3))
examples = settings(max_examples=60, deadline=None)


def snapshot(store: Store) -> tuple[dict[str, Envelope | None], dict[str, int]]:
    return {k: store.get(k) for k in store.keys(keys.PREFIX)}, store.freshness()


def run(log: list[Record], store: MemoryStore | None = None, flush_every: int = 50_000
        ) -> ReferenceRunner:
    runner = ReferenceRunner(CFG, store if store is not None else MemoryStore())
    runner.run(log, flush_every=flush_every)
    return runner


def expected_versions(log: list[Record]) -> dict[str, int]:
    """Key -> the newest event time it reflects, recomputed from the log.

    Valid for logs whose catalogue comes first and that span less than ~13 trending half-lives
    of ~37 (no event too old to move a float sum), as :func:`logs` with ``catalogue_first`` makes,
    and whose items stay within ``max_context_scopes`` (at most 8 here). Event time never
    decreases in them, so every impression and interest event is its user's newest and moves
    the session's version.
    """
    newest: dict[str, int] = defaultdict(int)

    def bump(key: str, ts: int) -> None:
        newest[key] = max(newest[key], ts)

    cats = naive_categories(log)
    for rec in log:
        if isinstance(rec, ItemUpsert):
            bump(keys.item_key(rec.item_id), rec.ts)
            continue
        for item in item_targets(rec):
            bump(keys.itemstats_key(item), rec.ts)
        if rec.type == "impression":
            bump(keys.session_key(rec.user_id), rec.ts)  # the user's shown list changed
        if rec.type in INTEREST_TYPES and rec.item_id is not None:
            bump(keys.session_key(rec.user_id), rec.ts)
            if naive_weight(rec.type, rec.value) > 0:
                bump(keys.trending_key(), rec.ts)
                if cats.get(rec.item_id) is not None:
                    bump(keys.trending_key(cats[rec.item_id]), rec.ts)
                for scope in naive_context_scopes(rec):
                    bump(keys.key_for(keys.KIND_TRENDING, scope), rec.ts)
    for pair in naive_pairs(log, CFG.session):
        bump(keys.key_for(pair.relation, pair.src), pair.ts)
        if pair.relation == keys.KIND_SIMILAR:  # the second list (CFG.similar_recent is on)
            bump(keys.similar_recent_key(pair.src), pair.ts)
    for scope, ts in naive_new_arrival_versions(log).items():
        bump(keys.key_for(keys.KIND_TRENDING, scope), ts)
    return dict(newest)


@examples
@given(log=logs(max_size=60, catalogue_first=True))
def test_writes_expected_keys_at_event_time_versions(log: list[Record]) -> None:
    runner = run(log)
    want = expected_versions(log)
    assert runner.store.keys(keys.PREFIX) == sorted(want)
    for key, version in want.items():
        env = runner.store.get(key)
        assert env is not None
        assert (env.version, env.as_of) == (version, version), key
    events = [r.ts for r in log if isinstance(r, Interaction)]
    assert runner.store.freshness() == ({WRITER: max(events)} if events else {})
    assert runner.events_applied == len(events)


@examples
@given(log=logs(max_size=60, steps=TTL_STEPS))
def test_keys_and_versions_with_late_catalogue(log: list[Record]) -> None:
    """Upserts anywhere, some backdated, TTL jumps: keys still follow from the log."""
    runner = run(log)
    pops = naive_popularity(log, CFG)
    cats = naive_categories(log)
    want = {k for k in expected_versions(log) if keys.split_key(k)[0] != keys.KIND_TRENDING}
    want |= {keys.trending_key()} if pops else set()
    want |= {keys.trending_key(cats[i]) for i in pops if cats.get(i) is not None}
    want |= {keys.key_for(keys.KIND_TRENDING, s) for s in naive_context_popularity(log, CFG)}
    want |= {keys.key_for(keys.KIND_TRENDING, s) for s in naive_new_arrivals(log, CFG)}
    assert set(runner.store.keys(keys.PREFIX)) == want
    times = {r.ts for r in log}
    for key in want:
        env = runner.store.get(key)
        assert env is not None and env.version == env.as_of and env.version in times, key
    # a new-arrivals list's version is the newest upsert it reflects, late ones included
    for scope, version in naive_new_arrival_versions(log).items():
        env = runner.store.get(keys.key_for(keys.KIND_TRENDING, scope))
        assert env is not None and env.version == version, scope


@examples
@given(log=logs(max_size=60, steps=TTL_STEPS), flush_every=st.integers(1, 8))
def test_replaying_the_same_log_into_the_same_store_is_idempotent(log: list[Record],
                                                                  flush_every: int) -> None:
    once = run(log).store
    store = MemoryStore()
    run(log, store, flush_every)
    first = snapshot(store)
    run(log, store, flush_every)  # a replay after a crash: a fresh runner, the same store
    assert snapshot(store) == first == snapshot(once)


@examples
@given(log=logs(max_size=60, steps=TTL_STEPS), cut=st.integers(0, 60),
       flush_every=st.integers(1, 8))
def test_splitting_the_log_into_runs_or_flushes_changes_nothing(log: list[Record], cut: int,
                                                                flush_every: int) -> None:
    whole = run(log)
    split = ReferenceRunner(CFG)
    split.run(log[:cut], flush_every=flush_every)
    split.run(log[cut:])
    assert snapshot(split.store) == snapshot(whole.store)
    assert split.pending_updates() == []


def test_large_seeded_log_is_stable_across_replays_and_splits() -> None:
    log = RandomLog(seed=20240501, size=3_000, steps=(*TTL_STEPS[:-1], 3 * DAY)).build()
    whole = run(log)
    store = MemoryStore()
    run(log[:1_234], store, flush_every=97)
    run(log, store, flush_every=500)
    assert snapshot(store) == snapshot(whole.store)
    kinds = {keys.split_key(k)[0] for k in whole.store.keys(keys.PREFIX)}
    assert kinds == set(keys.KINDS) - set(keys.MODEL_KINDS)  # the models are off here
    envelopes = snapshot(whole.store)[0].values()
    assert all(e is not None and e.version >= T0 for e in envelopes)
