"""Service-free pieces of the stream shells: pair grouping, checkpoint discovery, loader batches,
the rows an event becomes, the item function's coalesced offers, the catalogue path to the
new-arrival lists and the neighbour function's lists, both similar-items lists included (with
fake Flink contexts)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from pyflink.common import Row

from operators import arrivals, neighbours, session, trending
from operators.config import EngineConfig, NeighbourConfig, TrendingConfig
from operators.session import Pair
from schemas.events import Interaction, ItemUpsert
from state import keys
from state.records import Update
from state.store import MemoryStore
from stream.functions import (
    UPDATES,
    ItemFunction,
    NeighbourFunction,
    SessionFunction,
    TopKFunction,
    explode_items,
    group_pairs,
)
from stream.job import latest_checkpoint
from stream.loader import LoaderStats, apply_batch
from stream.reference import ReferenceRunner
from stream.topology import JVM, PYTHON, TopologyConfig
from tests.streamkit import generated_log


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


T0 = 1_700_000_000_000


def _row(event: Interaction) -> Row:
    return Row(user_id=event.user_id, ts=event.ts, body=event.to_json().decode())


def test_explode_items_carries_context_by_name() -> None:
    view = Interaction("e1", "view", "u", "s", T0, item_id="i1",
                       context={"device": " Web", "country": "DE", "page": "home"})
    (row,) = explode_items(_row(view))
    assert (row.item_id, row.type, row.value, row.ts, row.device, row.country) == (
        "i1", "view", None, T0, " Web", "DE")
    shown = Interaction("e2", "impression", "u", "s", T0, item_ids=("i1", "i2"))
    assert [(r.item_id, r.device, r.country) for r in explode_items(_row(shown))] == [
        ("i1", None, None), ("i2", None, None)]


class _Keyed:
    """Flink's keyed state and timer service, enough for ItemFunction."""

    def __init__(self) -> None:
        self.key = ""
        self.values: dict[str, str] = {}

    # runtime context / value state
    def get_state(self, descriptor: Any) -> _Keyed:
        return self

    def value(self) -> str | None:
        return self.values.get(self.key)

    def update(self, value: str) -> None:
        self.values[self.key] = value

    # context / timer service
    def timer_service(self) -> _Keyed:
        return self

    def register_processing_time_timer(self, ts: int) -> None:
        pass

    def register_event_time_timer(self, ts: int) -> None:
        pass

    def get_current_key(self) -> str:
        return self.key


def _scores(out: Any) -> list[trending.ScopeScore]:
    return [trending.ScopeScore(r.scope, r.item_id, r.log_score, r.ts) for r in out
            if not (isinstance(r, tuple) and r[0] == UPDATES)]


def test_item_function_offers_changed_scopes_and_matches_the_reference() -> None:
    """Offers on ticks, only of scopes changed since the item's last offer (all of them after a
    restore), with retractions of dropped context scopes at once: the top-K lists and item
    states equal the reference runner's, which offers every score as it happens. Three items
    and top_k 3: no list is ever trimmed, so retractions cannot make them differ."""
    cfg = EngineConfig(trending=TrendingConfig(top_k=3, max_context_scopes=2))
    rng = random.Random(5)
    events = []
    for n in range(60):
        ts, context = T0 + n * 1_800_000, {"device": rng.choice(["web", "ios"]),
                                           "country": rng.choice(["de", "us", "fr"])}
        if n % 7 == 0:
            events.append(Interaction(f"e{n}", "impression", "u", "s", ts,
                                      item_ids=(f"i{n % 3}", "i9"), context=context))
        else:
            events.append(Interaction(f"e{n}", rng.choice(["view", "click"]), "u", "s", ts,
                                      item_id=f"i{n % 3}", context=context))
    keyed = _Keyed()
    fn = ItemFunction(cfg, 1_000)
    fn.open(keyed)
    offered: list[trending.ScopeScore] = []
    offers, all_scopes = 0, 0

    def tick() -> None:
        nonlocal offers, all_scopes
        for item in sorted(keyed.values):
            keyed.key = item
            scores = _scores(fn.on_timer(0, keyed))
            offers += len(scores)
            all_scopes += len(trending.current_scores(item, trending.decode_item(
                orjson.loads(keyed.values[item]))))
            offered.extend(scores)

    for n, event in enumerate(events):
        for row in explode_items(_row(event)):
            keyed.key = row.item_id
            offered.extend(_scores(fn.process_element1(row, keyed)))
        if n % 4 == 3:
            tick()
        if n == 31:
            fn = ItemFunction(cfg, 1_000)  # a restore: what was pending is forgotten
            fn.open(keyed)
    tick()
    topk: dict[str, trending.TopKState] = {}
    for score in offered:
        state, changed = trending.topk_step(topk.get(score.scope), score)
        if changed and state is not None:
            topk[score.scope] = trending.trim(state, cfg.trending, score.scope)
    ref = ReferenceRunner(cfg)
    ref.run(events)
    assert any(s.log_score == trending.RETRACT for s in offered)
    assert {k: (v.items, v.as_of) for k, v in topk.items()} == {
        k: (v.items, v.as_of) for k, v in ref.topk.items()}
    assert {k: trending.decode_item(orjson.loads(v)) for k, v in keyed.values.items()} == (
        ref.items)
    assert offers < all_scopes  # unchanged scopes are not offered again
    before = offers
    tick()
    assert offers == before  # nothing changed since the last tick: nothing offered


