"""What the homepage reads from Redis and how it turns the values into the blend's inputs, as a
generator that does no I/O itself (sans-IO): it yields each round trip's keys (:class:`Read`)
and is sent back their envelopes, in order, then returns :class:`HomepageInputs`.

Two drivers run it: the server (:meth:`serving.routes.Handlers._homepage_draft`, one request,
each round trip through its cached reader) and the blend learner
(:mod:`stream.blend_learner`, many sampled events in lockstep, one MGET per round trip for
all of them). So both read the same keys and decode them the same way, and the learned blend
learns from the inputs the server ranks.

Round trips: the user's session and vector; then the neighbour lists and metadata of the
recent items and the trending lists (global, the context's, the asked category), with, when
the second similar-items list is read (``similar_recent``), the second lists of the learned
blend's recent items (``recs:v1:similar_recent:<item>`` of the newest
:data:`operators.learned_blend.POSITIONS`: its ``simr*`` features) in the same round trip;
then the new arrivals and the last item's category list. ``derive`` turns envelopes into
shares and the context fill (the server memoises both per published version; :data:`PLAIN`
does not) and retrieves the learned vector's candidates.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from operators.blend import (
    TRENDING,
    TRENDING_CATEGORY,
    BlendParams,
    Fill,
    Shares,
    shares,
    vector_shares,
)
from operators.candidates import recent_items
from operators.learned_blend import POSITIONS
from operators.trending import daypart
from serving import pipeline as P
from state.keys import (
    bought_key,
    item_key,
    new_arrivals_key,
    session_key,
    similar_key,
    similar_recent_key,
    trending_context_key,
    trending_context_scope,
    trending_key,
    uservec_key,
)
from state.records import Envelope

CONTEXT_SCOPES: Final = ("country", "device")
Meta = dict[str, Mapping[str, Any] | None]


@dataclass(frozen=True, slots=True)
class Read:
    """One round trip: ``keys`` to MGET (``cache``: whether a cached value may answer)."""

    keys: list[str]
    cache: bool = True


@dataclass(frozen=True, slots=True)
class HomepageInputs:
    """What :func:`operators.learned_blend.serve` (or ``candidates``) takes, and the rest of
    what the homepage's draft needs."""

    session: Mapping[str, Any] | None
    uvec: Envelope | None
    recent: list[str]
    similar: dict[str, Shares]
    bought: dict[str, Shares]
    fills: list[Fill]
    vector: Shares
    metas: Meta
    times: list[int]
    new_env: Envelope | None
    # the learned blend's recent items' second similar-items lists (empty when not read)
    similar_recent: dict[str, Shares] = field(default_factory=dict)


class Vectors(Protocol):
    """The learned models' index (:class:`serving.models.ModelRefresher`)."""

    @property
    def vectors(self) -> int: ...

    def search(self, user_data: Any, k: int,
               exclude: Collection[str] = ()) -> list[tuple[str, float]]: ...


class Derive(Protocol):
    def shares(self, env: Envelope) -> Shares: ...

    def context_fill(self, ctx_keys: Sequence[tuple[str, str]],
                     ctx_envs: Sequence[Envelope | None],
                     global_env: Envelope | None) -> Fill: ...


Reads = Generator[Read, list[Envelope | None], HomepageInputs]


def list_shares(env: Envelope) -> Shares:
    """A neighbour list as :func:`operators.blend.shares`."""
    return shares(env.data.get("items", ()))


def context_fill(ctx_keys: Sequence[tuple[str, str]], ctx_envs: Sequence[Envelope | None],
                 global_env: Envelope | None) -> Fill:
    """The cold-start blend of the context lists and global trending (every user with the same
    context shares it)."""
    global_items = global_env.data["items"] if global_env is not None else []
    lists = [(scope, e.data["items"]) for (scope, _), e in zip(ctx_keys, ctx_envs, strict=True)
             if e is not None]
    return P.context_fill(lists, global_items) if lists else Fill(TRENDING, "global",
                                                                  global_items)


class _Plain:
    def shares(self, env: Envelope) -> Shares:
        return list_shares(env)

    def context_fill(self, ctx_keys: Sequence[tuple[str, str]],
                     ctx_envs: Sequence[Envelope | None],
                     global_env: Envelope | None) -> Fill:
        return context_fill(ctx_keys, ctx_envs, global_env)


PLAIN: Final[Derive] = _Plain()


def context_keys(context: Mapping[str, str], now: int) -> list[tuple[str, str]]:
    """``(scope, key)`` of the context trending lists of a request: its country and device
    when given, and the current daypart."""
    pairs = [(dim, context[dim]) for dim in CONTEXT_SCOPES if dim in context]
    pairs.append(("daypart", daypart(now)))
    return [(trending_context_scope(dim, value), trending_context_key(dim, value))
            for dim, value in pairs]


