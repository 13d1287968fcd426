"""The fast path answers exactly what the reference pipeline answers.

Two apps read the same real Redis: the server as it runs (answer cache on, the auto-pipelining
reader, the compiled core's twins of the pure steps when built: :mod:`serving.native`) and the
reference (answer cache off, redis-py's reader, the Python operators: every answer computed). Over
:data:`ROUNDS` rounds of requests of varied users (with sessions, with learned vectors, unknown),
contexts and options (k, explain, category, exclude) to the homepage and "because you viewed",
the data changes between rounds as the stream would change it: sessions get events, neighbour
lists and trending lists are republished, items sell out and come back, a new ranker snapshot,
new item vectors and a new learned blend (warm every other time: its order is served) arrive,
the clock moves across minutes. Every answer must be the same:
items, order, scores within 1e-9, sources, reasons, rules, explanations, freshness, exploration
(``rec_id`` comes from the same counter on both sides, so exploration draws the same). The test
also checks that the cache was used (hits) and that changed data was caught (stale entries).

Within a round the data does not change; after a change both apps drop their shared-list cache
(as its one-second bound would), so both see the same values. :func:`replay` compares any two
apps this way (``tests/cluster/test_serving_cluster.py``: one Redis against a Redis Cluster).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from operators import learned_blend
from recs.settings import Settings
from serving import native
from serving.app import App, create_app, open_reader
from serving.models import RedisModelSource
from serving.redis_client import PipelinedReader
from state.keys import (
    MODEL_BLEND,
    bought_key,
    item_key,
    itemstats_key,
    new_arrivals_key,
    session_key,
    similar_key,
    trending_context_key,
    trending_key,
)
from state.records import Update
from state.redis_store import AsyncReader, RedisStore
from stream.views import item_vector_update, model_update, user_vector_update
from tests.serving import learned as L
from tests.serving.kit import NOW, AsgiClient, creds

pytestmark = pytest.mark.integration

ITEMS = [f"i{n}" for n in range(240)]
CATEGORIES = [f"c{n}" for n in range(8)]
USERS = [f"u{n}" for n in range(160)]
VECTOR_USERS = USERS[:50]
UNKNOWN = [f"nobody{n}" for n in range(20)]
ROUNDS = 25
PER_ROUND = 400  # requests per round: 10,000 in all
BATCH = 16       # requests in flight at once per app
HALF_LIFE_S = 3600.0
DIM = 4
RULES = """
[boosts]
promoted = ["i3", "i17", "i40"]
[sponsored]
items = ["i5", "i77"]
slots = [2]
[exploration]
slot = 4
epsilon = 0.5
[blend]
remind = [0.6, 0.3]
"""


def _log_score(weight: float, ts_ms: int) -> float:
    return math.log(weight) + math.log(2) / HALF_LIFE_S * ts_ms / 1000.0


def _ranked(rnd: random.Random, pool: list[str], n: int, ts: int) -> dict[str, Any]:
    picked = rnd.sample(pool, n)
    weights = sorted((rnd.choice([1.0, 2.0, 3.0, rnd.uniform(0.5, 9.0)]) for _ in picked),
                     reverse=True)  # repeated weights: exact ties between items
    return {"items": [[i, _log_score(w, ts)] for i, w in zip(picked, weights, strict=True)],
            "half_life_s": HALF_LIFE_S}


class World:
    """The data, written through :class:`RedisStore`, and the stream's changes to it."""

    def __init__(self, store: RedisStore, seed: int = 11) -> None:
        self.store = store
        self.rnd = random.Random(seed)
        self.version = 10
        self.now = NOW

    def next_version(self) -> int:
        self.version += 1
        return self.version

    def item(self, i: str, *, stock: int | None = None) -> Update:
        rnd = self.rnd
        n = int(i[1:])
        meta: dict[str, Any] = {"item_id": i, "title": f"Item {n}",
                                "category": CATEGORIES[n % len(CATEGORIES)],
                                "brand": f"b{n % 5}", "price": float(n % 37 + 1),
                                "first_seen_ms": NOW - rnd.choice([1, 3, 20, 40]) * 86_400_000}
        if stock is not None:
            meta["stock"] = stock
        if n % 53 == 0:
            meta["deleted"] = True
        return Update(item_key(i), self.next_version(), self.now - 1000, meta)

    def session(self, u: str) -> Update:
        rnd = self.rnd
        events = [[rnd.choice(ITEMS), rnd.choice(["view", "view", "click", "add_to_cart"]),
                   self.now - 1000 * k] for k in range(rnd.randint(0, 7), 0, -1)]
        shown = [[i, rnd.randint(1, 6), self.now - 5000] for i in rnd.sample(ITEMS, 15)]
        return Update(session_key(u), self.now, self.now, {
            "session_id": f"s-{u}-{self.now}", "start": self.now - 600_000,
            "last_ts": self.now, "events": events, "basket": [],
            "purchased": rnd.sample(ITEMS, rnd.choice([0, 0, 2])), "shown": shown})

    def lists(self, items: list[str]) -> list[Update]:
        rnd, ups = self.rnd, []
        for i in items:
            ts = self.now - rnd.randint(1, 600) * 1000
            ups.append(Update(similar_key(i), self.next_version(), ts,
                              _ranked(rnd, ITEMS, rnd.randint(15, 45), ts)))
            if rnd.random() < 0.7:
                ups.append(Update(bought_key(i), self.next_version(), ts,
                                  _ranked(rnd, ITEMS, rnd.randint(3, 20), ts)))
        return ups

    def trending(self) -> list[Update]:
        rnd, ts = self.rnd, self.now - 2000
        keys = [trending_key(), *(trending_key(c) for c in CATEGORIES),
                trending_context_key("device", "mobile"), trending_context_key("country", "de")]
        keys += [trending_context_key("daypart", d)
                 for d in ("night", "morning", "afternoon", "evening")]
        ups = [Update(k, self.next_version(), ts, _ranked(rnd, ITEMS, 40, ts)) for k in keys]
        newest = ITEMS[-30:]
        for scope in [None, *CATEGORIES[:4]]:
            ups.append(Update(new_arrivals_key(scope), self.next_version(), ts,
                              {"items": [[i, float(1000 - n)] for n, i in enumerate(newest)],
                               "half_life_s": 0}))
        ups += [Update(itemstats_key(i), self.next_version(), ts, {"log_pop": 1.0})
                for i in newest[::3]]
        return ups

    def models(self, version: int) -> list[Update]:
        rnd = self.rnd
        ups = [model_update("mf", {"version": version, "dim": DIM, "items": len(ITEMS),
                                   "users": len(VECTOR_USERS), "events": 1000,
                                   "as_of": self.now}, version=version, as_of=self.now)]
        ups += [item_vector_update(i, [rnd.gauss(0, 1) for _ in range(DIM)], rnd.gauss(0, 0.1),
                                   version=version, as_of=self.now) for i in ITEMS]
        ups += [user_vector_update(u, [rnd.gauss(0, 1) for _ in range(DIM)], 0.0,
                                   version=version, as_of=self.now,
                                   events=rnd.choice([5, 40, 100])) for u in VECTOR_USERS]
        # a learned blend, warm every other version: the homepage serves its order then
        weights = {f: rnd.uniform(-1, 1) for f in learned_blend.FEATURES}
        warm = version % 2 == 0
        blend_model = learned_blend.BlendModel(weights, events=2_000, labelled=2_000,
                                               prior_gain=0.5, learned_gain=0.6 if warm else 0.4)
        ups.append(model_update(MODEL_BLEND, learned_blend.published(
            blend_model, learned_blend.LearnedBlendConfig()), version=version, as_of=self.now))
        return ups

    def fill(self) -> None:
        self.store.apply([*(self.item(i, stock=self.rnd.choice([None, 3, 0]))
                            for i in ITEMS),
                          *(self.session(u) for u in USERS), *self.lists(ITEMS),
                          *self.trending(), *self.models(40)])
        L.publish_ranker(self.store, L.planted_ranker("i1", ["i2", "i3", "i4"]),
                         as_of=self.now - 1000)

    def change(self, round_no: int) -> bool:
        """The stream's changes of one round; True when the models changed."""
        rnd = self.rnd
        self.now += 20_000  # three rounds a minute: the ranking clock moves on
        ups = [self.session(u) for u in rnd.sample(USERS, 12)]
        ups += self.lists(rnd.sample(ITEMS, 10))
        ups += [self.item(i, stock=rnd.choice([0, 5])) for i in rnd.sample(ITEMS, 6)]
        if round_no % 4 == 0:
            ups += self.trending()
        self.store.apply(ups)
        if round_no in (8, 17):
            self.store.apply(self.models(40 + round_no))
            if round_no == 17:  # a ranker taught otherwise
                L.publish_ranker(self.store, L.planted_ranker("i9", ["i1", "i2"], rounds=200),
                                 as_of=self.now)
            return True
        return False


