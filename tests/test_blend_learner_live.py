"""The blend learner against a real Kafka and Redis (stream/blend_learner_run.py): it learns from
the clickstream topic what stepping the same examples in-process learns, publishes the value the
server reads, commits its offsets and resumes from its value; the server then serves the
learned order. The command's /metrics shows the counts it logs, the published version and its
lag."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from infra.procs import free_port
from infra.topics import kafka_python_delivery
from operators import learned_blend as lb
from operators.config import EngineConfig, recent_similar
from recs.engine import spawn
from recs.readings import Target, samples_of, scrape
from recs.settings import Settings
from serving.handlers import rank_clock
from serving.homepage_reads import context_keys, learned_events, reads
from serving.pipeline import EXPLORE
from serving.rules import load_rules
from state.keys import MODEL_BLEND, model_key
from state.records import Envelope, decode_envelope
from state.redis_store import RedisStore
from stream.blend_learner import BlendLearner, sampled
from stream.blend_learner_metrics import COUNTERS, PREFIX, LearnerCollector
from stream.blend_learner_run import LearnerOptions, Shell
from stream.loader import group_consumer
from stream.reference import ReferenceRunner
from tests.serving.kit import AsgiClient, Reply, run
from tests.streamkit import MALFORMED, generated_log

pytestmark = pytest.mark.integration
SHARE = 0.7
MIN_LABELLED = 20  # so that the run warms up (the server applies the published rule)


def _produce(bootstrap: str, topic: str, values: Sequence[bytes]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, **kafka_python_delivery())
    for value in values:
        producer.send(topic, value=value)
    producer.flush()
    producer.close()


def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return consumer.committed(TopicPartition(topic, 0))  # type: ignore[no-any-return]
    finally:
        consumer.close()


def test_the_learner_learns_publishes_resumes_and_the_server_serves_it(
        kafka: Any, redis_server: Any, redis_store: RedisStore, fresh_topics: Any) -> None:
    log = generated_log(3_000, n_users=80, n_items=450, seed=5)
    ReferenceRunner(store=redis_store, models=True).run([*log.items, *log.events])
    (topic,) = fresh_topics("clicks", partitions=1)
    tail = log.events[-700:]
    bad = [raw for raw, _ in MALFORMED[:2]]
    _produce(kafka.bootstrap, topic, [e.to_json() for e in tail] + bad)
    url = redis_server.url_for(redis_store.db)
    settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=url)
    opts = LearnerOptions(kafka.bootstrap, topic, url, SHARE, 0.5,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=len(tail) + len(bad),
                          idle_exit_s=20.0, skip_leaked=False, reset="earliest")
    examples: list[lb.Example] = []
    shell = Shell(opts, settings, examples=examples)
    shell.learner.cfg = lb.LearnedBlendConfig(min_labelled=MIN_LABELLED)
    assert shell.learner.similar_recent  # the default: the second lists are read
    result = asyncio.run(shell.run())

    raw = redis_store.client.get(model_key(MODEL_BLEND))
    assert isinstance(raw, bytes)
    env = decode_envelope(raw)
    model, cfg = lb.from_published(env.data)
    assert cfg == lb.LearnedBlendConfig(min_labelled=MIN_LABELLED)
    assert env.version == model.labelled == result["labelled"] > 0
    assert env.as_of == model.as_of == max(ex.ts for ex in examples if ex.candidates)
    wanted = [e for e in tail if lb.label_of(e) is not None and sampled(e.event_id, SHARE)]
    assert (result["seen"], result["malformed"], result["sampled"]) == \
        (len(tail) + 2, 2, len(wanted))
    # Redis already counts every one of these events: the race's worst case, learned from here
    assert result["leaked"] > 0.9 * len(wanted) and result["skipped_leaked"] == 0
    # the weights are exactly the examples stepped in order from the prior...
    replay = lb.initial()
    for ex in examples:
        replay, _ = lb.step(replay, ex, cfg)
    assert replay == model
    # ...and those examples are what one event at a time reads from Redis (the server's reads)
    assert model == _one_at_a_time(shell, wanted, url, cfg)
    assert _committed(kafka.bootstrap, opts.group, topic) == len(tail) + len(bad)

    # a restart resumes from the published value and, its offsets committed, learns nothing new
    again = Shell(dataclasses.replace(opts, max_events=None, idle_exit_s=2.0), settings)
    assert asyncio.run(again.run())["seen"] == 0
    assert again.learner.model == model

    # the server reads the same value; warm, its homepage is the learned order
    assert lb.is_warm(model, cfg), model
    now = max(e.ts for e in log.events) + 1_000
    user = wanted[-1].user_id

    async def body(client: AsgiClient) -> tuple[Reply, list[str], list[str]]:
        h = client.app.handlers
        assert await h.models.refresh()
        assert h.models.blend == model and h.models.blend_cfg == cfg
        gauges = h.models.gauges()  # /metrics: recs_model_version and age, model="blend"
        assert (gauges.versions[MODEL_BLEND], gauges.as_of_ms[MODEL_BLEND]) == \
            (model.labelled, model.as_of)
        reply = await client.get(f"/v1/users/{user}/recommendations?k=10&explain=true")
        params = h.experiments.assign("homepage", user).rules.blend
        plan = reads(user, params, category=None, ctx_keys=context_keys({}, now),
                     exclude=(), pool=_opts().pool, models=h.models,
                     similar_recent=h.similar_recent)
        inp = await _drive(plan, redis_store)
        assert h.similar_recent and inp.similar_recent  # the default: the second lists are read
        args = (inp.session, inp.similar, inp.bought, inp.fills, params)
        # the age features (on by default) at the server's ranking clock
        kw = {"k": _opts().pool, "vector": inp.vector, "vector_events": learned_events(inp.uvec),
              "similar_recent": inp.similar_recent, "now": rank_clock(now)}
        learned = [s.item_id for s in lb.serve(model, cfg, *args, **kw)]
        hand = [s.item_id for s in lb.serve(None, cfg, *args, **kw)]
        return reply, learned, hand

    reply, learned, hand = run(url, body, now=now)
    assert reply.status == 200
    # the exploration slot (serving/config/rules.toml: epsilon 0.1, decided per response id) may
    # put a cold item in; it is not the blend's, so it is left out of the comparison
    before_rules = [i["item_id"] for i in sorted(
        reply.json["items"], key=lambda i: i["explanation"]["rank_before_rules"])
        if i["source"] != EXPLORE]
    assert before_rules == [i for i in learned if i in before_rules]
    assert before_rules != [i for i in hand if i in before_rules]


def test_the_command_stops_on_sigterm_after_publishing_and_committing(
        kafka: Any, redis_server: Any, redis_store: RedisStore, fresh_topics: Any,
        tmp_path: Path) -> None:
    log = generated_log(400, n_users=30, n_items=450, seed=9)
    ReferenceRunner(store=redis_store, models=False).run([*log.items, *log.events[:300]])
    (topic,) = fresh_topics("clicks", partitions=1)
    bad = [raw for raw, _ in MALFORMED[:3]]
    _produce(kafka.bootstrap, topic, [e.to_json() for e in log.events[300:]] + bad)
    settings = Settings(kafka_bootstrap=kafka.bootstrap,
                        redis_url=redis_server.url_for(redis_store.db), blend_publish_ms=500,
                        blend_metrics_port=free_port())
    group = f"g-{uuid.uuid4().hex[:8]}"
    began = time.time()
    proc = spawn("blend-learner", ["blend-learner", "--topic", topic, "--group", group,
                                   "--from-earliest"], settings, tmp_path)
    metrics = Target("learner", f"http://127.0.0.1:{settings.blend_metrics_port}/metrics")
    try:
        deadline = time.monotonic() + 60
        while _committed(kafka.bootstrap, group, topic) != 103 and time.monotonic() < deadline:
            time.sleep(0.5)  # learned, published and committed
        # its /metrics while it runs, idle: the lag is taken once a second
        lag = ("lag_records", (("partition", "0"), ("topic", topic)))
        while (got := _scraped(metrics)).get(lag) != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code = proc.stop(timeout=20)
    out = proc.tail()
    assert code == 0, out
    result = orjson.loads(out.splitlines()[-1])
    # Redis holds the state before these events; the log's events are up to 1.5 s out of
    # order, so lists may reflect a later time than some events: those are skipped (default)
    assert result["seen"] == 103 and result["publishes"] >= 1, out
    assert result["skipped_leaked"] == result["leaked"] < result["sampled"], out
    assert result["stepped"] == result["sampled"] - result["no_session"] - result["leaked"] > 0
    assert result["labelled"] > 0, out
    assert "blend learner: stopped" in out
    raw = redis_store.client.get(model_key(MODEL_BLEND))
    assert isinstance(raw, bytes) and decode_envelope(raw).version == result["labelled"]
    published = decode_envelope(raw)

    # what it exported before the signal: the counts it printed when it stopped (no event came
    # in between), the version in Redis, and the model's gains
    interest = [e for e in log.events[300:] if lb.label_of(e) is not None]  # sample: all
    assert (got[("events_polled_total", ())], got[("events_malformed_total", ())],
            got[("events_sampled_total", ())]) == (103, 3, len(interest))
    for field, name, _ in COUNTERS:
        assert got[(name + "_total", ())] == result[field], name
    model, cfg = lb.from_published(published.data)
    assert got[("labelled", ())] == got[("published_version", ())] == published.version
    assert got[("published_event_time_seconds", ())] == published.as_of / 1000
    assert got[("warm", ())] == float(lb.is_warm(model, cfg)) == float(result["warm"])
    assert (got[("gain", (("order", "learned"),))], got[("gain", (("order", "prior"),))]) == \
        (model.learned_gain, model.prior_gain)
    assert began < got[("last_publish_timestamp_seconds", ())] < time.time()
    assert got[("redis_up", ())] == 1
    assert got[lag] == 0


def _scraped(target: Target) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The learner's samples (``recs_blend_learner_`` left out of the names), by sorted
    labels; empty while it does not answer."""
    return {(s.name.removeprefix(PREFIX), tuple(sorted(s.labels.items()))): s.value
            for s in scrape(target, timeout=2.0).samples}


