"""The endpoints: each fetches what it needs from Redis in as few round trips as it can, builds
a :class:`~serving.handlers.Draft` with the pure functions of :mod:`serving.pipeline` and
:mod:`operators.blend`, and lets :meth:`~serving.handlers.Core.finish` apply the rules, explain
and log the impression.

Round trips (MGET each; shared lists and metadata come from the in-process cache when younger
than its bound, so most requests need only the first):

* homepage: the session; then the neighbour lists, metadata of the recent items and the trending
  lists (global, the request's context, the asked category), and the recent items' second
  similar-items lists when they are on and the learned order is served; then the category list
  of the last item (these three: :mod:`serving.homepage_reads`, shared with the blend learner);
  then the metadata of the candidates.
* session ("because you viewed"): the session; then the similar-items lists; then metadata.
* similar / bought together: the list and the item; then metadata.
* cart: the lists of the cart items and their metadata; then metadata.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import redis.exceptions

from operators import learned_blend
from operators.blend import BOUGHT_TOGETHER, TRENDING, BlendParams, Fill, Shares
from operators.candidates import recent_items
from recs.readings import targets_of
from recs.settings import Settings
from serving import homepage_reads, ingest
from serving import pipeline as P
from serving.answers import session_seen
from serving.auth import Access
from serving.dashboard import add_dashboard_routes
from serving.demo_backend import DemoBackend
from serving.guard import Guard
from serving.handlers import (
    FALLBACK_NO_CANDIDATES,
    FALLBACK_NO_NEIGHBOURS,
    FALLBACK_NO_SESSION,
    UNAVAILABLE,
    Core,
    Draft,
    Options,
    ok,
    rank_clock,
)
from serving.homepage_reads import category_of, learned_events
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.models import Header
from serving.openapi import docs_page, openapi_document
from serving.page_answers import add_page_answer_route
from serving.pages import add_page_routes
from serving.params import entity_id, id_list, invalid, json_object
from serving.publish import PublishUnavailable
from serving.request import Request
from serving.responses import NOT_FOUND, ApiError, Response, json_response
from serving.router import Router
from state.keys import bought_key, item_key, itemstats_key, session_key, similar_key, trending_key
from state.records import Envelope

Handler = Callable[[Request], Awaitable[Response]]
Meta = homepage_reads.Meta
SESSION_PARAMS: Final = BlendParams(recent=5, recency_decay=0.7, bought_weight=0.0)
EXPLORE_CANDIDATES: Final = 20  # newest items checked for "no interactions yet" per answer

# Who may call each route (serving.guard), by handler name. A route missing here is PRIVATE:
# an endpoint added without a rule needs a server key (tests/serving/test_auth_walk.py walks
# every route of the OpenAPI document and of the router against this table).
ACCESS: Final[dict[str, Access]] = {
    "healthz": Access.OPEN, "readyz": Access.OPEN,
    "home": Access.OPEN, "storefront": Access.OPEN, "static": Access.OPEN,
    "demo_token": Access.OPEN,
    "trending": Access.ITEMS, "similar": Access.ITEMS, "bought_together": Access.ITEMS,
    "homepage": Access.USER, "session_recommendations": Access.USER, "page": Access.USER,
    "cart": Access.USER, "events": Access.USER,
    "metrics_text": Access.PRIVATE, "openapi": Access.PRIVATE, "docs": Access.PRIVATE,
    "dashboard": Access.PRIVATE, "dashboard_data": Access.PRIVATE,
}


class Handlers(Core):
    # ---- probes and documents -----------------------------------------------------------
    async def healthz(self, req: Request) -> Response:
        return json_response({"status": "ok"})

    async def readyz(self, req: Request) -> Response:
        try:
            reader = self.fetch.open_reader()
            await reader.ping()
            stamps = await reader.freshness()
        except (*UNAVAILABLE, redis.exceptions.RedisError, ValueError) as exc:
            return json_response({"status": "unavailable", "reason": f"redis: {exc}"}, 503)
        now = self.now_ms()
        return json_response({
            "status": "ready",
            "freshness": {w: {"as_of_ms": t, "age_ms": now - t} for w, t in sorted(stamps.items())},
        })

    async def metrics_text(self, req: Request) -> Response:
        return Response(200, self.metrics.render(), content_type=METRICS_CONTENT_TYPE)

    async def openapi(self, req: Request) -> Response:
        return json_response(openapi_document())

    async def docs(self, req: Request) -> Response:
        return Response(200, docs_page(), content_type=b"text/html; charset=utf-8")

    # ---- the recommendation endpoints -----------------------------------------------------
    async def _answer(self, endpoint: str, placement: str, req: Request, opts: Options,
                      build: Callable[[Options, int], Awaitable[Draft]],
                      degraded_exclude: frozenset[str] = frozenset()) -> Response:
        return ok(await self.answer_doc(placement, opts, build, self.now_ms(),
                                        degraded_exclude))

    async def answer_doc(self, placement: str, opts: Options,
                         build: Callable[[Options, int], Awaitable[Draft]], now: int,
                         degraded_exclude: frozenset[str] = frozenset(),
                         shown: list[str] | None = None) -> dict[str, Any]:
        """One placement's answer document (degraded when Redis fails); its item ids are
        added to ``shown`` when given."""
        rec_id = self.rec_ids()
        variant = self.assign(placement, opts, rec_id)

        async def drafted(o: Options, now: int) -> Draft:
            draft = await build(o, now)
            if variant.strategy == TRENDING and placement == "homepage":
                draft = await self._trending_draft(o, now, placement, exclude=o.exclude)
            return draft

        try:
            frozen = await self.answer(placement, opts, variant, now, drafted)
            return self.deliver(frozen, opts, variant, rec_id, now, shown=shown)
        except UNAVAILABLE as exc:
            return await self.degraded(exc, placement, opts, variant, rec_id, now,
                                       exclude=degraded_exclude, shown=shown)

    async def trending(self, req: Request) -> Response:
        opts = Options.of(req)

        async def build(o: Options, now: int) -> Draft:
            return await self._trending_draft(o, now, "trending", global_if_missing=False)

        return await self._answer("trending", "trending", req, opts, build)

    async def similar(self, req: Request) -> Response:
        return await self._neighbours(req, "similar", similar_key, P.SIMILAR)

    async def bought_together(self, req: Request) -> Response:
        return await self._neighbours(req, "bought_together", bought_key, BOUGHT_TOGETHER)

    async def _neighbours(self, req: Request, placement: str, key_of: Callable[[str], str],
                          source: str) -> Response:
        item = entity_id("item_id", req.params["item_id"])
        opts = Options.of(req)

        async def build(o: Options, now: int) -> Draft:
            lst, meta_env = await self.get([key_of(item), item_key(item)])
            meta = meta_env.data if meta_env is not None else None
            # similar items: the learned model's neighbours too (a new item with only a
            # content vector has no co-visitation yet)
            learned = self.models.neighbours(item, o.pool, o.exclude) \
                if source == P.SIMILAR else []
            if (lst is None and meta is None and not learned) or (meta and meta.get("deleted")):
                raise ApiError(404, NOT_FOUND, f"unknown item {item!r}", item_id=item)
            excluded = o.exclude | {item}
            cands = [] if lst is None else P.from_list(lst.data, source, item, now, o.pool,
                                                       excluded)
            times = [] if lst is None or not cands else [lst.as_of]
            if learned:
                mf = self.models.mf
                cands = P.with_vector_neighbours(cands, learned, because=_model_version(mf),
                                                 limit=o.pool)
                if mf is not None:
                    times.append(mf.as_of)
            if cands:
                return Draft(placement, cands, times, because=[item], meta={item: meta})
            category = meta.get("category") if meta else None
            fb = Options(o.k, excluded, str(category) if category else None, o.context,
                         o.explain, o.user)
            draft = await self._trending_draft(fb, now, placement, exclude=excluded)
            draft.fallback = FALLBACK_NO_NEIGHBOURS
            return draft

        return await self._answer(placement, placement, req, opts, build,
                                  degraded_exclude=frozenset({item}))

    async def session_recommendations(self, req: Request) -> Response:
        user = entity_id("user_id", req.params["user_id"])
        opts = Options.of(req, user)

        async def build(o: Options, now: int) -> Draft:
            return await self._session_draft(o, now, user)

        return await self._answer("session", "session", req, opts, build)

    async def _session_draft(self, o: Options, now: int, user: str) -> Draft:
        (env,) = await self.get([session_key(user)], cache=False)
        session = env.data if env is not None else None
        if not session or not session.get("events"):
            seen = session_seen(session)
            draft = await self._trending_draft(o, now, "session", exclude=o.exclude | seen)
            draft.fallback, draft.session = FALLBACK_NO_SESSION, session
            return draft
        recent = recent_items(session, SESSION_PARAMS.recent)
        found = await self.get([similar_key(i) for i in recent])
        lists = {i: self.shares(e) for i, e in zip(recent, found, strict=True)
                 if e is not None}
        cands = self.kernels.blend(session, lists, {}, (), SESSION_PARAMS, k=o.pool,
                                   exclude=o.exclude)
        if not cands:
            draft = await self._trending_draft(o, now, "session",
                                               exclude=o.exclude | session_seen(session))
            draft.fallback, draft.session = FALLBACK_NO_CANDIDATES, session
            draft.times.append(env.as_of)
            return draft
        times = [env.as_of, *(e.as_of for e in found if e is not None)]
        return Draft("session", cands, times, session=session, because=recent)

    async def homepage(self, req: Request) -> Response:
        user = entity_id("user_id", req.params["user_id"])
        opts = Options.of(req, user)

        async def build(o: Options, now: int) -> Draft:
            return await self._homepage_draft(o, now, user)

        return await self._answer("homepage", "homepage", req, opts, build)

    async def _homepage_draft(self, o: Options, now: int, user: str) -> Draft:
        params = self.experiments.assign("homepage", user).rules.blend
        # one model for the whole request (the refresher may swap it while reads are awaited);
        # the second similar-items lists only feed the learned order's features, so they are
        # read only when that order is served
        model, cfg = self.models.blend, self.models.blend_cfg
        second = self.similar_recent and model is not None and learned_blend.is_warm(model, cfg)
        inputs = await self._drive(homepage_reads.reads(
            user, params, category=o.category, ctx_keys=self._context_keys(o, now),
            exclude=o.exclude, pool=o.pool, models=self.models, derive=self,
            similar_recent=second))
        uvec = inputs.uvec
        # the age features read the ranking clock (the minute, as the ranker does), so the
        # answer stays cacheable for that minute: a freshness halving per hour moves by at most
        # 1.2 % within it
        cands = learned_blend.serve(
            model, cfg, inputs.session, inputs.similar, inputs.bought, inputs.fills, params,
            k=o.pool, exclude=o.exclude, vector=inputs.vector,
            vector_because=_model_version(uvec), vector_events=learned_events(uvec),
            similar_recent=inputs.similar_recent, now=rank_clock(now),
            blend_fn=self.kernels.blend,
            features_fn=self.kernels.features, order_fn=self.kernels.learned_order)
        times = inputs.times
        if inputs.vector and uvec is not None:
            times.append(uvec.as_of)
        fallback = None if inputs.recent or inputs.vector else FALLBACK_NO_SESSION
        return Draft("homepage", cands, times, fallback=fallback, session=inputs.session,
                     because=inputs.recent, meta=dict(inputs.metas),
                     explore_pool=await self._cold_new_items(inputs.new_env))

    async def _drive(self, gen: homepage_reads.Reads) -> homepage_reads.HomepageInputs:
        """Run a sans-IO read plan (:mod:`serving.homepage_reads`) through the cached reader."""
        read = next(gen)
        while True:
            found = await self.get(read.keys, cache=read.cache)
            try:
                read = gen.send(found)
            except StopIteration as done:
                inputs: homepage_reads.HomepageInputs = done.value
                return inputs

    async def _cold_new_items(self, new_env: Envelope | None) -> list[str]:
        """The newest items nobody has interacted with yet (no ``itemstats`` value, or no
        popularity): what the exploration slot may show."""
        if new_env is None:
            return []
        newest = [e[0] for e in new_env.data["items"][:EXPLORE_CANDIDATES]]
        stats = await self.get([itemstats_key(i) for i in newest])
        return [i for i, st in zip(newest, stats, strict=True)
                if st is None or st.data.get("log_pop") is None]

    def shares(self, env: Envelope) -> Shares:
        """A neighbour list as :func:`operators.blend.shares`, once per published version."""
        return self.fetch.derived([env], "shares", lambda: homepage_reads.list_shares(env))

    def context_fill(self, ctx_keys: Sequence[tuple[str, str]],
                     ctx_envs: Sequence[Envelope | None], global_env: Envelope | None) -> Fill:
        """:func:`serving.homepage_reads.context_fill`, once per set of published versions
        (every user with the same context shares it)."""
        return self.fetch.derived([*ctx_envs, global_env], "context:" + ",".join(
            scope for scope, _ in ctx_keys),
            lambda: homepage_reads.context_fill(ctx_keys, ctx_envs, global_env))

    def _context_keys(self, o: Options, now: int) -> list[tuple[str, str]]:
        return homepage_reads.context_keys(o.context, now)

    async def cart(self, req: Request) -> Response:
        body = json_object(req.body)
        cart = id_list(body, "items")
        user = body.get("user_id")
        if user is not None:
            if not isinstance(user, str):
                raise invalid("user_id", str(user), "a string")
            user = entity_id("user_id", user)
        req.principal.check_user(user)
        base = Options.of(req, user)
        extra = id_list(body, "exclude", required=False)
        opts = Options(base.k, base.exclude | frozenset(extra), base.category, base.context,
                       base.explain, base.user)

        async def build(o: Options, now: int) -> Draft:
            n = len(cart)
            found = await self.get([*(bought_key(i) for i in cart),
                                    *(similar_key(i) for i in cart),
                                    *(item_key(i) for i in cart)])
            bought = {i: e.data.get("items", ()) for i, e in zip(cart, found[:n], strict=True)
                      if e is not None}
            similar = {i: e.data.get("items", ()) for i, e in zip(cart, found[n:2 * n],
                                                                  strict=True) if e is not None}
            metas: Meta = {i: (e.data if e is not None else None)
                           for i, e in zip(cart, found[2 * n:], strict=True)}
            cands = P.cart_candidates(cart, bought, similar, pool=o.pool, exclude=o.exclude)
            times = [e.as_of for e in found[:2 * n] if e is not None]
            if cands:
                return Draft("cart", cands, times, because=cart, meta=dict(metas))
            cats = [c for c in (category_of(metas.get(i)) for i in cart) if c is not None]
            fb = Options(o.k, o.exclude | set(cart), cats[0] if cats else None, o.context,
                         o.explain, o.user)
            draft = await self._trending_draft(fb, now, "cart", exclude=fb.exclude)
            draft.fallback = FALLBACK_NO_NEIGHBOURS
            return draft

        return await self._answer("cart", "cart", req, opts, build,
                                  degraded_exclude=frozenset(cart))

    async def _trending_draft(self, o: Options, now: int, placement: str, *,
                              exclude: frozenset[str] | None = None,
                              global_if_missing: bool = True) -> Draft:
        """Trending in the asked category (falling back to global when ``global_if_missing``);
        with a context and no category, the blend of :func:`serving.pipeline.context_fill`."""
        excluded = o.exclude if exclude is None else exclude
        if o.category is not None:
            keys = [trending_key(o.category)] + ([trending_key(None)] if global_if_missing else [])
            envs = await self.get(keys)
            for scope, env in zip([o.category, None], envs, strict=False):
                if env is not None:
                    because = scope if scope is not None else "global"
                    return Draft(placement, P.from_list(env.data, TRENDING, because, now,
                                                        o.pool, excluded), [env.as_of],
                                 timeless=False)
            return Draft(placement, [])
        if o.context:
            ctx_keys = self._context_keys(o, now)
            envs = await self.get([trending_key(None), *(k for _, k in ctx_keys)])
            if any(e is not None for e in envs[1:]):
                fill = self.context_fill(ctx_keys, envs[1:], envs[0])
                cands = self.kernels.blend(None, {}, {}, [fill], BlendParams(), k=o.pool,
                                           exclude=excluded)
                return Draft(placement, cands, [e.as_of for e in envs if e is not None])
        (env,) = await self.get([trending_key(None)])
        if env is None:
            return Draft(placement, [])
        return Draft(placement, P.from_list(env.data, TRENDING, "global", now, o.pool, excluded),
                     [env.as_of], timeless=False)

    # ---- ingestion ------------------------------------------------------------------------
    async def events(self, req: Request) -> Response:
        events, errors = ingest.validate(req.body)
        for index, event in enumerate(events):  # a browser's token: its own user and session
            req.principal.check_event(event.user_id, event.session_id, index)
        if errors:
            self.metrics.rejected.inc(max(1, len({e["index"] for e in errors})))
            return json_response({"error": {
                "code": "invalid_events",
                "message": f"{len(errors)} invalid field(s); nothing was published",
                "errors": errors}}, 422)
        if self.publisher is None:
            return json_response({"error": {"code": "unavailable",
                                            "message": "no Kafka configured"}}, 503)
        try:
            await self.publisher.publish([ingest.record(e) for e in events], wait=True)
        except PublishUnavailable as exc:
            return json_response({"error": {"code": "unavailable", "message": str(exc)}}, 503,
                                 ((b"retry-after", b"1"),))
        self.metrics.events.inc(len(events))
        return json_response({"accepted": len(events)}, 202)


def _model_version(header: Envelope | Header | None) -> str:
    """What a learned source names as its cause: the model version behind it."""
    return f"model v{header.version}" if header is not None else "model"


def build_router(h: Handlers, settings: Settings, guard: Guard) -> Router[Handler]:
    router: Router[Handler] = Router()
    router.add("GET", "/healthz", h.healthz)
    router.add("GET", "/readyz", h.readyz)
    router.add("GET", "/metrics", h.metrics_text)
    router.add("GET", "/openapi.json", h.openapi)
    router.add("GET", "/docs", h.docs)
    router.add("GET", "/v1/trending", h.trending)
    router.add("GET", "/v1/items/{item_id}/similar", h.similar)
    router.add("GET", "/v1/items/{item_id}/bought-together", h.bought_together)
    router.add("GET", "/v1/users/{user_id}/session-recommendations", h.session_recommendations)
    router.add("GET", "/v1/users/{user_id}/recommendations", h.homepage)
    router.add("POST", "/v1/cart/recommendations", h.cart)
    router.add("POST", "/v1/events", h.events)
    add_page_answer_route(router, h)
    add_page_routes(router)
    add_dashboard_routes(router, h, targets_of(settings))
    if settings.demo_storefront:
        demo = DemoBackend(guard.keys, settings.demo_public_key, h.now_ms, guard.monotonic)
        router.add("POST", "/demo/token", demo.demo_token)
    return router