def learned_events(uvec: Envelope | None) -> int:
    """How many events the model learned from the user (``n`` of the user's vector)."""
    n = uvec.data.get("n") if uvec is not None and isinstance(uvec.data, dict) else None
    return n if isinstance(n, int) else 0


def learned_vector(models: Vectors | None, uvec: Envelope | None,
                   session: Mapping[str, Any] | None, recent: Sequence[str],
                   params: BlendParams, exclude: Collection[str], pool: int) -> Shares:
    """The learned retrieval for the user's vector: the ``pool`` items of the index scoring
    highest against ``[x_u, 1]``, none the blend would drop (excluded, bought, and the recent
    items unless repeats are allowed), as :func:`operators.blend.vector_shares`."""
    if models is None or uvec is None or params.vector_weight <= 0 or models.vectors == 0 or \
            learned_events(uvec) < params.vector_min_events:
        return ()  # no vector, or one learned from too few events (the blend's gate)
    banned = set(exclude)
    if session:
        banned.update(session.get("purchased", ()))
    if not params.allow_repeats:
        banned.update(recent)
    return vector_shares(models.search(uvec.data, pool, banned), params.vector_temperature)


def reads(user: str, params: BlendParams, *, category: str | None,
          ctx_keys: Sequence[tuple[str, str]], exclude: Collection[str], pool: int,
          models: Vectors | None, derive: Derive = PLAIN, similar_recent: bool = False) -> Reads:
    """The homepage's reads for ``user`` (module docstring); ``similar_recent``: read the
    second similar-items lists too (off: not one of their keys is read)."""
    env, uvec = yield Read([session_key(user), uservec_key(user)], cache=False)
    session = env.data if env is not None else None
    recent = recent_items(session, params.recent) if session else []
    vector = learned_vector(models, uvec, session, recent, params, exclude, pool)
    shared = [trending_key(None), *(k for _, k in ctx_keys)]
    if category is not None:
        shared.append(trending_key(category))
    # the learned blend's features read the newest POSITIONS items (not params.recent)
    second = recent_items(session, POSITIONS) if similar_recent and session else []
    found = yield Read([*(similar_key(i) for i in recent), *(bought_key(i) for i in recent),
                        *(item_key(i) for i in recent),
                        *(similar_recent_key(i) for i in second), *shared])
    n, m = len(recent), len(second)
    similar = {i: derive.shares(e) for i, e in zip(recent, found[:n], strict=True)
               if e is not None}
    bought = {i: derive.shares(e) for i, e in zip(recent, found[n:2 * n], strict=True)
              if e is not None}
    metas: Meta = {i: (e.data if e is not None else None)
                   for i, e in zip(recent, found[2 * n:3 * n], strict=True)}
    recent_lists = {i: derive.shares(e) for i, e in zip(second, found[3 * n:3 * n + m],
                                                        strict=True) if e is not None}
    trending_envs = found[3 * n + m:]
    global_env, ctx_envs = trending_envs[0], trending_envs[1:1 + len(ctx_keys)]
    fills: list[Fill] = []
    if category is not None and trending_envs[-1] is not None:
        fills.append(Fill(TRENDING_CATEGORY, category, trending_envs[-1].data["items"]))
    last_cat = category_of(metas.get(recent[0])) if recent else None
    times = [e.as_of for e in found if e is not None]
    arrivals_cat = category or last_cat
    more = [new_arrivals_key(None), new_arrivals_key(arrivals_cat)]
    if last_cat is not None and last_cat != category:
        more.append(trending_key(last_cat))
    new_global, new_env, *cat_envs = yield Read(more)
    if new_env is None:  # nothing new in that category: new anywhere
        new_env, arrivals_cat = new_global, None
    if cat_envs and cat_envs[0] is not None:
        fills.append(Fill(TRENDING_CATEGORY, last_cat or "", cat_envs[0].data["items"]))
    fills.append(derive.context_fill(ctx_keys, ctx_envs, global_env))
    if new_env is not None:  # new items fill in last (and explore, after the blend)
        fills.append(Fill(P.NEW_ARRIVAL, arrivals_cat or "", new_env.data["items"]))
    return HomepageInputs(session, uvec, recent, similar, bought, fills, vector, metas, times,
                          new_env, recent_lists)


def category_of(meta: Mapping[str, Any] | None) -> str | None:
    cat = meta.get("category") if meta else None
    return cat if isinstance(cat, str) and cat else None