def test_the_learners_lag_is_each_partitions_end_minus_its_position(
        kafka: Any, redis_server: Any, redis_store: RedisStore, fresh_topics: Any) -> None:
    log = generated_log(400, n_users=30, n_items=450, seed=9)
    (topic,) = fresh_topics("clicks", partitions=1)
    _produce(kafka.bootstrap, topic, [e.to_json() for e in log.events[:300]])
    url = redis_server.url_for(redis_store.db)
    opts = LearnerOptions(kafka.bootstrap, topic, url, 1.0, 3600.0,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=100, reset="earliest")
    ticks = itertools.count()  # a second per clock read: the lag is taken after every poll
    shell = Shell(opts, Settings(redis_url=url), clock=lambda: float(next(ticks)),
                  make_consumer=lambda o: group_consumer(o.bootstrap, o.group, o.topic, o.reset,
                                                         max_poll_records=50))
    assert shell.reading().lags == {}
    result = asyncio.run(shell.run())
    assert result["seen"] == 100  # two polls of 50
    got = {s.name: (s.labels, s.value) for s in samples_of(LearnerCollector(shell.reading))
           if s.name == PREFIX + "lag_records"}
    assert got == {PREFIX + "lag_records": ({"topic": topic, "partition": "0"}, 200.0)}


