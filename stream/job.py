"""The PyFlink job: Kafka sources -> :func:`stream.topology.define_workflow` -> Kafka sinks.

    recs job [--parallelism N] [--checkpoint-dir DIR] [--restore latest|PATH] [--bounded]
             [--cluster | --jobmanager HOST:PORT]

Runs on Flink's local mini-cluster in this process (thread mode: the Python operators run inside
the JVM, the only fast mode for keyed Python state). ``--cluster`` / ``--jobmanager`` submit it
to a Flink cluster with ``flink run`` instead and print the job id (``stream/submit.py``).

Delivery: Kafka offsets live in Flink's checkpoints (and are committed back to the group on each
checkpoint for lag monitoring). Updates reach Redis one of two ways (``RECS_WRITER``):
``loader`` (the default) sends them to ``recs.updates`` with at-least-once delivery (flushed on
every checkpoint) and ``stream.loader`` applies them with versioned writes; ``jvm`` writes them
from the job itself (``RedisUpdateSink``, stream/jvm/: coalesced per key, flushed every
``RECS_WRITER_FLUSH_MS`` and before every checkpoint, through the loader's own conditional
script). Either way a restart from the last checkpoint converges to the same Redis state.

Observability: Flink's REST API listens on ``127.0.0.1:RECS_FLINK_REST_PORT`` (``recs monitor``
reads jobs, checkpoints and watermarks there) and Flink's Prometheus reporter exports the job's
metrics on ``RECS_FLINK_METRICS_PORT`` (0 = off). A port already taken does not stop the job:
the REST API then takes any free port and the reporter stays off, with a warning.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

from infra.paths import python_path
from infra.procs import LOOPBACK, port_is_free
from operators.config import EngineConfig, SessionConfig, recent_similar
from recs.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobOptions:
    parallelism: int = 1
    checkpoint_dir: Path | None = None
    restore_from: Path | None = None
    bounded: bool = False
    group_id: str = "recs-stream"
    job_name: str = "recs-stream"
    # submitted to a cluster by `flink run` (stream/submit.py): the cluster's own configuration
    # decides slots, the restart strategy, REST and metric reporters
    remote: bool = False


LOADER_WRITER: Final = "loader"  # Settings.writer: recs.updates + the Python loader
JVM_WRITER: Final = "jvm"        # RedisUpdateSink inside the job (stream/jvm/)
WRITERS: Final = (LOADER_WRITER, JVM_WRITER)


def prepare_python_env() -> None:
    """Thread mode embeds CPython in the JVM: give it this interpreter's import path."""
    paths = python_path()
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([current] if current else []))


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest completed checkpoint (``chk-N`` holding ``_metadata``) under a job's dir."""
    best: tuple[int, Path] | None = None
    for meta in checkpoint_dir.glob("*/chk-*/_metadata"):
        n = int(meta.parent.name.split("-", 1)[1])
        if best is None or n > best[0]:
            best = (n, meta.parent)
    return None if best is None else best[1]


def observability_options(settings: Settings) -> tuple[dict[str, str], list[Path]]:
    """Flink options for the REST endpoint and the Prometheus reporter, and the jars they need.

    The local mini-cluster binds its REST endpoint to a random port unless ``rest.bind-port``
    is set, and loads no plugins: the reporter's jar goes on ``pipeline.jars`` instead.
    """
    from infra.paths import MissingDependency, flink_prometheus_jar

    rest_port = settings.flink_rest_port
    if rest_port and not port_is_free(rest_port):
        log.warning("job: flink_rest_port %s is taken; Flink's REST API takes any free port "
                    "and recs monitor will not see the job", rest_port)
        rest_port = 0
    options = {"rest.address": LOOPBACK, "rest.bind-address": LOOPBACK,
               "rest.bind-port": str(rest_port)}
    jars: list[Path] = []
    metrics_port = settings.flink_metrics_port
    if metrics_port and not port_is_free(metrics_port):
        log.warning("job: flink_metrics_port %s is taken; Flink's Prometheus reporter is off",
                    metrics_port)
    elif metrics_port:
        try:
            jars.append(flink_prometheus_jar())
        except MissingDependency as exc:
            log.warning("job: Flink's Prometheus reporter is off: %s", exc)
        else:
            options["metrics.reporter.prom.factory.class"] = (
                "org.apache.flink.metrics.prometheus.PrometheusReporterFactory")
            options["metrics.reporter.prom.port"] = str(metrics_port)
    return options, jars


