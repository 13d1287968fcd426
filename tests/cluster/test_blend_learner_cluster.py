"""The blend learner on a Redis Cluster (``--redis-url redis+cluster://``): it reads the state
through the cluster (one MGET per slot, grouped per node), resumes from and publishes to it, and
learns exactly what the same learner learns over the in-memory store holding the same state."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from infra.redis_cluster import RedisCluster
from operators import learned_blend as lb
from recs.settings import Settings
from schemas.events import Interaction, ItemUpsert
from serving.experiments import load_experiments
from serving.models import decode_blend
from serving.rules import load_rules
from state.keys import MODEL_BLEND, model_key
from state.records import Envelope
from state.redis_connect import sync_client
from state.redis_store import RedisStore
from state.store import MemoryStore
from stream.blend_learner import BlendLearner, sampled
from stream.blend_learner_run import LearnerOptions, Shell
from stream.reference import ReferenceRunner
from tests.streamkit import generated_log
from tests.test_blend_learner_live import _produce

pytestmark = [pytest.mark.integration, pytest.mark.cluster]
SHARE = 0.6


def test_the_learner_on_a_cluster_learns_what_it_learns_in_memory(
        kafka: Any, redis_cluster_clean: RedisCluster, fresh_topics: Any) -> None:
    log = generated_log(2_000, n_users=60, n_items=450, seed=11)
    records: list[Interaction | ItemUpsert] = [*log.items, *log.events]
    cluster_store = RedisStore(sync_client(redis_cluster_clean.url))
    ReferenceRunner(store=cluster_store).run(records)  # the cluster writer, slot by slot
    memory = ReferenceRunner()
    memory.run(records)
    (topic,) = fresh_topics("clicks", partitions=1)
    tail = log.events[-400:]
    _produce(kafka.bootstrap, topic, [e.to_json() for e in tail])
    opts = LearnerOptions(kafka.bootstrap, topic, redis_cluster_clean.url, SHARE, 0.5,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=len(tail),
                          idle_exit_s=20.0, skip_leaked=False, reset="earliest")
    result = asyncio.run(Shell(opts, Settings(redis_url=redis_cluster_clean.url)).run())

    raw = cluster_store.client.get(model_key(MODEL_BLEND))
    assert isinstance(raw, bytes)
    env, found = decode_blend(raw)
    assert found is not None
    model, cfg = found
    assert cfg == lb.LearnedBlendConfig() and env.version == model.labelled > 0
    assert result["labelled"] == model.labelled

    wanted = [e for e in tail if lb.label_of(e) is not None and sampled(e.event_id, SHARE)]
    store = memory.store
    assert isinstance(store, MemoryStore)

    async def get_many(keys: Sequence[str]) -> list[Envelope | None]:
        return store.get_many(keys)

    same = BlendLearner(load_experiments(None, load_rules(None)), SHARE)
    asyncio.run(same.learn(wanted, get_many))
    assert same.model == model
    # a second learner resumes from the cluster's value
    again = Shell(opts, Settings(redis_url=redis_cluster_clean.url))
    assert asyncio.run(again.resume()) and again.learner.model == model