class _KillsRedisOnFirstPoll:
    """A real consumer; its first poll kills the real Redis (an outage mid-run)."""

    def __init__(self, consumer: Any, redis: Any) -> None:
        self.consumer, self.redis = consumer, redis

    def poll(self, **kw: Any) -> Any:
        if self.redis.alive():
            self.redis.kill()
        return self.consumer.poll(**kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


def test_redis_down_loses_batches_not_the_learner_and_commits_nothing(
        kafka: Any, redis_killable: Any, redis_store: RedisStore, fresh_topics: Any) -> None:
    log = generated_log(400, n_users=30, n_items=450, seed=9)
    ReferenceRunner(store=redis_store, models=False).run([*log.items, *log.events[:300]])
    (topic,) = fresh_topics("clicks", partitions=1)
    _produce(kafka.bootstrap, topic, [e.to_json() for e in log.events[300:]])
    url = redis_killable.url_for(redis_store.db)
    opts = LearnerOptions(kafka.bootstrap, topic, url, 1.0, 0.2,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=100, idle_exit_s=10.0,
                          reset="earliest")
    shell = Shell(opts, Settings(redis_url=url), make_consumer=lambda o: _KillsRedisOnFirstPoll(
        group_consumer(o.bootstrap, o.group, o.topic, o.reset), redis_killable))
    result = asyncio.run(shell.run())  # returns: no exception escapes
    assert result["seen"] == 100 and result["stepped"] == 0
    assert result["unread"] == result["sampled"] > 0 and result["publishes"] == 0
    # re-learnt on restart: no offset past the unread events is committed (a publication tick
    # before the first batch, Redis not yet seen down, may commit the start position, 0)
    assert _committed(kafka.bootstrap, opts.group, topic) in (None, 0)
    # started while Redis is down, it waits to read the published value until stopped
    waiting = Shell(opts, Settings(redis_url=url))
    timer = threading.Timer(1.5, waiting.stop)
    timer.start()
    began = time.monotonic()
    assert asyncio.run(waiting.run())["seen"] == 0
    assert time.monotonic() - began < 10


def _opts() -> Any:
    from serving.handlers import Options
    return Options(10, frozenset(), None, {}, True, None)


async def _drive(plan: Any, store: RedisStore) -> Any:
    read = next(plan)
    while True:
        try:
            read = plan.send(store.get_many(read.keys))
        except StopIteration as done:
            return done.value


def _one_at_a_time(shell: Shell, events: Sequence[Any], url: str,
                   cfg: lb.LearnedBlendConfig, share: float = SHARE,
                   similar_recent: bool | None = None) -> lb.BlendModel:
    """A second learner, fed one event per batch (three round trips each), with the vector
    index the first one used (and, unless told, the first one's second-list switch)."""
    if similar_recent is None:
        similar_recent = shell.learner.similar_recent
    from serving.experiments import load_experiments

    single = BlendLearner(load_experiments(None, load_rules(None)), share, cfg=cfg,
                          vectors=shell.learner.vectors, similar_recent=similar_recent)
    store = RedisStore.from_url(url)

    async def get_many(keys: Sequence[str]) -> list[Envelope | None]:
        return store.get_many(keys)

    async def go() -> None:
        for event in events:
            await single.learn([event], get_many)

    asyncio.run(go())
    return single.model


def test_with_the_second_similar_list_on_the_learned_weights_include_its_features(
        kafka: Any, redis_server: Any, redis_store: RedisStore, fresh_topics: Any) -> None:
    """RECS_SIMILAR_RECENT_HALF_LIFE_S on (the stream publishing the second lists): the learner
    reads the recent items' second lists with their similar lists, its candidates carry
    ``simr*`` and the weights it publishes include them; exactly what one event at a time
    learns with the lists read from Redis, and not what it learns without them."""
    base = EngineConfig()
    cfg = dataclasses.replace(base, similar_recent=recent_similar(base.similar, 3_600.0))
    log = generated_log(2_000, n_users=60, n_items=450, seed=13)
    ReferenceRunner(cfg, store=redis_store).run([*log.items, *log.events])
    (topic,) = fresh_topics("clicks", partitions=1)
    tail = log.events[-500:]
    _produce(kafka.bootstrap, topic, [e.to_json() for e in tail])
    url = redis_server.url_for(redis_store.db)
    settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=url,
                        similar_recent_half_life_s=3_600.0)
    opts = LearnerOptions(kafka.bootstrap, topic, url, 1.0, 0.5,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=len(tail),
                          idle_exit_s=20.0, skip_leaked=False, reset="earliest")
    examples: list[lb.Example] = []
    shell = Shell(opts, settings, examples=examples)
    assert shell.learner.similar_recent
    result = asyncio.run(shell.run())

    raw = redis_store.client.get(model_key(MODEL_BLEND))
    assert isinstance(raw, bytes)
    model, blend_cfg = lb.from_published(decode_envelope(raw).data)
    assert model.labelled == result["labelled"] > 0
    with_simr = [ex for ex in examples
                 if any(k.startswith("simr") for c in ex.candidates for k in c.features)]
    assert len(with_simr) > len(examples) // 2, (len(with_simr), len(examples))
    assert any(k.startswith("simr") and w != 0.0 for k, w in model.weights.items())
    wanted = [e for e in tail if lb.label_of(e) is not None]
    assert model == _one_at_a_time(shell, wanted, url, blend_cfg, 1.0, similar_recent=True)
    off = _one_at_a_time(shell, wanted, url, blend_cfg, 1.0, similar_recent=False)
    assert not any(k.startswith("simr") for k in off.weights) and off != model


