"""``recs blend-learner``: the Kafka shell of the blend learner (:mod:`stream.blend_learner`).

    recs blend-learner [--bootstrap HOST:PORT] [--topic T] [--redis-url URL] [--sample SHARE]
                       [--publish-every SECONDS] [--group G] [--learn-leaked] [--from-earliest]
                       [--metrics-port PORT] [--max-events N] [--idle-exit S]

It consumes the clickstream topic in its own consumer group (a new group starts live, at the
latest offset, unless ``--from-earliest``), learns from the sampled interest events of each
poll batch (their Redis reads batched, three round trips per :data:`READ_CHUNK` events; an
event a neighbour or trending list read for it already counts is skipped unless
``--learn-leaked``) and every
``--publish-every`` seconds, and once more when it stops, publishes the learned blend at
``recs:v1:model:blend`` (a versioned envelope, version = labelled events, through the same
conditional write as every other value), refreshes the learned-vector index it retrieves with
and then commits its offsets: at least once, a restart re-learns at most one interval. On start
it resumes from the published value (an unreadable one is logged and the prior used), waiting
for Redis if it does not answer. While Redis does not answer, a batch's events are not learned
(counted ``unread``), nothing is published or committed, and the outage is logged once.

SIGTERM or SIGINT: finish the batch, publish, commit, exit 0. Every publication logs one line:
events seen, malformed, interest, sampled, without a session before the event, leaked (and
skipped), unread, stepped, labelled, warm, version and event time published, and the rate since the
last line. The same counts, the model's gains, when it last published and its consumer's lag
per partition are Prometheus metrics on ``--metrics-port`` (``RECS_BLEND_METRICS_PORT``, 0 =
off; :mod:`stream.blend_learner_metrics`).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import orjson

from operators import learned_blend
from recs.settings import Settings
from schemas.events import Interaction
from serving.experiments import load_experiments
from serving.model_source import RedisModelSource
from serving.models import FAISS_THREADS, REDIS_DOWN, ModelRefresher
from serving.rules import load_rules
from state.keys import MODEL_BLEND, model_key
from state.redis_store import RedisStore
from stream.blend_learner import BlendLearner, check_share, resume
from stream.blend_learner_metrics import LearnerReading, serve_metrics
from stream.loader import LAG_EVERY_S, commit_offsets, group_consumer, partition_lags
from stream.model_views import blend_updates

log = logging.getLogger("stream.blend_learner")
GROUP = "recs-blend-learner"
POLL_MS = 200
# events read together (one MGET per round trip): about 1,000 keys (bench-blend-learner), so
# that no MGET holds Redis long while the servers read it (a poll brings up to 5,000 events)
READ_CHUNK = 500


def read_chunks(events: Sequence[Interaction]) -> Iterator[Sequence[Interaction]]:
    """The events of a poll, :data:`READ_CHUNK` at a time (each chunk read together)."""
    for start in range(0, len(events), READ_CHUNK):
        yield events[start:start + READ_CHUNK]


@dataclass(frozen=True, slots=True)
class LearnerOptions:
    bootstrap: str
    topic: str
    redis_url: str
    sample: float
    publish_every_s: float
    group: str = GROUP
    max_events: int | None = None     # stop after this many events polled (tests, the bench)
    idle_exit_s: float | None = None  # stop after this long without an event
    vectors: bool = True              # retrieve the learned vector's candidates as the server
    skip_leaked: bool = True          # learn only events no list read already counts
    reset: str = "latest"             # where a new group starts: live, not the topic's history


def options_of(settings: Settings, args: argparse.Namespace | None = None) -> LearnerOptions:
    """The command's options: each flag, else its setting (``recs.settings``)."""
    a = vars(args) if args is not None else {}

    def pick(name: str, default: Any) -> Any:
        value = a.get(name)
        return default if value is None else value

    return LearnerOptions(pick("bootstrap", settings.kafka_bootstrap),
                   pick("topic", settings.topics.interactions),
                   pick("redis_url", settings.redis_url),
                   check_share(pick("sample", settings.blend_sample)),
                   float(pick("publish_every", settings.blend_publish_ms / 1000)),
                   pick("group", GROUP), pick("max_events", None), pick("idle_exit", None),
                   skip_leaked=not a.get("learn_leaked", False),
                   reset="earliest" if a.get("from_earliest") else "latest")


