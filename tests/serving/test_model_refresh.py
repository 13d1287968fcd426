"""The learned models' refresher against a real Redis: it follows the item-vector changelog
into the FAISS index (new vectors retrievable after one refresh, deletions removed, pages and
version boundaries handled, a new dimension rebuilds), reloads the ranker only when its version
changes, keeps what it has while Redis is down, runs with the app's lifespan, and exports the
model metrics."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import pytest

from recs.settings import Settings
from serving.app import create_app
from serving.models import (
    RANKER_ABSENT,
    RANKER_COLD,
    RANKER_WARM,
    ModelRefresher,
    ModelSource,
)
from state.records import Envelope
from state.redis_store import RedisStore
from stream.views import item_vector_update
from tests.serving import learned as L
from tests.serving.kit import NOW, AsgiClient, creds, fill, run

pytestmark = pytest.mark.integration


def test_refresh_loads_everything_then_follows_new_and_deleted_vectors(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)

    async def body(client: AsgiClient) -> None:
        models = client.app.handlers.models
        assert models.vectors == 0 and models.mf is None
        assert await models.refresh()
        assert models.vectors == len(L.ITEM_VECTORS) and models.dim == L.DIM + 1
        assert models.mf is not None and models.mf.version == L.MF_VERSION
        top = [i for i, _ in models.search({"x": L.USER_VECTOR}, 3)]
        assert top == ["i2", "i1", "i4"]
        # a new item's vector, written through the store: retrievable after one refresh
        L.publish_new_item(store)
        assert L.NEW_ITEM not in [i for i, _ in models.search({"x": L.USER_VECTOR}, 10)]
        assert await models.refresh()
        assert [i for i, _ in models.search({"x": L.USER_VECTOR}, 1)] == [L.NEW_ITEM]
        assert L.NEW_ITEM in [i for i, _ in models.neighbours("i2", 3)]
        # a tombstone removes it
        L.delete_item(store, L.NEW_ITEM, L.MF_VERSION + 2)
        assert await models.refresh()
        assert not models.has_vector(L.NEW_ITEM)
        assert L.NEW_ITEM not in [i for i, _ in models.search({"x": L.USER_VECTOR}, 10)]
        assert models.vectors == len(L.ITEM_VECTORS)
        # a replaced vector moves
        store.apply([item_vector_update("i6", [2.0, 0.0], 0.0, version=L.MF_VERSION + 3,
                                        as_of=L.MF_AS_OF)])
        assert await models.refresh()
        assert [i for i, _ in models.search({"x": L.USER_VECTOR}, 1)] == ["i6"]

    run(filled, body)


def test_pages_and_version_boundaries_miss_nothing(filled: str, store: RedisStore) -> None:
    # seven items written at one model version: more than a page of 3 (the page widens)
    store.apply(L.item_vectors({f"p{n}": ([1.0, float(n)], 0.0) for n in range(7)},
                               version=5))
    store.apply(L.item_vectors({"q1": ([0.0, 1.0], 0.0)}, version=6))

    async def body(client: AsgiClient) -> tuple[list[int], list[list[str]]]:
        models = client.app.handlers.models
        assert models.source is not None
        counting = _Counting(models.source)
        models.source = counting
        counts = []
        assert await models.refresh()
        counts.append(models.vectors)
        # written after that read, at the version the cursor stands on: still picked up
        store.apply(L.item_vectors({"q2": ([0.0, 2.0], 0.0)}, version=6))
        counting.read.clear()
        assert await models.refresh()
        counts.append(models.vectors)
        assert models.has_vector("q2")
        reads = [list(counting.read)]
        counting.read.clear()
        assert await models.refresh()  # nothing new: no vector is read again
        counts.append(models.vectors)
        return counts, [*reads, list(counting.read)]

    counts, reads = run(filled, body, models_page=3)
    assert counts == [8, 9, 9]
    assert reads == [["recs:v1:itemvec:q2"], []]


def test_a_version_larger_than_a_page_is_read_through_once(filled: str,
                                                           store: RedisStore) -> None:
    store.apply(L.item_vectors({f"p{n}": ([1.0, float(n)], 0.0) for n in range(7)},
                               version=9))

    async def body(client: AsgiClient) -> list[tuple[int, list[str]]]:
        models = client.app.handlers.models
        assert models.source is not None
        counting = _Counting(models.source)
        models.source = counting
        steps: list[tuple[int, list[str]]] = []

        async def step() -> None:
            counting.read.clear()
            assert await models.refresh()
            steps.append((models.vectors, [k.rsplit(":", 1)[-1] if ":itemvec:" in k else k
                                           for k in counting.read]))

        await step()  # everything, by offset past the first page
        await step()  # idle: the count at version 9 did not change, nothing is read
        store.apply(L.item_vectors({"p7": ([0.0, 1.0], 0.0)}, version=9))
        await step()  # one more at version 9: read through again, only p7 fetched
        store.apply(L.item_vectors({"r1": ([0.0, 3.0], 0.0)}, version=10))
        await step()  # a newer version: version 9 is complete, the cursor moves past it
        await step()
        return steps

    steps = run(filled, body, models_page=3)
    assert steps[0][0] == 7 and set(steps[0][1]) >= {f"p{n}" for n in range(7)}
    assert steps[1] == (7, [])
    assert steps[2][0] == 8 and [k for k in steps[2][1] if not k.startswith("members")] == ["p7"]
    assert steps[3][0] == 9 and "r1" in steps[3][1]
    assert steps[4] == (9, [])


class _Counting:
    """A model source that records the item-vector keys it was asked for."""

    def __init__(self, inner: ModelSource) -> None:
        self.inner = inner
        self.read: list[str] = []

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]:
        self.read += [k for k in keys if ":itemvec:" in k]
        return await self.inner.get_many(keys)

    async def vector_changes(self, since: int, limit: int) -> list[tuple[str, int]]:
        return await self.inner.vector_changes(since, limit)

    async def count_at(self, version: int) -> int:
        return await self.inner.count_at(version)

    async def members_at(self, version: int, offset: int, limit: int) -> list[str]:
        self.read += [f"members_at:{version}:{offset}"]
        return await self.inner.members_at(version, offset, limit)

    async def head(self, key: str) -> tuple[int, int] | None:
        return await self.inner.head(key)

    async def get_raw(self, key: str) -> bytes | None:
        return await self.inner.get_raw(key)

    async def close(self) -> None:
        await self.inner.close()


def test_a_new_dimension_rebuilds_the_index(filled: str, store: RedisStore) -> None:
    L.publish_model(store)

    async def body(client: AsgiClient) -> None:
        models = client.app.handlers.models
        assert await models.refresh()
        assert models.dim == 3
        # retrained with three factors: new header, two items republished so far
        store.apply([L.header(version=50, dim=3),
                     *L.item_vectors({"i2": ([1.0, 0.0, 0.0], 0.0),
                                      "i3": ([0.0, 0.0, 1.0], 0.5)}, version=50)])
        assert await models.refresh()
        assert models.dim == 4 and models.vectors == 2
        assert [i for i, _ in models.search({"x": [0.0, 0.0, 1.0]}, 2)] == ["i3", "i2"]
        assert models.search({"x": L.USER_VECTOR}, 2) == []  # an old user vector: no answer

    run(filled, body)


def test_ranker_reloads_only_when_its_version_changes(filled: str, store: RedisStore) -> None:
    async def body(client: AsgiClient) -> None:
        models = client.app.handlers.models
        assert await models.refresh()
        assert models.ranker_state == RANKER_ABSENT
        from operators.ranker import Ranker
        L.publish_ranker(store, Ranker())  # no examples: cold
        assert await models.refresh()
        assert models.ranker_state == RANKER_COLD and models.ranker_head == (0, NOW - 60_000)
        cold = models.ranker
        assert await models.refresh()
        assert models.ranker is cold  # same version: not read again
        version = L.publish_ranker(store, L.planted_ranker("i4", ["i2", "i3"]))
        assert await models.refresh()
        assert models.ranker_state == RANKER_WARM and models.ranker is not cold
        assert models.ranker_head is not None and models.ranker_head[0] == version
        # a snapshot that does not restore keeps the loaded ranker
        from state.keys import MODEL_RANKER
        from stream.views import model_update
        store.apply([model_update(MODEL_RANKER, {"format": "nope"}, version=version + 1,
                                  as_of=NOW)])
        warm = models.ranker
        assert await models.refresh()
        assert models.ranker is warm and models.ranker_state == RANKER_WARM

    run(filled, body)


def test_redis_down_during_refresh_keeps_the_index_and_serving(
        filled: str, store: RedisStore, redis_killable: Any) -> None:
    L.publish_model(store)

    async def body(client: AsgiClient) -> tuple[bool, int, int, list[str], Any, Any]:
        models = client.app.handlers.models
        assert await models.refresh()
        loaded = models.vectors
        redis_killable.kill()
        ok = await models.refresh()
        during = await client.get(f"/v1/users/{L.USER}/recommendations?k=3")
        still = [i for i, _ in models.search({"x": L.USER_VECTOR}, 2)]
        redis_killable.restart()  # empty: the stream's data comes back, the model not yet
        fill(RedisStore.from_url(filled))
        L.publish_model(RedisStore.from_url(filled))
        after = await client.get(f"/v1/users/{L.USER}/recommendations?k=3&explain=true")
        assert await models.refresh()  # reachable again
        return ok, loaded, models.failures, still, during, after

    ok, loaded, failures, still, during, after = run(filled, body)
    assert (ok, failures) == (False, 1)
    assert loaded == len(L.ITEM_VECTORS) and still == ["i2", "i1"]
    assert during.status == 200 and during.json["degraded"] is True
    # answered from the index kept through the outage
    assert after.status == 200 and after.json["degraded"] is False
    assert after.json["items"][0]["source"] == "vector"


def test_the_lifespan_runs_the_refresher(filled: str, store: RedisStore) -> None:
    L.publish_model(store)

    async def go() -> tuple[int, int, bool]:
        app = create_app(Settings(redis_url=filled, keys_file=creds().keys_file),
                         now_ms=lambda: NOW, model_refresh_ms=20)
        client = AsgiClient(app)
        models = app.handlers.models
        assert await client.lifespan("startup") == "lifespan.startup.complete"
        for _ in range(200):
            if models.vectors:
                break
            await asyncio.sleep(0.01)
        first = models.vectors
        L.publish_new_item(store)
        for _ in range(200):
            if models.has_vector(L.NEW_ITEM):
                break
            await asyncio.sleep(0.01)
        second = models.vectors
        assert await client.lifespan("shutdown") == "lifespan.shutdown.complete"
        return first, second, models.source is None

    first, second, closed = asyncio.run(go())
    assert (first, second) == (len(L.ITEM_VECTORS), len(L.ITEM_VECTORS) + 1)
    assert closed


def test_metrics_export_model_versions_ages_quality_and_vectors(
        filled: str, store: RedisStore) -> None:
    L.publish_model(store)
    ranker = L.planted_ranker("i4", ["i2", "i3"])
    version = L.publish_ranker(store, ranker, as_of=NOW - 90_000)

    async def body(client: AsgiClient) -> tuple[dict[str, float], dict[str, float]]:
        before = L.samples((await client.get("/metrics")).json.decode())
        assert await client.app.handlers.models.refresh()
        return before, L.samples((await client.get("/metrics")).json.decode())

    before, after = run(filled, body)
    assert before["recs_serving_vectors"] == 0
    assert not any(k.startswith(("recs_model_version", "recs_ranker_")) for k in before)
    assert after['recs_model_version{model="mf"}'] == L.MF_VERSION
    assert after['recs_model_version{model="ranker"}'] == version
    assert after['recs_model_age_seconds{model="mf"}'] == (NOW - L.MF_AS_OF) / 1000
    assert after['recs_model_age_seconds{model="ranker"}'] == 90.0
    stats = ranker.stats()
    assert after["recs_ranker_auc"] == pytest.approx(stats["auc"])
    assert after["recs_ranker_log_loss"] == pytest.approx(stats["log_loss"])
    assert after["recs_serving_vectors"] == len(L.ITEM_VECTORS)


class _SwallowingSource:
    """A source whose read swallows the cancellation (as a Redis client caught mid-read can):
    the refresher's task carries on after ``cancel()``."""

    def __init__(self) -> None:
        self.reads = 0

    async def get_many(self, keys: Any) -> list[Any]:
        self.reads += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
        return [None for _ in keys]

    async def vector_changes(self, since: int, limit: int) -> list[tuple[str, int]]:
        return []

    async def count_at(self, version: int) -> int:
        return 0

    async def members_at(self, version: int, offset: int, limit: int) -> list[str]:
        return []

    async def head(self, key: str) -> tuple[int, int] | None:
        return None

    async def get_raw(self, key: str) -> bytes | None:
        return None

    async def close(self) -> None:
        pass


def test_stop_returns_even_when_a_read_swallows_the_cancellation() -> None:
    async def go() -> tuple[float, int]:
        models = ModelRefresher(refresh_ms=10)
        source = _SwallowingSource()
        models.start(source)
        while source.reads < 3:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await models.stop()  # before the fix: waited forever on a task that never ended
        return time.monotonic() - started, source.reads

    took, reads = asyncio.run(asyncio.wait_for(go(), timeout=10))
    assert took < 1.0 and reads >= 3
