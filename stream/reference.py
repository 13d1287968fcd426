"""The in-process reference runner: the operators applied to a log in one Python process.

It routes records exactly as the Flink topology does (``stream/topology.py``) and publishes the
same :mod:`stream.views`, so for the same log both produce the same store contents; tests prove
it. Evaluation uses it too, reading the operator states directly between events.

    recs replay --dataset rsc15 --path ../shared/data/rsc15-sample [--redis-url URL]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import orjson

from operators import dedup, neighbours, ranker, session, trending
from operators.config import EngineConfig
from operators.ranker_state import RankerModel
from operators.vector_model import VectorModel
from schemas.events import Interaction, ItemUpsert
from state import keys
from state.records import Update
from state.store import MemoryStore, Store
from stream import views
from stream.model_views import publication_updates, ranker_updates
from stream.routing import item_targets, learns_from, ranker_input

WRITER = "reference"
END_OF_INPUT = 2**62  # as stream.functions.END_OF_TIME: closes every label window


class ReferenceRunner:
    """``models=True`` runs the online models too (as the topology does by default); off by
    default here, since the tests of the counting operators and the evaluation's engine do not
    need them. Label windows close when a newer event of the user passes them, and all of them
    at the end of :meth:`run` (the Flink job: by event-time timers, and all at end of input)."""

    def __init__(self, cfg: EngineConfig | None = None, store: Store | None = None, *,
                 models: bool = False) -> None:
        self.cfg = cfg or EngineConfig()
        self.models = ReferenceModels(self.cfg) if models else None
        self.store: Store = store if store is not None else MemoryStore()
        self.seen: dict[str, dedup.DedupState] = {}
        self.duplicates = 0
        self.sessions: dict[str, session.SessionState] = {}
        self.relations: dict[tuple[str, str], neighbours.NeighbourState] = {}
        self.items: dict[str, trending.ItemState] = {}
        self.topk: dict[str, trending.TopKState] = {}
        self.events_applied = 0
        self.max_ts = 0
        self._dirty_sessions: set[str] = set()
        self._dirty_relations: set[tuple[str, str]] = set()
        self._dirty_items: set[str] = set()
        self._dirty_scopes: set[str] = set()

    # -- routing, mirrored by stream/topology.py -------------------------------------------
    def on_item(self, upsert: ItemUpsert) -> None:
        if self.models is not None:
            self.models.on_item(upsert)
        state, scores = trending.item_upsert_step(self.items.get(upsert.item_id), upsert,
                                                  self.cfg)
        self.items[upsert.item_id] = state
        self._dirty_items.add(upsert.item_id)
        self._offer(scores)

    def on_event(self, event: Interaction) -> None:
        seen, fresh = dedup.step(self.seen.get(event.user_id), event.event_id, event.ts,
                                 self.cfg.dedup)
        self.seen[event.user_id] = seen
        if not fresh:
            self.duplicates += 1
            return
        if self.models is not None:
            self.models.on_event(event)
        self.events_applied += 1
        self.max_ts = max(self.max_ts, event.ts)
        old = self.sessions.get(event.user_id)
        new, pairs = session.step(old, event, self.cfg.session)
        if new is not old:
            if new is None:
                self.sessions.pop(event.user_id, None)
            else:
                self.sessions[event.user_id] = new
            self._dirty_sessions.add(event.user_id)
        for pair in pairs:
            self._relate(pair.relation, pair)
            if pair.relation == keys.KIND_SIMILAR and self.cfg.similar_recent is not None:
                # the same pair, decayed at the second list's half-life (its own key)
                self._relate(keys.KIND_SIMILAR_RECENT, pair)
        device = trending.context_field(event, keys.CONTEXT_DEVICE)
        country = trending.context_field(event, keys.CONTEXT_COUNTRY)
        for item_id in item_targets(event):
            state, scores = trending.item_event_step(
                self.items.get(item_id), item_id, event.type, event.value, event.ts, self.cfg,
                device=device, country=country)
            self.items[item_id] = state
            self._dirty_items.add(item_id)
            self._offer(scores)

    def _relate(self, relation: str, pair: session.Pair) -> None:
        rkey = (relation, pair.src)
        self.relations[rkey] = neighbours.step(self.relations.get(rkey), pair,
                                               self.cfg.neighbour(relation))
        self._dirty_relations.add(rkey)

    def _offer(self, scores: list[trending.ScopeScore]) -> None:
        for score in scores:
            state, changed = trending.topk_step(self.topk.get(score.scope), score)
            if changed and state is not None:
                self.topk[score.scope] = trending.trim(state, self.cfg.trending, score.scope)
                self._dirty_scopes.add(score.scope)

    # -- publishing -------------------------------------------------------------------------
    def pending_updates(self) -> list[Update]:
        out: list[Update] = []
        for user in sorted(self._dirty_sessions):
            out.append(views.session_update(user, self.sessions.get(user), self.max_ts))
        for relation, src in sorted(self._dirty_relations):
            out.append(views.neighbour_update(relation, src, self.relations[(relation, src)],
                                              self.cfg))
        for item_id in sorted(self._dirty_items):
            out.extend(views.item_updates(item_id, self.items[item_id]))
        for scope in sorted(self._dirty_scopes):
            out.append(views.trending_update(scope, self.topk[scope], self.cfg))
        if self.models is not None:
            out.extend(self.models.pending_updates())
        return out

    def flush(self) -> int:
        updates = self.pending_updates()
        self._dirty_sessions.clear()
        self._dirty_relations.clear()
        self._dirty_items.clear()
        self._dirty_scopes.clear()
        applied = self.store.apply(updates)
        if self.max_ts:
            self.store.mark_fresh(WRITER, self.max_ts)
        return applied

    def run(self, records: Iterable[Interaction | ItemUpsert], flush_every: int = 50_000) -> int:
        """Apply ``records`` in order, flushing to the store every ``flush_every`` records."""
        n = 0
        for rec in records:
            if isinstance(rec, ItemUpsert):
                self.on_item(rec)
            else:
                self.on_event(rec)
            n += 1
            if n % flush_every == 0:
                self.flush()
        if self.models is not None:
            self.models.close_all()
        self.flush()
        return n


class ReferenceModels:
    """The online models of the topology (``stream/models.py``), routed the same way."""

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg
        self.vectors = VectorModel(cfg.mf)
        self.ranker = RankerModel(cfg.ranker)
        self.labels: dict[str, ranker.LabelState] = {}
        self._learns = learns_from(cfg)

    def on_item(self, upsert: ItemUpsert) -> None:
        self.vectors.upsert(upsert)
        self.ranker.upsert(upsert)

    def on_event(self, event: Interaction) -> None:
        if self._learns(event):
            self.vectors.learn(event)
        if ranker_input(event):
            state, labels = ranker.label_step(self.labels.get(event.user_id), event,
                                              self.cfg.ranker)
            self._observe(event.user_id, state, labels)

    def _observe(self, user: str, state: ranker.LabelState | None,
                 labels: ranker.Labels) -> None:
        if state is None:
            self.labels.pop(user, None)
        else:
            self.labels[user] = state
        if labels.examples or labels.ignored is not None:
            self.ranker.observe(labels)

    def close_all(self) -> None:
        """Close every open label window (what the end of a bounded input does)."""
        for user in sorted(self.labels):
            state, labels = ranker.close(self.labels[user], END_OF_INPUT, user, self.cfg.ranker)
            self._observe(user, state, labels)

    def pending_updates(self) -> list[Update]:
        out: list[Update] = []
        pub = self.vectors.drain()
        if pub is not None:
            out.extend(publication_updates(pub))
        if self.ranker.changed:
            out.extend(ranker_updates(self.ranker))
        return out


def main(argv: list[str]) -> int:
    from recs import datasets
    from recs.settings import Settings
    from state.redis_store import RedisStore

    parser = argparse.ArgumentParser(prog="recs replay", description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--path", required=True, type=Path)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    store = RedisStore.from_url(args.redis_url or settings.redis_url)
    data = datasets.load(args.dataset, args.path)
    runner = ReferenceRunner(store=store, models=True)
    started = time.perf_counter()
    records: list[Interaction | ItemUpsert] = [*data.items, *data.events[: args.limit]]
    n = runner.run(records)
    seconds = time.perf_counter() - started
    sys.stdout.write(orjson.dumps({"records": n, "seconds": round(seconds, 3),
                                   "records_per_s": round(n / seconds)}).decode() + "\n")
    return 0