def test_with_ages_on_the_published_config_and_weights_carry_them(
        kafka: Any, redis_server: Any, redis_store: RedisStore, fresh_topics: Any) -> None:
    """RECS_BLEND_AGES on: the learner publishes its config with ``ages`` and weights that
    include the age features, exactly what one event at a time learns with that config, and
    not what it learns with it off."""
    log = generated_log(2_000, n_users=60, n_items=450, seed=13)
    ReferenceRunner(EngineConfig(), store=redis_store).run([*log.items, *log.events])
    (topic,) = fresh_topics("clicks", partitions=1)
    tail = log.events[-500:]
    _produce(kafka.bootstrap, topic, [e.to_json() for e in tail])
    url = redis_server.url_for(redis_store.db)
    settings = Settings(kafka_bootstrap=kafka.bootstrap, redis_url=url, blend_ages=True)
    opts = LearnerOptions(kafka.bootstrap, topic, url, 1.0, 0.5,
                          group=f"g-{uuid.uuid4().hex[:8]}", max_events=len(tail),
                          idle_exit_s=20.0, skip_leaked=False, reset="earliest")
    shell = Shell(opts, settings)
    result = asyncio.run(shell.run())

    raw = redis_store.client.get(model_key(MODEL_BLEND))
    assert isinstance(raw, bytes)
    model, blend_cfg = lb.from_published(decode_envelope(raw).data)
    assert blend_cfg.ages and model.labelled == result["labelled"] > 0
    ages = ("simh", "simd", "seenh", "seend")
    assert any(k in ages and w != 0.0 for k, w in model.weights.items())
    wanted = [e for e in tail if lb.label_of(e) is not None]
    assert model == _one_at_a_time(shell, wanted, url, blend_cfg, 1.0)
    off = _one_at_a_time(shell, wanted, url, dataclasses.replace(blend_cfg, ages=False), 1.0)
    assert not any(k in ages for k in off.weights) and off != model


def test_the_bench_prints_one_json_line(redis_server: Any, redis_store: RedisStore,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from recs import bench_blend_learner

    url = redis_server.url_for(redis_store.db)
    assert bench_blend_learner.main(["--events", "4000", "--items", "600", "--users", "300",
                                     "--learn", "400", "--redis-url", url]) == 0
    result = orjson.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["bench"] == "blend_learner" and result["events"] == 400
    assert result["learned"] > 0 and result["redis_round_trips"] >= 3
    assert result["leaked"] >= result["learned"]  # --state after: Redis counts every one