def test_session_function_publishes_impressions() -> None:
    keyed = _Keyed()
    keyed.key = "u"
    fn = SessionFunction(EngineConfig())
    fn.open(keyed)
    view = Interaction("e1", "view", "u", "s", T0, item_id="i1")
    shown = Interaction("e2", "impression", "u", "s", T0 + 5, item_ids=("i2", "i1"))
    list(fn.process_element(_row(view), keyed))
    out = list(fn.process_element(_row(shown), keyed))
    (update,) = [Update.from_wire(wire.encode()) for tag, wire in out if tag == UPDATES]
    assert (update.key, update.version) == ("recs:v1:session:u", T0 + 5)
    assert update.data["shown"] == [["i2", 1, T0 + 5], ["i1", 1, T0 + 5]]
    assert update.data["last_ts"] == T0 and len(out) == 1  # no pairs
    stale = Interaction("e0", "impression", "u", "s", T0 - 40 * 86_400_000, item_ids=("i3",))
    assert list(fn.process_element(_row(stale), keyed)) == []  # ignored: nothing published


def test_catalogue_path_publishes_new_arrivals_and_item_values_like_the_reference() -> None:
    """Upserts through ItemFunction (scores out at once) and TopKFunction (new-arrival lists
    trimmed to ``new_top_k``, not ``top_k``) publish what the reference runner does: a late
    correction, a recategorisation and a deletion included."""
    cfg = EngineConfig(trending=TrendingConfig(top_k=1, new_top_k=2))
    ups = [ItemUpsert("i1", T0, category="c0"), ItemUpsert("i2", T0 + 1_000, category="c0"),
           ItemUpsert("i3", T0 + 2_000, category="c1"), ItemUpsert("i4", T0 - 9_000),
           ItemUpsert("i2", T0 + 500),                   # late and older: lowers first seen
           ItemUpsert("i1", T0 + 3_000, category="c1"),  # moves to c1
           ItemUpsert("i3", T0 + 4_000, category="c1", deleted=True)]
    items, scopes = _Keyed(), _Keyed()
    fn, topk = ItemFunction(cfg, 1_000), TopKFunction(cfg, 1_000)
    fn.open(items)
    topk.open(scopes)
    for up in ups:
        items.key = up.item_id
        for row in fn.process_element2(Row(item_id=up.item_id, ts=up.ts,
                                           body=up.to_json().decode()), items):
            scopes.key = row.scope
            assert list(topk.process_element(row, scopes)) == []
    published: dict[str, Update] = {}
    for keyed, function in ((items, fn), (scopes, topk)):
        for key in sorted(keyed.values):
            keyed.key = key
            for out in function.on_timer(0, keyed):
                if isinstance(out, tuple) and out[0] == UPDATES:
                    upd = Update.from_wire(out[1].encode())
                    published[upd.key] = upd
    ref = ReferenceRunner(cfg)
    ref.run(ups)
    want = {k: ref.store.get(k) for k in ref.store.keys(keys.PREFIX)}
    assert {k: (u.version, u.as_of, u.data) for k, u in published.items()} == {
        k: (e.version, e.as_of, e.data) for k, e in want.items() if e is not None}
    # i1 was evicted when i3 arrived, so i3's deletion leaves the list one short (documented)
    assert published["recs:v1:trending:new:global"].data["items"] == [
        ["i2", arrivals.score(T0 + 500, cfg.trending.half_life_s)]]
    assert [i for i, _ in published["recs:v1:trending:new:cat:c1"].data["items"]] == ["i1"]
    assert published["recs:v1:item:i2"].data["first_seen_ms"] == T0 + 500
    assert published["recs:v1:item:i2"].version == T0 + 1_000


