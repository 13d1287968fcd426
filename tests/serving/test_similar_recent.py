"""The homepage and the second similar-items list (``recs:v1:similar_recent:<item>``, on when
``Settings.similar_recent_half_life_s > 0``), against a real Redis holding what the reference
runner publishes with the list on (``EngineConfig.similar_recent``).

* on, with the learned order served: the recent items' second lists are read in the same round
  trip as their similar lists (the same number of round trips as off), the learned candidates
  carry ``simr*`` features, and the homepage's candidates are exactly what
  :func:`operators.learned_blend.serve` computes from the same stored lists (on the compiled
  core and on the Python path);
* off, or while the learned order is not served (no model, or a cold one): not one
  ``similar_recent`` key is read.

``tests/cluster/test_serving_cluster.py`` runs the first check through the Redis Cluster
reader.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from operators import learned_blend as lb
from operators.blend import Scored, shares
from operators.candidates import recent_items
from operators.config import EngineConfig, recent_similar
from recs.settings import Settings
from serving.app import App, create_app
from serving.fetch import Reader
from serving.handlers import Options
from serving.homepage_reads import context_keys, reads
from state.keys import similar_key, similar_recent_key
from state.records import Envelope
from state.redis_store import AsyncReader, RedisStore
from stream.reference import ReferenceRunner
from tests.serving.kit import creds
from tests.streamkit import generated_log

pytestmark = pytest.mark.integration
HALF_LIFE_S = 3_600.0
CFG = dataclasses.replace(EngineConfig(), similar_recent=recent_similar(EngineConfig().similar,
                                                                        HALF_LIFE_S))
LB_CFG = lb.LearnedBlendConfig(min_labelled=10)
# warm, and weighing the second lists heavily, so that they change the learned order
WARM = lb.BlendModel({"prior": 1.0, "sim0": 0.5, "simr0": 4.0, "simr_rr0": 2.0, "simr1": 3.0,
                      "simr_rr1": 1.0, "simr2": 2.0}, events=50, labelled=40, prior_gain=0.4,
                     learned_gain=0.6)
COLD = dataclasses.replace(WARM, learned_gain=0.3)
OPTS_K = 10
GetMany = Callable[[Sequence[str]], list[Envelope | None]]


class Spy:
    """The server's real reader, the keys of each round trip it is asked recorded."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    async def get_raw_many(self, keys: Sequence[str]) -> list[bytes | None]:
        self.calls.append(list(keys))
        return await self.inner.get_raw_many(keys)

    async def freshness(self) -> dict[str, int]:
        return await self.inner.freshness()

    async def ping(self) -> bool:
        return await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


def published(store: Any = None, *, n_events: int = 1_500,
              seed: int = 17) -> tuple[ReferenceRunner, list[str], int]:
    """The reference runner's state with the second list on (in ``store``, else in memory),
    the users with a session of several items, and a clock just after the last event."""
    log = generated_log(n_events, n_users=50, n_items=450, seed=seed)
    runner = ReferenceRunner(CFG, store=store)
    runner.run([*log.items, *log.events])
    users = sorted(u for u, s in runner.sessions.items()
                   if len({e[0] for e in s.events}) >= 2)
    return runner, users, max(e.ts for e in log.events) + 1_000


def app_on(reader: Reader, now: int, *, on: bool, model: lb.BlendModel | None = WARM,
           native: bool = True) -> App:
    """The server over ``reader`` with the second list on or off and the learned blend
    ``model`` loaded; no shared-list cache, so every draft reads all it needs."""
    settings = Settings(redis_url="redis://unused", kafka_bootstrap="",
                        keys_file=creds().keys_file, serve_cache_ttl_ms=0, native=native,
                        similar_recent_half_life_s=HALF_LIFE_S if on else 0.0)
    app = create_app(settings, reader, now_ms=lambda: now)
    app.handlers.models.blend, app.handlers.models.blend_cfg = model, LB_CFG
    return app


async def drafts(app: App, spy: Spy, users: Sequence[str],
                 now: int) -> dict[str, tuple[list[Scored], list[list[str]]]]:
    """Each user's homepage candidates (before the rules) and the round trips it read."""
    out: dict[str, tuple[list[Scored], list[list[str]]]] = {}
    try:
        for user in users:
            spy.calls.clear()
            opts = Options(OPTS_K, frozenset(), None, {}, False, user)
            draft = await app.handlers._homepage_draft(opts, now, user)
            out[user] = (draft.cands, [list(c) for c in spy.calls])
    finally:
        await spy.close()
    return out


