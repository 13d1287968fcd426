"""What every recommendation endpoint shares: the request options, the A/B assignment, the
finishing step (metadata, rules, exploration, explanation, ``rec_id``), impression logging and
the degraded answer.

An endpoint builds a :class:`Draft` (scored candidates with provenance, the event times of the
data behind them, a fallback if it had to use one) and hands it to :meth:`Core.finish`; it never
renders JSON itself. When Redis is unreachable or slower than the budget, :meth:`Core.degraded`
answers at once from the in-process cache (``"degraded": true``), never with a 500.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
import redis.exceptions

from operators.blend import TRENDING, Evidence, Scored
from serving import native
from serving import pipeline as P
from serving.answer_cache import (
    CACHED_PLACEMENTS,
    DEFAULT_CAPACITY,
    AnswerCache,
    Entry,
    Exploring,
    Frozen,
    answer_key,
)
from serving.answers import freshness
from serving.cache import Lru
from serving.experiments import Experiments, Variant
from serving.fetch import RECORDING, Fetcher, Reader, Recording, RedisUnavailable
from serving.metrics import Metrics
from serving.models import DEFAULT_REFRESH_MS, RANKER_ABSENT, ModelRefresher
from serving.native import Kernels
from serving.publish import Publisher
from serving.ranking import (
    RANKER_OFF,
    RankerPass,
    note_moves,
    rank_candidates,
    ranker_context,
)
from serving.request import Request
from serving.responses import Response, json_response
from serving.rules import Ranked, RerankInput
from state.keys import item_key, trending_key

log = logging.getLogger("serving")

# errors that mean "Redis is not reachable now (or not in time)", as opposed to a bug
UNAVAILABLE: Final = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError,
                      TimeoutError, RedisUnavailable)
POOL_FACTOR: Final = 2   # candidates ranked per slot asked for (rules drop and reorder some)
POOL_SLACK: Final = 5
CONTEXT_DIMENSIONS: Final = ("device", "country", "page")
REPEAT_MS: Final = 60_000     # an identical answer within this is not a new impression
RANK_CLOCK_MS: Final = 60_000  # the ranker's features and the rules read time at this step
SHOWN_USERS: Final = 100_000  # (user, placement) pairs remembered for that

FALLBACK_NO_SESSION: Final = "no_session"
FALLBACK_NO_CANDIDATES: Final = "no_candidates"
FALLBACK_NO_NEIGHBOURS: Final = "no_neighbours"
FALLBACK_REDIS_UNAVAILABLE: Final = "redis_unavailable"


@dataclass(frozen=True, slots=True)
class Options:
    k: int
    exclude: frozenset[str]
    category: str | None
    context: Mapping[str, str]
    explain: bool
    user: str | None

    @classmethod
    def of(cls, req: Request, user: str | None = None) -> Options:
        q = req.query
        return cls(q.k(), q.exclude(), q.category(), q.context(), q.flag("explain"),
                   user if user is not None else q.user_id())

    @property
    def pool(self) -> int:
        return self.k * POOL_FACTOR + POOL_SLACK


@dataclass(slots=True)
class Draft:
    """Candidates of one answer before the rules, with what is needed to finish it."""

    placement: str
    cands: list[Scored]
    times: list[int] = field(default_factory=list)
    fallback: str | None = None
    session: Mapping[str, Any] | None = None
    because: Sequence[str] = ()        # items named in reasons (their titles are fetched)
    explore_pool: Sequence[str] = ()   # new or cold items the exploration slot may show
    meta: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)  # known already
    timeless: bool = True  # False when scores were decayed to the request's millisecond


def rank_clock(now_ms: int) -> int:
    """The time the ranker's features (hour, item age) and the rules' new-arrival boost read:
    ``now`` rounded up to :data:`RANK_CLOCK_MS`, so that an answer stays the same for a minute
    while its data does (and can be cached, :mod:`serving.answer_cache`). Rounded up, so an
    item first seen a moment ago is already seen.

    >>> rank_clock(60_000), rank_clock(60_001), rank_clock(119_999)
    (60000, 120000, 120000)
    """
    return now_ms + (-now_ms % RANK_CLOCK_MS)


def new_rec_id() -> str:
    return os.urandom(12).hex()


class Core:
    def __init__(self, reader: Reader | None, now_ms: Callable[[], int], *,
                 experiments: Experiments, publisher: Publisher | None,
                 cache_ttl_ms: int = 1000, budget_s: float = 0.1,
                 model_refresh_ms: int = DEFAULT_REFRESH_MS,
                 answer_cache: int = DEFAULT_CAPACITY,
                 kernels: Kernels | None = None, similar_recent: bool = False) -> None:
        self.kernels = kernels if kernels is not None else native.python()
        # the second similar-items lists are published (Settings.similar_recent_on): the
        # homepage reads them for the learned blend's simr* features
        self.similar_recent = similar_recent
        self.fetch = Fetcher(reader, ttl_ms=cache_ttl_ms, budget_s=budget_s)
        self.answers = AnswerCache(answer_cache)
        self.rec_ids: Callable[[], str] = new_rec_id
        self.now_ms = now_ms
        self.experiments = experiments
        self.publisher = publisher
        self.models = ModelRefresher(refresh_ms=model_refresh_ms)
        self.metrics = Metrics(lambda: (self.fetch.hits, self.fetch.misses),
                               models=self.models.gauges, now_ms=now_ms,
                               answers=lambda: (self.answers.hits + self.answers.shared,
                                                self.answers.misses, self.answers.stale),
                               core=self.kernels.name)
        self._redis_ok = True
        self._last_shown: Lru[tuple[str, str], tuple[tuple[str, ...], int]] = Lru(SHOWN_USERS)

    @property
    def reader(self) -> Reader | None:
        return self.fetch.reader

    @reader.setter
    def reader(self, value: Reader | None) -> None:
        self.fetch.reader = value

    async def get(self, keys: Sequence[str], *, cache: bool = True) -> list[Any]:
        found = await self.fetch.get(keys, cache=cache)
        if not self._redis_ok:
            log.info("serving: redis reachable again")
            self._redis_ok = True
            self.metrics.up.set(1)
        return found

    def assign(self, placement: str, opts: Options, rec_id: str) -> Variant:
        return self.experiments.assign(placement, opts.user or rec_id)

    # ---- answering ------------------------------------------------------------------------
    async def answer(self, placement: str, opts: Options, variant: Variant, now: int,
                     build: Callable[[Options, int], Awaitable[Draft]]) -> Frozen:
        """The answer before its per-request steps: from the answer cache when nothing behind
        the cached one changed (:mod:`serving.answer_cache`), else built, finished and cached."""
        cache = self.answers
        key = None
        rec = Recording()
        if cache.enabled and placement in CACHED_PLACEMENTS:
            key = answer_key(placement, opts.user, opts.k, opts.exclude, opts.category,
                             opts.context, opts.explain, variant.label, rank_clock(now))
            running = cache.running.get(key)
            if running is not None:  # the same answer is being computed: share it
                cache.shared += 1
                return await asyncio.shield(running)
            entry = cache.get(key)
            if entry is not None:
                if entry.models == self.models.generation and \
                        await self.fetch.unchanged(entry.deps, rec):
                    cache.hits += 1
                    return entry.frozen
                cache.stale += 1
            cache.misses += 1
        if key is None:
            return (await self._compute(opts, variant, now, build, rec))[0]
        fut: asyncio.Future[Frozen] = asyncio.get_running_loop().create_future()
        cache.running[key] = fut
        try:
            frozen, draft, models = await self._compute(opts, variant, now, build, rec)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: only the waiters re-raise it
            raise
        finally:
            # a twin that checked the cache while this one did (both awaited the check) may
            # have registered itself after this one: each removes its own future only
            if cache.running.get(key) is fut:
                del cache.running[key]
        fut.set_result(frozen)
        if draft.timeless:
            cache.put(key, Entry(rec.deps(), models, frozen))
        return frozen

    async def _compute(self, opts: Options, variant: Variant, now: int,
                       build: Callable[[Options, int], Awaitable[Draft]],
                       rec: Recording) -> tuple[Frozen, Draft, int]:
        models = self.models.generation
        token = RECORDING.set(rec)
        try:
            draft = await build(opts, now)
            return await self.compose(draft, opts, variant, now), draft, models
        finally:
            RECORDING.reset(token)

    async def finish(self, draft: Draft, opts: Options, variant: Variant, rec_id: str,
                     now: int, *, degraded: bool = False,
                     shown: list[str] | None = None) -> dict[str, Any]:
        """Compose and deliver in one go (no answer cache)."""
        frozen = await self.compose(draft, opts, variant, now, degraded=degraded)
        return self.deliver(frozen, opts, variant, rec_id, now, shown=shown)

    async def compose(self, draft: Draft, opts: Options, variant: Variant, now: int, *,
                      degraded: bool = False) -> Frozen:
        """Metadata, the ranker, the rules and the rendering of the items: everything of an
        answer that does not depend on the request's ``rec_id`` or exact time."""
        rules = variant.rules
        ids = [c.item_id for c in draft.cands[:opts.pool]]
        wanted = [i for i in dict.fromkeys([*ids, *draft.because, *rules.sponsored,
                                            *draft.explore_pool]) if i not in draft.meta]
        meta = dict(draft.meta)
        if wanted:
            found = self.fetch.stale([item_key(i) for i in wanted]) if degraded else \
                await self.get([item_key(i) for i in wanted])
            for item_id, env in zip(wanted, found or [None] * len(wanted), strict=True):
                meta[item_id] = env.data if env is not None else None
        clock = rank_clock(now)
        session = draft.session or {}
        shown = {s[0]: int(s[1]) for s in session.get("shown", ())}
        ranking = self._rank(draft, opts, meta, clock)
        ranked = self.kernels.rerank(ranking.cands, meta, rules, RerankInput(
            k=opts.k, placement=draft.placement, now_ms=clock, exclude=opts.exclude,
            purchased=session.get("purchased", ()), shown=shown,
            interacted={e[0] for e in session.get("events", ())}))
        note_moves(ranked, ranking)
        titles = P.titles_of(meta)
        items = [P.render_item(r, meta.get(r.item_id), titles, place, explain=opts.explain,
                               ranking=ranking)
                 for place, r in enumerate(ranked, start=1)]
        explore = None
        if draft.placement == "homepage" and rules.explore_slot and draft.explore_pool and \
                rules.explore_epsilon > 0 and ranked:
            live = [i for i in draft.explore_pool
                    if not _unservable(meta.get(i)) and i not in opts.exclude]
            fresh = P.explore_pool(ranked, live)
            if fresh:
                place = min(rules.explore_slot, len(ranked))
                score = ranked[place - 1].score
                explore = Exploring(rules.explore_slot, place, rules.explore_epsilon, tuple(
                    (i, orjson.dumps(P.render_item(
                        _explored(i, score, place, rules.explore_slot), meta.get(i), titles,
                        place, explain=opts.explain, ranking=ranking)))
                    for i in fresh))
        session_id = session.get("session_id")
        return Frozen(draft.placement, tuple(orjson.dumps(i) for i in items),
                      tuple(i["item_id"] for i in items), tuple(i["source"] for i in items),
                      tuple(draft.times), draft.fallback, degraded, ranking.state,
                      str(session_id) if session_id else None, explore)

    def deliver(self, frozen: Frozen, opts: Options, variant: Variant, rec_id: str,
                now: int, *, shown: list[str] | None = None) -> dict[str, Any]:
        """The per-request steps: exploration, ``rec_id``, freshness, metrics, impression.
        The item ids answered are added to ``shown`` when given."""
        parts, ids, sources = frozen.parts, frozen.ids, frozen.sources
        exploration = None
        ex = frozen.explore
        if ex is not None:
            pick = P.explore_pick(len(ex.options), epsilon=ex.epsilon, unit=rec_id)
            if pick is not None:
                item_id, part = ex.options[pick]
                at = ex.place - 1
                parts = (*parts[:at], part, *parts[at + 1:])
                ids = (*ids[:at], item_id, *ids[at + 1:])
                sources = (*sources[:at], P.EXPLORE, *sources[at + 1:])
                exploration = P.Exploration(item_id, ex.place, ex.epsilon / len(ex.options))
        doc: dict[str, Any] = {
            "items": orjson.Fragment(b"[" + b",".join(parts) + b"]"),
            "source": sources[0] if sources else TRENDING,
            "freshness": freshness(frozen.times, now),
            "degraded": frozen.degraded,
            "rec_id": rec_id,
            "variant": variant.label,
            "ranker": frozen.ranker,
        }
        if frozen.fallback is not None:
            doc["fallback"] = frozen.fallback
        if exploration is not None:
            doc["exploration"] = {"item_id": exploration.item_id, "slot": exploration.slot,
                                  "propensity": exploration.propensity}
            self.metrics.explorations.inc()
        self._observe(frozen.placement, doc, ids, sources)
        if shown is not None:
            shown.extend(ids)
        if opts.user is not None and ids and self.publisher is not None and \
                self._new_impression(opts.user, frozen.placement, ids, now):
            self._log_impression(self.publisher, opts.user, opts, frozen, doc, ids, sources,
                                 now, exploration)
        return doc

    def _rank(self, draft: Draft, opts: Options, meta: Mapping[str, Mapping[str, Any] | None],
              now: int) -> RankerPass:
        """The learned ranker's order of the candidates the rules will see (see
        :mod:`serving.ranking`): reordered when the loaded ranker is warm, else unchanged."""
        models = self.models
        head = models.ranker_head
        return rank_candidates(
            models.ranker, models.ranker_state, head[0] if head is not None else None,
            draft.cands[:opts.pool], user=opts.user or "", placement=draft.placement,
            context=ranker_context(opts.context, draft.placement, CONTEXT_DIMENSIONS), ts=now,
            meta=meta, explain=opts.explain)

    def _new_impression(self, user: str, placement: str, shown: tuple[str, ...],
                        now: int) -> bool:
        """False when this user got the very same list here within :data:`REPEAT_MS`: a
        widget polling an unchanged answer does not show anything new, so it is not logged
        again (and rotation does not count it twice)."""
        last = self._last_shown.get((user, placement))
        if last is not None and last[0] == shown and 0 <= now - last[1] < REPEAT_MS:
            return False
        self._last_shown.put((user, placement), (shown, now))
        return True

    def _observe(self, placement: str, doc: Mapping[str, Any], ids: Sequence[str],
                 sources: Sequence[str]) -> None:
        m = self.metrics
        child = m.child
        child(m.variants, doc["variant"]).inc()
        if doc.get("fallback"):
            child(m.fallbacks, placement, doc["fallback"]).inc()
        if doc["degraded"]:
            child(m.degraded, placement).inc()
        by_source: dict[str, int] = {}
        for source in sources:
            by_source[source] = by_source.get(source, 0) + 1
        for source, n in by_source.items():
            child(m.served, source).inc(n)
        m.coverage.served(ids)
        age = doc["freshness"]["age_ms"]
        if age is not None:
            child(m.list_age, placement).observe(max(age, 0) / 1000.0)

    def _log_impression(self, publisher: Publisher, user: str, opts: Options, frozen: Frozen,
                        doc: Mapping[str, Any], ids: Sequence[str], sources: Sequence[str],
                        now: int, exploration: P.Exploration | None) -> None:
        """Log what this answer showed (``type: impression``) to the interactions topic."""
        context: dict[str, Any] = {k: v for k, v in opts.context.items()
                                   if k in CONTEXT_DIMENSIONS}
        context["placement"] = frozen.placement
        # the source of each shown item, in slot order: the ranker's candidate-source feature
        context["sources"] = ",".join(sources)
        if doc["ranker"] not in (RANKER_ABSENT, RANKER_OFF):  # did the ranker order the list
            context["ranker"] = doc["ranker"]
        if exploration is not None:
            context.update(explore_item=exploration.item_id, explore_slot=exploration.slot,
                           explore_propensity=exploration.propensity)
        event = {"event_id": f"imp-{doc['rec_id']}", "type": "impression", "user_id": user,
                 "session_id": frozen.session_id or user, "item_ids": list(ids), "ts": now,
                 "rec_id": doc["rec_id"], "variant": doc["variant"], "context": context}
        if publisher.publish_nowait([(user.encode(), orjson.dumps(event))]):
            self.metrics.impressions.inc()
        else:
            self.metrics.impression_errors.inc()

    # ---- degraded -------------------------------------------------------------------------
    async def degraded(self, exc: BaseException, draft_placement: str, opts: Options,
                       variant: Variant, rec_id: str, now: int, *,
                       exclude: frozenset[str] = frozenset(),
                       shown: list[str] | None = None) -> dict[str, Any]:
        """Redis failed: the last trending list this process read (category first), else
        nothing; flagged ``degraded``, never an error."""
        if self._redis_ok:
            log.warning("serving: redis unavailable, answering degraded error=%r", exc)
            self._redis_ok = False
            self.metrics.up.set(0)
        scopes = [opts.category, None] if opts.category is not None else [None]
        # trending answered with trending is not a fallback, only degraded
        fallback = None if draft_placement == "trending" else FALLBACK_REDIS_UNAVAILABLE
        draft = empty = Draft(draft_placement, [], fallback=fallback)
        for scope in scopes:
            cached = self.fetch.stale([trending_key(scope)])
            env = cached[0] if cached else None
            if env is not None:
                because = scope if scope is not None else "global"
                cands = P.from_list(env.data, TRENDING, because, now, opts.pool,
                                    opts.exclude | exclude)
                draft = Draft(draft_placement, cands, [env.as_of], fallback=fallback)
                break
        try:
            return await self.finish(draft, opts, variant, rec_id, now, degraded=True,
                                     shown=shown)
        except Exception:  # metadata not cached either: the bare list
            log.exception("serving: degraded answer failed, answering empty")
            return await self.finish(empty, opts, variant, rec_id, now, degraded=True,
                                     shown=shown)


def _explored(item_id: str, score: float, place: int, slot: int) -> Ranked:
    """The exploration slot's item as the rules' output would hold it."""
    return Ranked(item_id, score, Scored(item_id, score, [Evidence(P.EXPLORE, score, "new")]),
                  place, [f"exploration slot {slot}"])


def _unservable(m: Mapping[str, Any] | None) -> bool:
    """Unknown to the catalogue, retired, or sold out."""
    if not m or m.get("deleted"):
        return True
    stock = m.get("stock")
    return isinstance(stock, int) and stock <= 0


def ok(doc: Mapping[str, Any]) -> Response:
    return json_response(doc)