def engine_config(settings: Settings) -> EngineConfig:
    """The operators' configuration the job runs with (the reference runner's, to compare)."""
    base = EngineConfig()
    return EngineConfig(session=SessionConfig(gap_ms=settings.session_gap_ms,
                                              ttl_ms=settings.session_ttl_ms),
                        similar_recent=recent_similar(base.similar,
                                                      settings.similar_recent_half_life_s),
                        mf=replace(base.mf, negatives=settings.mf_negatives),
                        ranker=replace(base.ranker,
                                       window_ms=settings.ranker_window_ms))


def build(settings: Settings, opts: JobOptions):  # type: ignore[no-untyped-def]
    """Create the environment and the whole pipeline; returns the environment to execute."""
    from pyflink.common import Configuration, WatermarkStrategy
    from pyflink.common.serialization import SimpleStringSchema
    from pyflink.datastream import CheckpointingMode, StreamExecutionEnvironment
    from pyflink.datastream.connectors.base import DeliveryGuarantee
    from pyflink.datastream.connectors.kafka import (
        KafkaOffsetsInitializer,
        KafkaRecordSerializationSchema,
        KafkaSink,
        KafkaSource,
    )
    from pyflink.datastream.externalized_checkpoint_retention import (
        ExternalizedCheckpointRetention,
    )

    from infra.paths import flink_connector_jar
    from infra.topics import producer_delivery_properties
    from stream import jvm
    from stream.topology import JVM, TopologyConfig, define_workflow

    prepare_python_env()
    conf = Configuration()
    conf.set_string("python.execution-mode", "thread")
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    extra_options, extra_jars = ({}, []) if opts.remote else observability_options(settings)
    for key, value in extra_options.items():
        conf.set_string(key, value)
    if settings.writer not in WRITERS:
        raise ValueError(f"stream.job: RECS_WRITER={settings.writer!r}, expected one of "
                         f"{WRITERS}")
    jars = [flink_connector_jar(), *extra_jars]
    if settings.stream_runtime == JVM or settings.writer == JVM_WRITER:
        jars.append(jvm.jar())
    conf.set_string("pipeline.jars", ";".join(jar.resolve().as_uri() for jar in jars))
    conf.set_string("pipeline.name", opts.job_name)
    if not opts.remote:  # the local mini-cluster
        conf.set_string("taskmanager.numberOfTaskSlots", str(max(1, opts.parallelism)))
        conf.set_string("restart-strategy.type", "fixed-delay")
        conf.set_string("restart-strategy.fixed-delay.attempts", "3")
        conf.set_string("restart-strategy.fixed-delay.delay", "2 s")
    if opts.checkpoint_dir is not None:
        conf.set_string("execution.checkpointing.dir", opts.checkpoint_dir.resolve().as_uri())
    # RocksDB ships in flink-dist: no extra jar; its checkpoints are incremental
    conf.set_string("state.backend.type", settings.state_backend)
    if settings.state_backend == "rocksdb":
        conf.set_string("execution.checkpointing.incremental", "true")
    if opts.restore_from is not None:
        conf.set_string("execution.state-recovery.path", str(opts.restore_from))
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(opts.parallelism)
    if opts.checkpoint_dir is not None:
        env.enable_checkpointing(settings.checkpoint_interval_ms, CheckpointingMode.EXACTLY_ONCE)
        ck = env.get_checkpoint_config()
        ck.set_externalized_checkpoint_retention(
            ExternalizedCheckpointRetention.RETAIN_ON_CANCELLATION)
        ck.set_min_pause_between_checkpoints(500)

    def source(topic: str, name: str, watermarks: Any = None):  # type: ignore[no-untyped-def]
        builder = (KafkaSource.builder()
                   .set_bootstrap_servers(settings.kafka_bootstrap)
                   .set_topics(topic)
                   .set_group_id(f"{opts.group_id}-{name}")
                   .set_starting_offsets(KafkaOffsetsInitializer.earliest())
                   .set_value_only_deserializer(SimpleStringSchema())
                   .set_property("commit.offsets.on.checkpoint", "true")
                   .set_property("partition.discovery.interval.ms", "10000"))
        if opts.bounded:
            builder = builder.set_bounded(KafkaOffsetsInitializer.latest())
        return env.from_source(builder.build(), watermarks or WatermarkStrategy.no_watermarks(),
                               name).uid(f"source-{name}")

    def sink(topic: str):  # type: ignore[no-untyped-def]
        builder = (KafkaSink.builder()
                   .set_bootstrap_servers(settings.kafka_bootstrap)
                   .set_record_serializer(KafkaRecordSerializationSchema.builder()
                                          .set_topic(topic)
                                          .set_value_serialization_schema(SimpleStringSchema())
                                          .build())
                   .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
                   .set_property("linger.ms", "5")
                   .set_property("compression.type", "lz4"))
        # acks=all + idempotence: a broker lost mid-stream loses no update and duplicates none
        for key, value in producer_delivery_properties().items():
            builder = builder.set_property(key, value)
        return builder.build()

    engine = engine_config(settings)
    # jvm runtime: event time read at the source, a watermark per partition (EventTimes.java)
    per_partition = settings.stream_runtime == JVM
    topo = TopologyConfig(engine=engine, out_of_orderness_ms=settings.out_of_orderness_ms,
                          state_expiry_lateness_ms=settings.state_expiry_lateness_ms,
                          emit_interval_ms=settings.emit_interval_ms, models=settings.models,
                          model_publish_ms=settings.model_publish_ms,
                          model_max_events_per_s=settings.model_max_events_per_s,
                          runtime=settings.stream_runtime, source_watermarks=per_partition)
    interactions = source(settings.topics.interactions, "interactions",
                          jvm.source_watermarks(topo.out_of_orderness_ms, topo.idleness_ms)
                          if per_partition else None)
    updates, dead = define_workflow(interactions, source(settings.topics.items, "items"), topo)
    if settings.writer == JVM_WRITER:
        # straight to Redis from the job: coalesced, versioned, flushed on every checkpoint
        updates.sink_to(jvm.redis_sink(settings)).name("redis-writer").uid("redis-writer")
    else:
        updates.sink_to(sink(settings.topics.updates)).name("updates-sink").uid("updates-sink")
    dead.sink_to(sink(settings.topics.dlq)).name("dlq-sink").uid("dlq-sink")
    return env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="recs job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parallelism", type=int, default=None)
    parser.add_argument("--checkpoint-dir", type=Path, default=None,
                        help="enables checkpointing (default: <run dir>/checkpoints)")
    parser.add_argument("--no-checkpoints", action="store_true")
    parser.add_argument("--restore", default=None,
                        help="'latest' (newest checkpoint under --checkpoint-dir) or a path")
    parser.add_argument("--bounded", action="store_true",
                        help="stop at the end offsets seen at start-up (tests, backfills)")
    parser.add_argument("--group-id", default="recs-stream")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--cluster", action="store_true",
                       help="submit with `flink run` to the cluster `recs infra up --cluster` "
                            "started (stream/submit.py); prints the job id")
    where.add_argument("--jobmanager", metavar="HOST:PORT",
                       help="submit with `flink run` to the JobManager whose REST API is there")
    where.add_argument("--remote", action="store_true", help=argparse.SUPPRESS)  # under flink run
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = Settings.from_env()
    ck_dir = None if args.no_checkpoints else (args.checkpoint_dir
                                                or settings.run_dir / "checkpoints")
    restore = None
    if args.restore == "latest":
        if ck_dir is None:
            parser.error("--restore latest needs checkpoints")
        restore = latest_checkpoint(ck_dir)
        log.info("restoring from %s", restore or "nothing (no completed checkpoint)")
    elif args.restore:
        restore = Path(args.restore)
    opts = JobOptions(parallelism=args.parallelism or settings.parallelism,
                      checkpoint_dir=ck_dir, restore_from=restore, bounded=args.bounded,
                      group_id=args.group_id, remote=args.remote)
    if args.cluster or args.jobmanager:
        from stream import submit

        address, home = submit.target(settings, args.jobmanager)
        print(submit.submit(settings, address, opts, home=home))
        return 0
    env = build(settings, opts)
    env.execute(opts.job_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