def test_only_the_jvm_runtime_takes_its_watermarks_from_the_source() -> None:
    """The python front assigns its own after parse; it must not be told they come from the
    source (it would then have none)."""
    assert TopologyConfig(EngineConfig(), runtime=JVM, source_watermarks=True).source_watermarks
    with pytest.raises(ValueError, match=r"source_watermarks.*'python'"):
        TopologyConfig(EngineConfig(), runtime=PYTHON, source_watermarks=True)



class _NamedKeyed(_Keyed):
    """Keyed value states by descriptor name (NeighbourFunction keeps two with the second
    similar-items list on); records the names the function opened."""

    def __init__(self) -> None:
        super().__init__()
        self.opened: list[str] = []
        self.named: dict[tuple[str, str], str] = {}

    def get_state(self, descriptor: Any) -> Any:
        self.opened.append(descriptor.name)
        keyed, name = self, descriptor.name

        class _Value:
            def value(self) -> str | None:
                return keyed.named.get((name, keyed.key))

            def update(self, value: str) -> None:
                keyed.named[(name, keyed.key)] = value

        return _Value()


@pytest.mark.parametrize("recent_s", [None, 1_800.0])
def test_neighbour_function_publishes_what_the_reference_does(recent_s: float | None) -> None:
    """The session pairs of a generated log, grouped as SessionFunction sends them, through
    NeighbourFunction with publication ticks in between: the last publication of every key
    equals the reference runner's, the second similar-items list included when it is on (a
    second state of the similar keys, published on their timer). Small tables, so Space-Saving
    overflows. Off, no second state is opened and no such key is published."""
    small = NeighbourConfig(capacity=6, top_k=4, half_life_s=86_400.0)
    cfg = EngineConfig(similar=small, bought=NeighbourConfig(capacity=6, top_k=4),
                       similar_recent=None if recent_s is None else NeighbourConfig(
                           capacity=6, top_k=4, half_life_s=recent_s))
    log = generated_log(3_000, n_users=60, n_items=401, seed=3)
    keyed = _NamedKeyed()
    fn = NeighbourFunction(cfg, 1_000)
    fn.open(keyed)
    published: dict[str, Update] = {}

    def tick() -> None:
        for key in sorted({k for _, k in keyed.named}):
            keyed.key = key
            for tag, wire in fn.on_timer(0, keyed):
                assert tag == UPDATES
                upd = Update.from_wire(wire.encode())
                published[upd.key] = upd

    sessions: dict[str, session.SessionState] = {}
    for n, event in enumerate(log.events):
        state, pairs = session.step(sessions.get(event.user_id), event, cfg.session)
        if state is not None:
            sessions[event.user_id] = state
        for row in group_pairs(pairs):
            keyed.key = f"{row.relation}|{row.src}"
            assert list(fn.process_element(row, keyed)) == []
        if n % 250 == 249:
            tick()
    tick()
    ref = ReferenceRunner(cfg)
    ref.run(log.events)
    kinds = keys.NEIGHBOUR_KINDS
    want = {k: ref.store.get(k) for k in ref.store.keys(keys.PREFIX)
            if keys.split_key(k)[0] in kinds}
    assert {k: (u.version, u.as_of, u.data) for k, u in published.items()} == {
        k: (e.version, e.as_of, e.data) for k, e in want.items() if e is not None}
    recent = {k for k in published if keys.split_key(k)[0] == keys.KIND_SIMILAR_RECENT}
    similar = {k for k in published if keys.split_key(k)[0] == keys.KIND_SIMILAR}
    assert any(len(s.scores) >= small.capacity for s in ref.relations.values())  # overflowed
    if recent_s is None:
        assert keyed.opened == ["neighbours"] and not recent
    else:
        assert keyed.opened == ["neighbours", "neighbours_recent"]
        assert {keys.split_key(k)[1] for k in recent} == {keys.split_key(k)[1] for k in similar}
