"""The one Redis key builder. Every key the engine reads or writes is made here.

Layout version 1 (``recs:v1:`` prefix). Bump :data:`LAYOUT_VERSION` for any incompatible change;
old and new layouts can then live side by side during a migration.

==========================  =========================================================
key                         value (JSON envelope ``{"v": version, "t": as_of_ms, "d": ...}``)
==========================  =========================================================
recs:v1:session:{user}      session state: recent events, basket, purchases, items shown
recs:v1:similar:{item}      co-visitation neighbours ``[[item, log_score], ...]``
recs:v1:bought:{item}       co-purchase / co-cart neighbours ``[[item, log_score], ...]``
recs:v1:trending:{scope}    decayed top-K; scope ``global``, ``cat:{category}`` or
                            ``ctx:{dimension}:{value}`` (dimension ``device``, ``country``
                            or ``daypart``; value stripped, lower-cased, 1..64 chars)
recs:v1:trending:new:{s}    new arrivals: the newest items by first catalogue upsert; scope
                            ``new:global`` or ``new:cat:{category}``; same payload
                            (``[[item, log_score], ...]``, ``log_score = λ·first_seen_s``)
recs:v1:item:{item}         catalogue metadata (title, category, brand, price, stock) and
                            ``first_seen_ms``, the event time of the item's first upsert
recs:v1:itemstats:{item}    per-item counters by event type and decayed popularity
recs:v1:itemvec:{item}      the online model's item vector: ``{"x": [f, ...], "b": bias,
                            "src": "cf" | "content"}``; version = model version
recs:v1:uservec:{user}      the online model's user vector ``{"x": [...], "b": bias}``;
                            version = model version; expires like sessions
recs:v1:model:{name}        a model's published header: ``mf`` (dims, counts, version),
                            ``ranker`` (the whole ranker snapshot, weights included) or
                            ``blend`` (the learned blend's weights, warm-up counters and
                            config, written by the blend learner; version = labelled events
                            learned)
recs:v1:meta:freshness      hash: writer name -> newest event time applied (ms)
recs:v1:meta:itemvec-log    sorted set: item -> model version of its newest vector write
                            (tombstones included); readers follow it to refresh an index
==========================  =========================================================

On a Redis Cluster (``redis+cluster://`` URLs, :mod:`state.redis_connect`) the keys are the
same: no hash tags. One request of the server reads keys of many kinds at once (the session,
the similar and bought-together lists of many viewed items, their metadata, trending lists, the
user's vector), and the server batches several requests' keys into one MGET; no hash tag can put
all of that on one slot without putting every key of a user's neighbourhood, or of every item,
on one shard. So the reads are grouped per node instead (the server's reader,
``serving/cluster_reader.py``, splits a request's reads by slot and sends one batch per
node), and the writers group a batch of
updates by slot and run the conditional write once per slot (:mod:`state.redis_store`,
``RedisApply.java``). The two bookkeeping keys (:data:`FRESHNESS_KEY`,
:data:`ITEMVEC_LOG_KEY`) are single keys on whichever slot they hash to. A migration to
tagged keys would be a layout-version change.

An id containing ``{...}`` (``recs:v1:session:a{b}c``) turns that part into a hash tag: Redis
then hashes only ``b``, so every key whose id holds the same first ``{b}`` lands on one slot.
That is harmless for correctness, since clients and writers compute the slot with the same rule
Redis applies and each write goes where Redis says; it only concentrates such keys on one
shard, which matters only if a producer mints many ids with one tag (then validate ids at
the edge). The prefix has no braces, so only ids (and context values) can carry a tag.

>>> session_key("u42")
'recs:v1:session:u42'
>>> trending_key(category="shoes")
'recs:v1:trending:cat:shoes'
>>> trending_context_key("device", " Mobile ")
'recs:v1:trending:ctx:device:mobile'
>>> new_arrivals_key("shoes")
'recs:v1:trending:new:cat:shoes'
>>> key_for("similar", "i7")
'recs:v1:similar:i7'
"""

from __future__ import annotations

from typing import Final

LAYOUT_VERSION: Final = 1
PREFIX: Final = f"recs:v{LAYOUT_VERSION}:"

KIND_SESSION: Final = "session"
KIND_SIMILAR: Final = "similar"
KIND_BOUGHT: Final = "bought"
# the similar-items pairs decayed a second time, faster (EngineConfig.similar_recent; only
# published when it is on)
KIND_SIMILAR_RECENT: Final = "similar_recent"
KIND_TRENDING: Final = "trending"
KIND_ITEM: Final = "item"
KIND_ITEMSTATS: Final = "itemstats"
KIND_ITEMVEC: Final = "itemvec"
KIND_USERVEC: Final = "uservec"
KIND_MODEL: Final = "model"
# the neighbour lists (the second similar-items list is published only when it is on)
NEIGHBOUR_KINDS: Final = (KIND_SIMILAR, KIND_BOUGHT, KIND_SIMILAR_RECENT)
KINDS: Final = (KIND_SESSION, KIND_SIMILAR, KIND_BOUGHT, KIND_TRENDING, KIND_ITEM,
                KIND_ITEMSTATS, KIND_ITEMVEC, KIND_USERVEC, KIND_MODEL, KIND_SIMILAR_RECENT)
MODEL_KINDS: Final = (KIND_ITEMVEC, KIND_USERVEC, KIND_MODEL)  # versioned by model version
MODEL_MF: Final = "mf"          # the online collaborative model's header
MODEL_RANKER: Final = "ranker"  # the online ranker's snapshot
MODEL_BLEND: Final = "blend"    # the learned blend's weights (operators/learned_blend.py)

