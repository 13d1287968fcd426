"""operators/dedup.py: a repeated event_id counts once within the window, and the reference
runner applies a log with every event doubled exactly as the log itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from operators.config import DedupConfig, EngineConfig
from operators.dedup import DedupState, step
from stream.reference import ReferenceRunner
from tests import streamkit

CFG = DedupConfig(window_ms=10_000, max_ids=5)
UNBOUNDED = DedupConfig(window_ms=10_000, max_ids=1_000)
EVENTS = st.lists(st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]),
                            st.integers(0, 30_000)), max_size=40)


@settings(max_examples=300, deadline=None)
@given(EVENTS)
def test_step_matches_the_brute_force(events: list[tuple[str, int]]) -> None:
    """Below ``max_ids``: an id is a duplicate exactly when an accepted event with that id lies
    within the window before the newest accepted event time."""
    state: DedupState | None = None
    accepted: list[tuple[str, int]] = []
    for event_id, ts in events:
        newest = max((t for _, t in accepted), default=None)
        want = newest is None or event_id not in {
            i for i, t in accepted if t >= newest - UNBOUNDED.window_ms}
        state, new = step(state, event_id, ts, UNBOUNDED)
        assert new == want, (accepted, event_id, ts)
        if new:
            accepted.append((event_id, ts))


@settings(max_examples=200, deadline=None)
@given(EVENTS)
def test_memory_is_bounded_and_a_remembered_id_is_never_accepted(
        events: list[tuple[str, int]]) -> None:
    state: DedupState | None = None
    for event_id, ts in events:
        before = state
        state, new = step(state, event_id, ts, CFG)
        assert len(state.ids) <= CFG.max_ids
        if before is not None and event_id in {i for i, _ in before.ids}:
            assert not new and state is before


def test_an_immediate_copy_is_always_a_duplicate() -> None:
    state, new = step(None, "e1", 5, CFG)
    assert new
    state, again = step(state, "e1", 5, CFG)
    assert not again


def test_reference_runner_counts_doubled_events_once() -> None:
    log = streamkit.generated_log(3_000, n_users=200, n_items=500)
    once = ReferenceRunner(EngineConfig())
    once.run([*log.items, *log.events])
    twice = ReferenceRunner(EngineConfig())
    twice.run([*log.items, *streamkit.with_duplicates(log).events])
    assert twice.duplicates == len(log.events) and once.duplicates == 0
    assert once.store.keys("") == twice.store.keys("")
    for key in once.store.keys(""):
        assert once.store.get(key) == twice.store.get(key), key