class Shell:
    """One learner, its store, reader, consumer and clock; :meth:`run` is the loop."""

    def __init__(self, opts: LearnerOptions, settings: Settings, *,
                 make_consumer: Callable[[LearnerOptions], Any] | None = None,
                 examples: list[learned_blend.Example] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.opts = opts
        self.clock, self.wall = clock, wall
        self.store = RedisStore.from_url(opts.redis_url)
        rules = load_rules(Path(settings.rules_file) if settings.rules_file else None)
        experiments = load_experiments(
            Path(settings.experiments_file) if settings.experiments_file else None, rules)
        self.learner = BlendLearner(experiments, opts.sample,
                                    learned_blend.LearnedBlendConfig(ages=settings.blend_ages),
                                    examples=examples,
                                    skip_leaked=opts.skip_leaked,
                                    similar_recent=settings.similar_recent_on)
        self.make_consumer = make_consumer or (
            lambda o: group_consumer(o.bootstrap, o.group, o.topic, o.reset))
        self.stopping = False
        self._published_events = 0
        self._last_line = (clock(), 0)
        self._redis_ok = True
        self._published_at: float | None = None  # wall clock
        self._lags: dict[tuple[str, int], int] = {}

    def reading(self) -> LearnerReading:
        """What ``/metrics`` shows (called on the exporter's thread)."""
        return LearnerReading(dataclasses.replace(self.learner.counts), self.learner.model,
                              self.learner.warm, self._redis_ok, self._published_at,
                              dict(self._lags))

    def stop(self, signum: int = 0, frame: Any = None) -> None:
        self.stopping = True

    async def resume(self) -> bool:
        """Start from the published value (:func:`~stream.blend_learner.resume`), waiting for
        Redis while it does not answer (a learner that started from the prior would publish
        over a trained value once it had labelled more); False when stopped first."""
        while not self.stopping:
            try:
                raw = self.store.client.get(model_key(MODEL_BLEND))
            except REDIS_DOWN as exc:
                self._redis_down("reading the published value, retried every second", exc)
                await asyncio.sleep(1.0)
                continue
            self._redis_up()
            model, how = resume(raw if isinstance(raw, bytes) else None)
            log.info("blend learner: %s", how)
            self.learner.model, self._published_events = model, model.events
            return True
        return False

    def _redis_down(self, doing: str, exc: BaseException) -> None:
        if self._redis_ok:
            log.warning("blend learner: Redis does not answer (%s) error=%r", doing, exc)
        self._redis_ok = False

    def _redis_up(self) -> None:
        if not self._redis_ok:
            log.info("blend learner: Redis answers again")
        self._redis_ok = True

    async def run(self) -> dict[str, Any]:
        faiss.omp_set_num_threads(FAISS_THREADS)
        source = RedisModelSource.from_url(self.opts.redis_url)
        models = ModelRefresher(source) if self.opts.vectors else None
        if models is not None:
            await models.refresh()
            self.learner.vectors = models
        if not await self.resume():
            await source.close()
            return self.summary()
        consumer = self.make_consumer(self.opts)
        log.info("blend learner: consuming topic=%s group=%s sample=%s publish_every_s=%s "
                 "vectors=%s", self.opts.topic, self.opts.group, self.opts.sample,
                 self.opts.publish_every_s, models.vectors if models is not None else "off")
        counts = self.learner.counts
        next_publish = self.clock() + self.opts.publish_every_s
        last_event = next_lag = self.clock()
        try:
            while not self.stopping:
                polled = consumer.poll(timeout_ms=POLL_MS)
                raws = [rec.value for recs in polled.values() for rec in recs]
                now = self.clock()
                if now >= next_lag:
                    self._lags = {(tp.topic, tp.partition): n
                                  for tp, n in partition_lags(consumer).items()}
                    next_lag = now + LAG_EVERY_S
                if raws:
                    last_event = now
                    events = self.learner.select(raws)
                    if events:
                        await self._learn(events, source)
                if now >= next_publish:
                    if self.publish():
                        commit_offsets(consumer, "blend learner")
                    if models is not None:
                        await models.refresh()
                    next_publish = now + self.opts.publish_every_s
                if self.opts.max_events is not None and counts.seen >= self.opts.max_events:
                    break
                if self.opts.idle_exit_s is not None and not raws and \
                        now - last_event >= self.opts.idle_exit_s:
                    break
        except KeyboardInterrupt:
            pass
        finally:
            try:
                if self.publish():
                    commit_offsets(consumer, "blend learner")
                    log.info("blend learner: stopped after publishing and committing")
                else:
                    log.warning("blend learner: stopped without publishing: offsets not "
                                "committed, the next start re-learns since the last commit")
            finally:
                consumer.close()
                await source.close()
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """What :meth:`run` returns: the counts, the labelled events and whether warm."""
        return {**self.learner.counts.as_dict(), "labelled": self.learner.model.labelled,
                "warm": self.learner.warm}

    async def _learn(self, events: list[Interaction], source: RedisModelSource) -> None:
        """Learn a batch; Redis down: the batch is not learned (counted ``unread``), logged
        once per outage."""
        for chunk in read_chunks(events):
            try:
                await self.learner.learn(chunk, source.get_many)
            except REDIS_DOWN as exc:
                self.learner.counts.unread += len(chunk)
                self._redis_down("reading a batch, its events are not learned", exc)
                continue
            self._redis_up()

    def publish(self) -> bool:
        """Publish the model when it compared an event since the last publication, and log
        one line either way; False while Redis does not answer (nothing is committed then)."""
        model, counts = self.learner.model, self.learner.counts
        if model.events != self._published_events:
            try:
                self.store.apply(blend_updates(model, self.learner.cfg))
            except REDIS_DOWN as exc:
                self._redis_down("publishing, offsets not committed", exc)
            else:
                self._redis_up()
                self._published_events = model.events
                self._published_at = self.wall()
                counts.publishes += 1
                counts.last_publish_version = model.labelled
                counts.last_publish_as_of = model.as_of
        now = self.clock()
        since, seen_then = self._last_line
        rate = (counts.seen - seen_then) / (now - since) if now > since else 0.0
        self._last_line = (now, counts.seen)
        log.info("blend learner: seen=%s malformed=%s interest=%s sampled=%s no_session=%s "
                 "leaked=%s skipped_leaked=%s unread=%s stepped=%s labelled=%s warm=%s "
                 "published_version=%s published_as_of=%s events_per_s=%.0f", counts.seen,
                 counts.malformed, counts.interest, counts.sampled, counts.no_session,
                 counts.leaked, counts.skipped_leaked, counts.unread, counts.stepped,
                 model.labelled,
                 self.learner.warm, counts.last_publish_version, counts.last_publish_as_of,
                 rate)
        return self._redis_ok


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recs blend-learner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (KAFKA_BOOTSTRAP)")
    parser.add_argument("--topic", help="the clickstream topic (RECS_TOPIC_INTERACTIONS)")
    parser.add_argument("--redis-url", help="redis:// or redis+cluster:// (REDIS_URL)")
    parser.add_argument("--sample", type=float,
                        help="share of interest events learned, in (0, 1] (RECS_BLEND_SAMPLE)")
    parser.add_argument("--publish-every", type=float,
                        help="seconds between publications (RECS_BLEND_PUBLISH_MS / 1000)")
    parser.add_argument("--group", help=f"consumer group (default {GROUP})")
    parser.add_argument("--learn-leaked", action="store_true",
                        help="learn also from events a neighbour or trending list read for them "
                             "already counts (skipped by default: the race, "
                             "docs/architecture.md)")
    parser.add_argument("--from-earliest", action="store_true",
                        help="a new group starts at the topic's earliest offset (default: the "
                             "latest, live)")
    parser.add_argument("--metrics-port", type=int,
                        help="serve /metrics here (default RECS_BLEND_METRICS_PORT; 0 = off)")
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    parser.add_argument("--idle-exit", type=float,
                        help="stop after this many seconds without an event")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    settings = Settings.from_env()
    try:
        opts = options_of(settings, args)
    except ValueError as exc:
        parser.error(str(exc))
    shell = Shell(opts, settings)
    serve_metrics(shell.reading, settings.http_host,
                  settings.blend_metrics_port if args.metrics_port is None else args.metrics_port)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, shell.stop)
        signal.signal(signal.SIGINT, shell.stop)
    result = asyncio.run(shell.run())
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    return 0