GLOBAL_SCOPE: Final = "global"
CONTEXT_DEVICE: Final = "device"
CONTEXT_COUNTRY: Final = "country"
CONTEXT_DAYPART: Final = "daypart"
CONTEXT_DIMENSIONS: Final = (CONTEXT_DEVICE, CONTEXT_COUNTRY, CONTEXT_DAYPART)
MAX_CONTEXT_VALUE_LEN: Final = 64
NEW_ARRIVALS_PREFIX: Final = "new:"  # scopes of the new-arrivals lists (under KIND_TRENDING)
META_PREFIX: Final = PREFIX + "meta:"  # bookkeeping keys, not entity values (no envelope)
FRESHNESS_KEY: Final = META_PREFIX + "freshness"
ITEMVEC_LOG_KEY: Final = META_PREFIX + "itemvec-log"


def key_for(kind: str, entity: str) -> str:
    """Key of one entity of one kind; the kind must be one of :data:`KINDS`."""
    if kind not in KINDS:
        raise ValueError(f"state.keys: unknown kind {kind!r}, expected one of {KINDS}")
    if not entity:
        raise ValueError(f"state.keys: empty entity id for kind {kind!r}")
    return f"{PREFIX}{kind}:{entity}"


def split_key(key: str) -> tuple[str, str]:
    """Inverse of :func:`key_for`.

    >>> split_key("recs:v1:trending:cat:shoes")
    ('trending', 'cat:shoes')
    """
    if not key.startswith(PREFIX):
        raise ValueError(f"state.keys: {key!r} is not a layout-v{LAYOUT_VERSION} key")
    kind, _, entity = key[len(PREFIX):].partition(":")
    if kind not in KINDS or not entity:
        raise ValueError(f"state.keys: {key!r} has no known kind")
    return kind, entity


def session_key(user_id: str) -> str:
    return key_for(KIND_SESSION, user_id)


def similar_key(item_id: str) -> str:
    return key_for(KIND_SIMILAR, item_id)


def similar_recent_key(item_id: str) -> str:
    return key_for(KIND_SIMILAR_RECENT, item_id)


def bought_key(item_id: str) -> str:
    return key_for(KIND_BOUGHT, item_id)


def item_key(item_id: str) -> str:
    return key_for(KIND_ITEM, item_id)


def itemstats_key(item_id: str) -> str:
    return key_for(KIND_ITEMSTATS, item_id)


def itemvec_key(item_id: str) -> str:
    return key_for(KIND_ITEMVEC, item_id)


def uservec_key(user_id: str) -> str:
    return key_for(KIND_USERVEC, user_id)


def model_key(name: str) -> str:
    """Header of one published model: :data:`MODEL_MF`, :data:`MODEL_RANKER` or
    :data:`MODEL_BLEND`.

    >>> model_key(MODEL_RANKER)
    'recs:v1:model:ranker'
    >>> model_key(MODEL_BLEND)
    'recs:v1:model:blend'
    """
    return key_for(KIND_MODEL, name)


def trending_scope(category: str | None = None) -> str:
    """Scope name of a trending list: ``global`` or ``cat:{category}``."""
    return GLOBAL_SCOPE if category is None else f"cat:{category}"


def trending_key(category: str | None = None) -> str:
    return key_for(KIND_TRENDING, trending_scope(category))


def context_value(value: object) -> str | None:
    """A context value as it appears in a scope: stripped and lower-cased, or ``None`` when it
    is not a string, is empty or is longer than :data:`MAX_CONTEXT_VALUE_LEN` (then no scope).

    >>> context_value("  DE "), context_value("   "), context_value("x" * 65), context_value(3)
    ('de', None, None, None)
    """
    if not isinstance(value, str):
        return None
    norm = value.strip().lower()
    return norm if 0 < len(norm) <= MAX_CONTEXT_VALUE_LEN else None


def trending_context_scope(dimension: str, value: str) -> str:
    """Scope of a context trending list: ``ctx:{dimension}:{value}``, value normalised by
    :func:`context_value`; an unknown dimension or an unusable value raises ``ValueError``."""
    if dimension not in CONTEXT_DIMENSIONS:
        raise ValueError(f"state.keys.trending_context_scope: unknown dimension {dimension!r}, "
                         f"expected one of {CONTEXT_DIMENSIONS}")
    norm = context_value(value)
    if norm is None:
        raise ValueError(f"state.keys.trending_context_scope: {dimension} value must be a string "
                         f"of 1..{MAX_CONTEXT_VALUE_LEN} characters once stripped, got "
                         f"{value!r:.100}")
    return f"ctx:{dimension}:{norm}"


def trending_context_key(dimension: str, value: str) -> str:
    return key_for(KIND_TRENDING, trending_context_scope(dimension, value))


def new_arrivals_scope(category: str | None = None) -> str:
    """Scope of a new-arrivals list: ``new:global`` or ``new:cat:{category}``.

    >>> new_arrivals_scope(), new_arrivals_scope("shoes")
    ('new:global', 'new:cat:shoes')
    """
    return NEW_ARRIVALS_PREFIX + trending_scope(category)


def new_arrivals_key(category: str | None = None) -> str:
    return key_for(KIND_TRENDING, new_arrivals_scope(category))


def is_new_arrivals_scope(scope: str) -> bool:
    """True for the scopes :func:`new_arrivals_scope` makes (no other scope starts ``new:``).

    >>> is_new_arrivals_scope("new:cat:shoes"), is_new_arrivals_scope("cat:new:x")
    (True, False)
    """
    return scope.startswith(NEW_ARRIVALS_PREFIX)
