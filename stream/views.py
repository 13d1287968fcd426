"""From operator state to the :class:`~state.records.Update` published for it.

Both shells (the Flink job and the reference runner) call these, so the bytes written to Redis
cannot differ between them. The version of every value is the event time it reflects.
"""

from __future__ import annotations

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
    ncfg = cfg.similar if relation == keys.KIND_SIMILAR else cfg.bought
    return Update(keys.key_for(relation, item_id), state.as_of, state.as_of,
                  neighbours.render(state, ncfg))


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