def _requests(rnd: random.Random) -> list[str]:
    """The request mix: a fixed set of requests, asked again and again (widgets poll)."""
    out = []
    for n in range(900):
        user = rnd.choice([*USERS, *USERS, *UNKNOWN])
        path = "recommendations" if rnd.random() < 0.75 else "session-recommendations"
        query = [f"k={rnd.choice([1, 4, 8, 8, 8, 12, 20])}"]
        if rnd.random() < 0.3:
            query.append("explain=true")
        if rnd.random() < 0.3:
            query.append("context=" + rnd.choice(["device:mobile", "country:DE",
                                                  "device:mobile,country:de,page:home"]))
        if rnd.random() < 0.15:
            query.append(f"category={rnd.choice(CATEGORIES)}")
        if rnd.random() < 0.1:
            query.append("exclude=" + ",".join(rnd.sample(ITEMS, 3)))
        if n % 50 == 0:
            query.append("exclude=" + ",".join(ITEMS[:3]))
        out.append(f"/v1/users/{user}/{path}?{'&'.join(query)}")
    return out


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, int | float) and isinstance(b, int | float) and \
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
        return [] if ok else [f"{path}: {a!r} != {b!r}"]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{path}: keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in _differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} entries != {len(b)}"]
        return [d for n, (x, y) in enumerate(zip(a, b, strict=True))
                for d in _differences(x, y, f"{path}[{n}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def _app(redis_url: str, rules: Path, clock: Callable[[], int], *, fast: bool) -> App:
    """``fast``: the server as it runs (the reader :func:`~serving.app.open_reader` picks for
    the URL: one Redis or a Redis Cluster); else the reference (redis-py, no answer cache)."""
    # a generous budget: a read slowed by a busy machine must not turn into a degraded answer
    settings = Settings(redis_url=redis_url, kafka_bootstrap="", rules_file=str(rules),
                        serve_budget_ms=10_000, keys_file=creds().keys_file,
                        rate_key_rps=1e9, rate_key_burst=1e9, native=fast)
    reader = open_reader(redis_url) if fast else AsyncReader.from_url(redis_url)
    app = create_app(settings, reader, now_ms=clock)
    if not fast:
        app.handlers.answers.capacity = 0  # the reference: every answer computed
    counter = itertools.count()
    app.handlers.rec_ids = lambda: f"rec-{next(counter)}"
    app.handlers.models.source = RedisModelSource.from_url(redis_url)
    return app


async def replay(world: World, apps: tuple[App, App], rnd: random.Random,
                 requests: list[str], *, rounds: int = ROUNDS,
                 changed: Callable[[], object] = lambda: None) -> tuple[int, list[str]]:
    """``rounds`` rounds of :data:`PER_ROUND` requests to both apps, the world changing after
    each (``changed`` runs after the change, before the apps drop their caches); the number
    asked and the first differences. Closes the apps' readers and sources."""
    for app in apps:
        await app.handlers.models.refresh()
    clients = [AsgiClient(app) for app in apps]
    asked, problems = 0, list[str]()
    try:
        for round_no in range(rounds):
            # every request of the round asked twice (a widget polls), the second time
            # after the first was answered
            urls = rnd.sample(requests, PER_ROUND // 2)
            urls += rnd.sample(urls, len(urls))
            for start in range(0, PER_ROUND, BATCH):
                batch = urls[start:start + BATCH]
                # each app answers the batch concurrently (rec_ids are taken in order)
                a_replies, b_replies = await asyncio.gather(*(
                    asyncio.gather(*(c.get(u) for u in batch)) for c in clients))
                for url, a, b in zip(batch, a_replies, b_replies, strict=True):
                    asked += 1
                    diff = ([f"status {a.status} != {b.status}"] if a.status != b.status
                            else _differences(a.json, b.json))
                    if diff and len(problems) < 20:
                        problems.append(f"round {round_no} {url}: {diff[:3]}")
            models_changed = world.change(round_no)
            changed()
            for app in apps:
                app.handlers.fetch._cache.clear()  # as the one-second bound would
                if models_changed:
                    await app.handlers.models.refresh()
    finally:
        for app in apps:
            reader = app.handlers.reader
            if reader is not None:
                await reader.close()
            if app.handlers.models.source is not None:
                await app.handlers.models.source.close()
    return asked, problems


def test_fast_path_answers_exactly_what_the_reference_answers(
        store: RedisStore, redis_url: str, tmp_path: Path) -> None:
    world = World(store)
    world.fill()
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    rnd = random.Random(5)
    requests = _requests(rnd)

    async def go() -> tuple[int, list[str], App]:
        fast = _app(redis_url, rules, lambda: world.now, fast=True)
        ref = _app(redis_url, rules, lambda: world.now, fast=False)
        assert isinstance(fast.handlers.reader, PipelinedReader)
        return *await replay(world, (fast, ref), rnd, requests), fast

    asked, problems, fast = asyncio.run(go())
    answers = fast.handlers.answers
    print(f"answers: {asked} asked, {answers.hits} from the cache, {answers.stale} stale, "
          f"{answers.misses} computed")
    assert asked >= 10_000
    assert problems == []
    # the cache answered a good share, and caught changed data (else this proved little)
    assert answers.hits > 0.3 * asked, (answers.hits, answers.misses, answers.stale)
    assert answers.stale > 200, (answers.hits, answers.misses, answers.stale)
    assert fast.handlers.models.ranker_state == "warm"
    assert fast.handlers.models.blend is not None
    # the server's side ran the compiled core whenever it was built
    assert fast.handlers.kernels.name == (native.NATIVE if native.compiled() else native.PYTHON)
