"""The endpoints: thin handlers that fetch from Redis in as few round trips as possible and hand
the envelopes to the pure functions of :mod:`serving.answers`.

Round trips per request (all MGET, so each is one network exchange):

* trending: the list; then the metadata of the items shown.
* similar / bought together: the list and the item's own metadata together; then the metadata of
  the items shown.
* session recommendations: the session; then the neighbour lists *and* the metadata of its recent
  items together; then the metadata of the items shown.

When Redis cannot be reached a data endpoint still answers at once (``"degraded": true``) from the
last trending lists this process fetched (:class:`serving.cache.Lru`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import redis.exceptions

from operators.candidates import DEFAULT_RECENT, recent_items
from serving import answers as A
from serving.cache import Lru
from serving.params import Query, entity_id
from serving.responses import NOT_FOUND, ApiError, Response, json_response
from serving.router import Router
from state.keys import bought_key, item_key, session_key, similar_key, trending_key
from state.records import Envelope

log = logging.getLogger("serving")

# errors that mean "Redis is not reachable now", as opposed to a bug or bad data
UNAVAILABLE: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
TRENDING_CACHE_SIZE: Final = 64
DELETED_SLACK: Final = 10  # extra candidates fetched so that deleted items can be dropped


class Reader(Protocol):
    """What the server needs from Redis (:class:`state.redis_store.AsyncReader` is one)."""

    async def get_many(self, keys: Sequence[str]) -> list[Envelope | None]: ...

    async def freshness(self) -> dict[str, int]: ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


Handler = Callable[[Mapping[str, str], Query], Awaitable[Response]]
Meta = dict[str, Mapping[str, Any] | None]


class RedisUnavailable(ConnectionError):
    """No reader is open (the lifespan has not started it)."""


@dataclass(frozen=True, slots=True)
class _CachedTrending:
    category: str | None
    payload: Mapping[str, Any]
    as_of: int
    meta: Meta


class Handlers:
    def __init__(self, reader: Reader | None, now_ms: Callable[[], int]) -> None:
        self.reader = reader
        self._now_ms = now_ms
        self._trending_cache: Lru[str | None, _CachedTrending] = Lru(TRENDING_CACHE_SIZE)
        self._redis_ok = True

    # ---- probes -------------------------------------------------------------------------
    async def healthz(self, params: Mapping[str, str], query: Query) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, params: Mapping[str, str], query: Query) -> Response:
        try:
            reader = self._reader()
            await reader.ping()
            stamps = await reader.freshness()
        except (redis.exceptions.RedisError, OSError, ValueError) as exc:
            return json_response({"status": "unavailable", "reason": f"redis: {exc}"}, 503)
        now = self._now_ms()
        return json_response({
            "status": "ready",
            "freshness": {w: {"as_of_ms": t, "age_ms": now - t} for w, t in sorted(stamps.items())},
        })

    # ---- data endpoints -----------------------------------------------------------------
    async def trending(self, params: Mapping[str, str], query: Query) -> Response:
        k, category = query.k(), query.category()
        now = self._now_ms()
        try:
            doc = await self._trending(now, category, k, frozenset(), fallback=None,
                                       global_if_missing=False)
        except UNAVAILABLE as exc:
            return self._degraded(exc, now, category, k, frozenset(), fallback=None)
        return json_response(doc)

    async def similar(self, params: Mapping[str, str], query: Query) -> Response:
        return await self._neighbours(params, query, similar_key, A.SIMILAR, "often viewed with")

    async def bought_together(self, params: Mapping[str, str], query: Query) -> Response:
        return await self._neighbours(params, query, bought_key, A.BOUGHT_TOGETHER,
                                      "often bought with")

    async def session_recommendations(self, params: Mapping[str, str],
                                      query: Query) -> Response:
        user = entity_id("user_id", params["user_id"])
        k, exclude = query.k(), query.exclude()
        now = self._now_ms()
        try:
            doc = await self._session(now, user, k, exclude)
        except UNAVAILABLE as exc:
            return self._degraded(exc, now, None, k, exclude,
                                  fallback=A.FALLBACK_REDIS_UNAVAILABLE)
        return json_response(doc)

    # ---- steps --------------------------------------------------------------------------
    async def _session(self, now: int, user: str, k: int,
                       exclude: frozenset[str]) -> dict[str, Any]:
        (env,) = await self._get([session_key(user)])
        session = env.data if env is not None else None
        if env is None or not session or not session.get("events"):
            seen = A.session_seen(session) if session else frozenset()
            return await self._trending(now, None, k, exclude | seen,
                                        fallback=A.FALLBACK_NO_SESSION)
        recent = recent_items(session, DEFAULT_RECENT)
        found = await self._get([similar_key(i) for i in recent] + [item_key(i) for i in recent])
        lists, metas = found[:len(recent)], found[len(recent):]
        neighbours = {i: e.data.get("items", ()) for i, e in zip(recent, lists, strict=True)
                      if e is not None}
        titles = {i: A.title_of(i, m.data if m is not None else None)
                  for i, m in zip(recent, metas, strict=True)}
        recs = A.session_recs(session, neighbours, titles, limit=k + DELETED_SLACK,
                              recent=DEFAULT_RECENT, exclude=exclude)
        if not recs:
            return await self._trending(now, None, k, exclude | A.session_seen(session),
                                        fallback=A.FALLBACK_NO_CANDIDATES,
                                        extra_times=(env.as_of,))
        times = (env.as_of, *(e.as_of for e in lists if e is not None))
        doc, _ = await self._finish(now, A.Answer(tuple(recs), A.SESSION, times), k)
        return doc

    async def _neighbours(self, params: Mapping[str, str], query: Query,
                          key_of: Callable[[str], str], source: str, verb: str) -> Response:
        item = entity_id("item_id", params["item_id"])
        k, exclude = query.k(), query.exclude()
        now = self._now_ms()
        try:
            lst, meta_env = await self._get([key_of(item), item_key(item)])
            meta = meta_env.data if meta_env is not None else None
            if (lst is None and meta is None) or A.is_deleted(meta):
                raise ApiError(404, NOT_FOUND, f"unknown item {item!r}", item_id=item)
            excluded = exclude | {item}
            recs = [] if lst is None else A.ranked_list(
                lst.data, source=source, reason=f"{verb} {A.title_of(item, meta)}",
                now_ms=now, limit=k + DELETED_SLACK, exclude=excluded)
            if recs and lst is not None:
                doc, _ = await self._finish(now, A.Answer(tuple(recs), source, (lst.as_of,)), k)
            else:
                category = meta.get("category") if meta else None
                doc = await self._trending(now, str(category) if category else None, k,
                                           excluded, fallback=A.FALLBACK_NO_NEIGHBOURS)
        except UNAVAILABLE as exc:
            return self._degraded(exc, now, None, k, exclude | {item},
                                  fallback=A.FALLBACK_REDIS_UNAVAILABLE)
        return json_response(doc)

    async def _trending(self, now: int, category: str | None, k: int, exclude: frozenset[str],
                        *,
                        fallback: str | None, global_if_missing: bool = True,
                        extra_times: tuple[int, ...] = ()) -> dict[str, Any]:
        """Trending in ``category`` (or global); a missing category list falls back to the
        global one when ``global_if_missing`` (both are read in the same round trip)."""
        keys = [trending_key(category)]
        if category is not None and global_if_missing:
            keys.append(trending_key(None))
        envs = await self._get(keys)
        scope, env = category, envs[0]
        if env is None and len(envs) > 1:
            scope, env = None, envs[1]
        if env is None:
            return A.render(A.Answer((), A.TRENDING, extra_times, fallback), {}, now)
        recs = A.ranked_list(env.data, source=A.TRENDING, reason=A.trending_reason(scope),
                             now_ms=now, limit=k + DELETED_SLACK, exclude=exclude)
        doc, meta = await self._finish(
            now, A.Answer(tuple(recs), A.TRENDING, (env.as_of, *extra_times), fallback), k)
        self._trending_cache.put(scope, _CachedTrending(scope, env.data, env.as_of, meta))
        return doc

    async def _finish(self, now: int, answer: A.Answer, k: int) -> tuple[dict[str, Any], Meta]:
        """Enrich with metadata (one MGET), drop deleted items, keep ``k``, render."""
        live, meta = await self._enrich(answer.recs, k)
        kept = A.Answer(tuple(live), answer.source, answer.event_times, answer.fallback)
        return A.render(kept, meta, now), meta

    async def _enrich(self, recs: Sequence[A.Rec], k: int) -> tuple[list[A.Rec], Meta]:
        """One MGET of the candidates' metadata; deleted items dropped, the first ``k`` kept."""
        if not recs:
            return [], {}
        envs = await self._get([item_key(r.item_id) for r in recs])
        meta: Meta = {r.item_id: (e.data if e is not None else None)
                      for r, e in zip(recs, envs, strict=True)}
        return A.keep_live(recs, meta, k), meta

    def _degraded(self, exc: BaseException, now: int, category: str | None, k: int,
                  exclude: frozenset[str], *, fallback: str | None) -> Response:
        if self._redis_ok:
            log.warning("serving: redis unavailable, answering degraded error=%r", exc)
            self._redis_ok = False
        cached = self._trending_cache.get(category)
        if cached is None and category is not None:
            cached = self._trending_cache.get(None)
        if cached is None:
            return json_response(A.render(A.Answer((), A.TRENDING, (), fallback, degraded=True),
                                          {}, now))
        recs = A.ranked_list(cached.payload, source=A.TRENDING,
                             reason=A.trending_reason(cached.category), now_ms=now,
                             limit=k + DELETED_SLACK, exclude=exclude)
        live = A.keep_live(recs, cached.meta, k)
        answer = A.Answer(tuple(live), A.TRENDING, (cached.as_of,), fallback, degraded=True)
        return json_response(A.render(answer, cached.meta, now))

    async def _get(self, keys: Sequence[str]) -> list[Envelope | None]:
        found = await self._reader().get_many(keys)
        if not self._redis_ok:
            log.info("serving: redis reachable again")
            self._redis_ok = True
        return found

    def _reader(self) -> Reader:
        if self.reader is None:
            raise RedisUnavailable("serving: no Redis reader open (lifespan not started)")
        return self.reader


def build_router(h: Handlers) -> Router[Handler]:
    router: Router[Handler] = Router()
    router.add("GET", "/healthz", h.healthz)
    router.add("GET", "/readyz", h.readyz)
    router.add("GET", "/v1/trending", h.trending)
    router.add("GET", "/v1/items/{item_id}/similar", h.similar)
    router.add("GET", "/v1/items/{item_id}/bought-together", h.bought_together)
    router.add("GET", "/v1/users/{user_id}/session-recommendations", h.session_recommendations)
    return router
