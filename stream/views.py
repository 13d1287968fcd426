"""From operator state to the :class:`~state.records.Update` published for it.

Both shells (the Flink job and the reference runner) call these, so the bytes written to Redis
cannot differ between them. The version of every value is the event time it reflects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from operators import neighbours, session, trending
from operators.config import EngineConfig
from state import keys
from state.records import Update


def session_update(user_id: str, state: session.SessionState | None,
                   tombstone_ts: int = 0) -> Update:
    if state is None:
        return Update(keys.session_key(user_id), tombstone_ts, tombstone_ts, None)
    # impressions move the version too (they change ``shown``), not the session's last_ts
    ts = session.version(state)
    return Update(keys.session_key(user_id), ts, ts, session.render(state))


def neighbour_update(relation: str, item_id: str, state: neighbours.NeighbourState,
                     cfg: EngineConfig) -> Update:
    return Update(keys.key_for(relation, item_id), state.as_of, state.as_of,
                  neighbours.render(state, cfg.neighbour(relation)))


def item_updates(item_id: str, state: trending.ItemState) -> list[Update]:
    """The item value (version: its newest upsert, which a late older upsert lowering
    ``first_seen_ms`` does not move; the store accepts the equal version) and its stats."""
    out = []
    value = trending.render_item(state)
    if value is not None:
        out.append(Update(keys.item_key(item_id), state.meta_ts, state.meta_ts, value))
    if state.seq:
        out.append(Update(keys.itemstats_key(item_id), state.as_of, state.as_of,
                          trending.render_stats(state)))
    return out


def trending_update(scope: str, state: trending.TopKState, cfg: EngineConfig) -> Update:
    """A trending or new-arrivals list (``scope`` as made by :mod:`state.keys`)."""
    return Update(keys.key_for(keys.KIND_TRENDING, scope), state.as_of, state.as_of,
                  trending.render_topk(state, cfg.trending, scope))


# -- the online models' publications (see state.keys for the layout) --------------------------

VECTOR_DIGITS = 6  # vectors are published rounded: 1e-6 is far below what ranking can tell


def item_vector_update(item_id: str, vector: Sequence[float] | None, bias: float, *,
                       version: int, as_of: int, src: str = "cf") -> Update:
    """An item's learned vector (``src`` ``cf``), or one mapped from its content (``content``:
    a new item placed among its nearest catalogue neighbours); ``None`` deletes (evicted).
    Scoring is ``user.x · item.x + item.b``: a FAISS inner-product index holds ``[x, b]`` and
    queries ``[user.x, 1]``."""
    data = None if vector is None else {"x": [round(float(v), VECTOR_DIGITS) for v in vector],
                                        "b": round(float(bias), VECTOR_DIGITS), "src": src}
    return Update(keys.itemvec_key(item_id), version, as_of, data)


def user_vector_update(user_id: str, vector: Sequence[float] | None, bias: float, *,
                       version: int, as_of: int, events: int = 0) -> Update:
    """A user's vector with ``n``, the events the model learned from the user (the server's
    blend uses the vector only past ``BlendParams.vector_min_events``)."""
    data = None if vector is None else {"x": [round(float(v), VECTOR_DIGITS) for v in vector],
                                        "b": round(float(bias), VECTOR_DIGITS), "n": events}
    return Update(keys.uservec_key(user_id), version, as_of, data)


def model_update(name: str, header: Mapping[str, Any], *, version: int, as_of: int) -> Update:
    """A model's header (``mf``: dims and counts) or whole snapshot (``ranker``)."""
    return Update(keys.model_key(name), version, as_of, dict(header))