def drive(get_many: GetMany, user: str, app: App, now: int) -> Any:
    """The homepage's inputs read straight from the store (the second lists left out)."""
    params = app.handlers.experiments.assign("homepage", user).rules.blend
    plan = reads(user, params, category=None, ctx_keys=context_keys({}, now), exclude=(),
                 pool=Options(OPTS_K, frozenset(), None, {}, False, user).pool, models=None)
    read = next(plan)
    while True:
        try:
            read = plan.send(get_many(read.keys))
        except StopIteration as done:
            return params, done.value


def expected(get_many: GetMany, user: str, app: App, now: int, model: lb.BlendModel = WARM
             ) -> tuple[list[Scored], list[Scored], Any, list[str]]:
    """:func:`operators.learned_blend.serve` on the stored lists with the second ones (read
    here, key by key) and without them; the learned candidates with them; the keys of the
    second lists read."""
    params, inp = drive(get_many, user, app, now)
    recent = {}
    for item in recent_items(inp.session, lb.POSITIONS):
        (env,) = get_many([similar_recent_key(item)])
        if env is not None:
            recent[item] = shares(env.data["items"])
    pool = Options(OPTS_K, frozenset(), None, {}, False, user).pool
    args = (inp.session, inp.similar, inp.bought, inp.fills, params)
    with_lists = lb.serve(model, LB_CFG, *args, k=pool, similar_recent=recent)
    without = lb.serve(model, LB_CFG, *args, k=pool)
    cands = lb.candidates(*args, LB_CFG, similar_recent=recent)
    second = [similar_recent_key(i) for i in recent_items(inp.session, lb.POSITIONS)]
    return with_lists, without, cands, second


def same(a: Sequence[Scored], b: Sequence[Scored]) -> bool:
    return [(s.item_id, s.score, [(e.source, e.score, e.because) for e in s.evidence])
            for s in a] == [(s.item_id, s.score, [(e.source, e.score, e.because)
                                                  for e in s.evidence]) for s in b]


def check_served(get_many: GetMany, reader: Reader, users: Sequence[str], now: int,
                 native: bool = True) -> None:
    """The homepage with the list on equals the operator on the stored lists, having read
    the second lists in one round trip (shared by the cluster test)."""
    spy = Spy(reader)
    app = app_on(spy, now, on=True, native=native)
    got = asyncio.run(drafts(app, spy, users, now))
    with_simr = changed = 0
    for user in users:
        want, without, cands, second = expected(get_many, user, app, now)
        assert same(got[user][0], want), user
        (trip,) = [c for c in got[user][1] if second[0] in c]
        assert set(second) <= set(trip)
        with_simr += any(k.startswith("simr") for c in cands for k in c.features)
        changed += [s.item_id for s in want] != [s.item_id for s in without]
    assert with_simr == len(users)  # every session's recent items have second lists
    assert changed > len(users) // 3, changed  # and they moved the learned order


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_the_homepage_serves_the_learned_order_of_the_stored_second_lists(
        redis_server: Any, redis_store: RedisStore, native: bool) -> None:
    _, users, now = published(redis_store)
    assert len(users) >= 20
    reader = AsyncReader.from_url(redis_server.url_for(redis_store.db))
    check_served(redis_store.get_many, reader, users[:20], now, native)


def test_the_second_lists_come_in_the_similar_lists_round_trip_and_only_when_on(
        redis_server: Any, redis_store: RedisStore) -> None:
    runner, users, now = published(redis_store)
    users = users[:15]
    url = redis_server.url_for(redis_store.db)

    def run(on: bool, model: lb.BlendModel | None) -> dict[str, Any]:
        spy = Spy(AsyncReader.from_url(url))
        return asyncio.run(drafts(app_on(spy, now, on=on, model=model), spy, users, now))

    on, off = run(True, WARM), run(False, WARM)
    for user in users:
        calls = on[user][1]
        recent = recent_items({"events": runner.sessions[user].events}, lb.POSITIONS)
        wanted = {similar_recent_key(i) for i in recent}
        (trip,) = [c for c in calls if similar_key(recent[0]) in c]
        assert wanted <= set(trip)  # with the similar lists, in one MGET
        assert [k for c in calls for k in c if ":similar_recent:" in k] == \
            [k for k in trip if ":similar_recent:" in k]  # and in no other
        assert len(calls) == len(off[user][1])  # no extra round trip
        (plain,) = [c for c in off[user][1] if similar_key(recent[0]) in c]
        assert set(trip) - wanted == set(plain)  # otherwise the same keys
    # off, or the learned order not served (no model, a cold one): none is read
    for found in (off, run(True, None), run(True, COLD)):
        assert not [k for _, calls in found.values() for c in calls for k in c
                    if ":similar_recent:" in k]
