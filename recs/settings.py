"""One settings object, read once at start-up from the environment (never at import time)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from operators.config import SIMILAR_RECENT_HALF_LIFE_S


@dataclass(frozen=True, slots=True)
class Topics:
    interactions: str = "interactions"
    items: str = "items"
    dlq: str = "interactions.dlq"
    updates: str = "recs.updates"  # one partition: per-key order of updates is preserved

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        """Topic names under a prefix, so several deployments or test runs share one broker."""
        d = cls()
        return cls(prefix + d.interactions, prefix + d.items, prefix + d.dlq,
                   prefix + d.updates)


@dataclass(frozen=True, slots=True)
class Settings:
    kafka_bootstrap: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    run_dir: Path = Path("run")
    topics: Topics = field(default_factory=Topics)
    partitions: int = 4
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # event-time behaviour
    out_of_orderness_ms: int = 2_000
    session_gap_ms: int = 30 * 60_000
    session_ttl_ms: int = 30 * 86_400_000
    # how far behind the watermark an event may be and still meet the keyed state the operators'
    # spec would (the JVM job clears an idle user's state that much after it could matter; a
    # backlog drained from skewed partitions is minutes late, see docs/stream.md)
    state_expiry_lateness_ms: int = 86_400_000
    # Flink
    parallelism: int = 1
    # where the per-event path runs: "jvm" (parse, dedup, sessions, neighbours, items and
    # trending as Java twins of the Python operators, stream/jvm/; the models stay in Python,
    # fed in batches) or "python" (every stage a Python shell around its operator: the
    # reference, 10x slower; see stream/topology.py)
    stream_runtime: str = "jvm"
    # who writes the stages' updates to Redis: "loader" (the recs.updates topic and `recs
    # load`) or "jvm" (RedisUpdateSink inside the job, flushed every writer_flush_ms and on
    # every checkpoint; no topic, no loader process)
    writer: str = "loader"
    writer_flush_ms: int = 200
    checkpoint_interval_ms: int = 5_000
    # Flink's keyed-state backend: "hashmap" (on the heap, full checkpoints) or "rocksdb" (on
    # local disk, incremental checkpoints: only the changed state is written each interval)
    state_backend: str = "hashmap"
    # how often a changed neighbour list, item value or trending list is published at most
    # (sessions are published on every change)
    emit_interval_ms: int = 1_000
    # the online models (stream/models.py): on or off, how often changed vectors and the
    # ranker are published, how many sampled negatives each positive learns against
    models: bool = True
    model_publish_ms: int = 2_000
    # jvm runtime: the most events a second each model learns from (ModelFeed.java); beyond
    # it they learn from a sample of users and the counting path never waits for them (0:
    # every event, as the python runtime always does). 500: the collaborative model learns
    # 1.2-1.4k events/s while the counting path drains a backlog beside it on this 2-core
    # machine (`make bench-stream`); half of that leaves room for bursts and the ranker
    model_max_events_per_s: float = 500.0
    mf_negatives: int = 10
    # the second similar-items list's half-life in seconds (EngineConfig.similar_recent; 0: off)
    similar_recent_half_life_s: float = SIMILAR_RECENT_HALF_LIFE_S
    ranker_window_ms: int = 30 * 60_000  # attribution window of an impression (event time)
    # the blend learner (`recs blend-learner`, stream/blend_learner.py): the share of interest
    # events it learns from (sampled by event id) and how often it publishes the learned blend
    # and commits its offsets
    blend_sample: float = 1.0
    blend_publish_ms: int = 5_000
    # the learned blend's age features (LearnedBlendConfig.ages), in the config the learner
    # publishes, so the server computes them exactly when the weights learned them
    blend_ages: bool = True
    # serving: rules and experiments files ("" = the ones shipped in serving/config), how long
    # shared lists stay in the server's cache, the time budget of its Redis reads
    rules_file: str = ""
    experiments_file: str = ""
    serve_cache_ttl_ms: int = 1_000
    serve_budget_ms: int = 100
    # the compiled core's twins of the serving path's pure steps (serving/native.py): used when
    # built; False (RECS_NATIVE=0) runs the Python functions
    native: bool = True
    # observability: where each process exports Prometheus metrics (0 = off), Flink's REST port
    monitor_port: int = 9108
    loader_metrics_port: int = 9109
    blend_metrics_port: int = 9110  # recs blend-learner's /metrics
    flink_metrics_port: int = 9249
    flink_rest_port: int = 8081
    metrics_targets: str = ""  # name=http://host:port/metrics,... read by /dashboard, recs status
    # the server's edge (serving/guard.py, docs/api.md): the keys file (API key hashes and token
    # secrets; "" = no key is valid), auth switched off (local development only, logged loudly),
    # rate limits (requests/s and burst, per key and per client address of browser traffic),
    # the CORS allow-list (comma-separated origins, none by default), whether loopback clients
    # reach the private side (/metrics, /dashboard, /docs) without a key, the request timeout,
    # and the demo storefront's token endpoint with the public key it hands to the page
    keys_file: str = ""
    auth_off: bool = False
    rate_key_rps: float = 1_000.0
    rate_key_burst: float = 2_000.0
    rate_addr_rps: float = 20.0
    rate_addr_burst: float = 100.0
    cors_origins: str = ""
    private_loopback: bool = False
    request_timeout_ms: int = 10_000
    demo_storefront: bool = False
    demo_public_key: str = ""

    @property
    def similar_recent_on(self) -> bool:
        """The second similar-items list's one switch: on, the job publishes it and the server
        and the blend learner read it (every process reads the same variable, so the lists
        read are the lists published, and the features learned the features served)."""
        return self.similar_recent_half_life_s > 0

    def to_env(self) -> dict[str, str]:
        """Environment that makes a child process's :meth:`from_env` equal to these settings."""
        return {
            "KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "REDIS_URL": self.redis_url,
            "RECS_RUN_DIR": str(self.run_dir),
            "RECS_TOPIC_INTERACTIONS": self.topics.interactions,
            "RECS_TOPIC_ITEMS": self.topics.items,
            "RECS_TOPIC_DLQ": self.topics.dlq,
            "RECS_TOPIC_UPDATES": self.topics.updates,
            "RECS_PARTITIONS": str(self.partitions),
            "RECS_HTTP_HOST": self.http_host,
            "RECS_HTTP_PORT": str(self.http_port),
            "RECS_OUT_OF_ORDERNESS_MS": str(self.out_of_orderness_ms),
            "RECS_SESSION_GAP_MS": str(self.session_gap_ms),
            "RECS_SESSION_TTL_MS": str(self.session_ttl_ms),
            "RECS_STATE_EXPIRY_LATENESS_MS": str(self.state_expiry_lateness_ms),
            "RECS_PARALLELISM": str(self.parallelism),
            "RECS_STREAM_RUNTIME": self.stream_runtime,
            "RECS_STATE_BACKEND": self.state_backend,
            "RECS_WRITER": self.writer,
            "RECS_WRITER_FLUSH_MS": str(self.writer_flush_ms),
            "RECS_CHECKPOINT_INTERVAL_MS": str(self.checkpoint_interval_ms),
            "RECS_EMIT_INTERVAL_MS": str(self.emit_interval_ms),
            "RECS_MODELS": "1" if self.models else "0",
            "RECS_MODEL_PUBLISH_MS": str(self.model_publish_ms),
            "RECS_MODEL_MAX_EVENTS_PER_S": str(self.model_max_events_per_s),
            "RECS_MF_NEGATIVES": str(self.mf_negatives),
            "RECS_SIMILAR_RECENT_HALF_LIFE_S": repr(self.similar_recent_half_life_s),
            "RECS_RANKER_WINDOW_MS": str(self.ranker_window_ms),
            "RECS_BLEND_SAMPLE": repr(self.blend_sample),
            "RECS_BLEND_PUBLISH_MS": str(self.blend_publish_ms),
            "RECS_BLEND_AGES": "1" if self.blend_ages else "0",
            "RECS_RULES_FILE": self.rules_file,
            "RECS_EXPERIMENTS_FILE": self.experiments_file,
            "RECS_SERVE_CACHE_TTL_MS": str(self.serve_cache_ttl_ms),
            "RECS_SERVE_BUDGET_MS": str(self.serve_budget_ms),
            "RECS_NATIVE": "1" if self.native else "0",
            "RECS_MONITOR_PORT": str(self.monitor_port),
            "RECS_LOADER_METRICS_PORT": str(self.loader_metrics_port),
            "RECS_BLEND_METRICS_PORT": str(self.blend_metrics_port),
            "RECS_FLINK_METRICS_PORT": str(self.flink_metrics_port),
            "RECS_FLINK_REST_PORT": str(self.flink_rest_port),
            "RECS_METRICS_TARGETS": self.metrics_targets,
            "RECS_KEYS_FILE": self.keys_file,
            "RECS_AUTH": "off" if self.auth_off else "on",
            "RECS_RATE_KEY_RPS": repr(self.rate_key_rps),
            "RECS_RATE_KEY_BURST": repr(self.rate_key_burst),
            "RECS_RATE_ADDR_RPS": repr(self.rate_addr_rps),
            "RECS_RATE_ADDR_BURST": repr(self.rate_addr_burst),
            "RECS_CORS_ORIGINS": self.cors_origins,
            "RECS_PRIVATE_LOOPBACK": "1" if self.private_loopback else "0",
            "RECS_REQUEST_TIMEOUT_MS": str(self.request_timeout_ms),
            "RECS_DEMO_STOREFRONT": "1" if self.demo_storefront else "0",
            "RECS_DEMO_PUBLIC_KEY": self.demo_public_key,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``RECS_*`` variables (and ``REDIS_URL`` / ``KAFKA_BOOTSTRAP``)."""
        e = os.environ if env is None else env
        d = cls()
        return cls(
            kafka_bootstrap=e.get("KAFKA_BOOTSTRAP", e.get("RECS_KAFKA_BOOTSTRAP",
                                                           d.kafka_bootstrap)),
            redis_url=e.get("REDIS_URL", e.get("RECS_REDIS_URL", d.redis_url)),
            run_dir=Path(e.get("RECS_RUN_DIR", str(d.run_dir))),
            topics=_topics_from_env(e),
            partitions=int(e.get("RECS_PARTITIONS", d.partitions)),
            http_host=e.get("RECS_HTTP_HOST", d.http_host),
            http_port=int(e.get("RECS_HTTP_PORT", d.http_port)),
            out_of_orderness_ms=int(e.get("RECS_OUT_OF_ORDERNESS_MS", d.out_of_orderness_ms)),
            session_gap_ms=int(e.get("RECS_SESSION_GAP_MS", d.session_gap_ms)),
            session_ttl_ms=int(e.get("RECS_SESSION_TTL_MS", d.session_ttl_ms)),
            state_expiry_lateness_ms=int(e.get("RECS_STATE_EXPIRY_LATENESS_MS",
                                               d.state_expiry_lateness_ms)),
            parallelism=int(e.get("RECS_PARALLELISM", d.parallelism)),
            stream_runtime=e.get("RECS_STREAM_RUNTIME", d.stream_runtime),
            state_backend=_state_backend(e.get("RECS_STATE_BACKEND", d.state_backend)),
            writer=e.get("RECS_WRITER", d.writer),
            writer_flush_ms=int(e.get("RECS_WRITER_FLUSH_MS", d.writer_flush_ms)),
            checkpoint_interval_ms=int(e.get("RECS_CHECKPOINT_INTERVAL_MS",
                                             d.checkpoint_interval_ms)),
            emit_interval_ms=int(e.get("RECS_EMIT_INTERVAL_MS", d.emit_interval_ms)),
            models=e.get("RECS_MODELS", "1" if d.models else "0") not in ("0", "false", "no"),
            model_publish_ms=int(e.get("RECS_MODEL_PUBLISH_MS", d.model_publish_ms)),
            model_max_events_per_s=float(e.get("RECS_MODEL_MAX_EVENTS_PER_S",
                                               d.model_max_events_per_s)),
            mf_negatives=int(e.get("RECS_MF_NEGATIVES", d.mf_negatives)),
            similar_recent_half_life_s=float(e.get("RECS_SIMILAR_RECENT_HALF_LIFE_S",
                                                   d.similar_recent_half_life_s)),
            ranker_window_ms=int(e.get("RECS_RANKER_WINDOW_MS", d.ranker_window_ms)),
            blend_sample=float(e.get("RECS_BLEND_SAMPLE", d.blend_sample)),
            blend_publish_ms=int(e.get("RECS_BLEND_PUBLISH_MS", d.blend_publish_ms)),
            blend_ages=_flag(e.get("RECS_BLEND_AGES", "1")),
            rules_file=e.get("RECS_RULES_FILE", d.rules_file),
            experiments_file=e.get("RECS_EXPERIMENTS_FILE", d.experiments_file),
            serve_cache_ttl_ms=int(e.get("RECS_SERVE_CACHE_TTL_MS", d.serve_cache_ttl_ms)),
            serve_budget_ms=int(e.get("RECS_SERVE_BUDGET_MS", d.serve_budget_ms)),
            native=_flag(e.get("RECS_NATIVE", "1")),
            monitor_port=int(e.get("RECS_MONITOR_PORT", d.monitor_port)),
            loader_metrics_port=int(e.get("RECS_LOADER_METRICS_PORT", d.loader_metrics_port)),
            blend_metrics_port=int(e.get("RECS_BLEND_METRICS_PORT", d.blend_metrics_port)),
            flink_metrics_port=int(e.get("RECS_FLINK_METRICS_PORT", d.flink_metrics_port)),
            flink_rest_port=int(e.get("RECS_FLINK_REST_PORT", d.flink_rest_port)),
            metrics_targets=e.get("RECS_METRICS_TARGETS", d.metrics_targets),
            keys_file=e.get("RECS_KEYS_FILE", d.keys_file),
            auth_off=_auth_off(e.get("RECS_AUTH", "on")),
            rate_key_rps=float(e.get("RECS_RATE_KEY_RPS", d.rate_key_rps)),
            rate_key_burst=float(e.get("RECS_RATE_KEY_BURST", d.rate_key_burst)),
            rate_addr_rps=float(e.get("RECS_RATE_ADDR_RPS", d.rate_addr_rps)),
            rate_addr_burst=float(e.get("RECS_RATE_ADDR_BURST", d.rate_addr_burst)),
            cors_origins=e.get("RECS_CORS_ORIGINS", d.cors_origins),
            private_loopback=_flag(e.get("RECS_PRIVATE_LOOPBACK", "0")),
            request_timeout_ms=int(e.get("RECS_REQUEST_TIMEOUT_MS", d.request_timeout_ms)),
            demo_storefront=_flag(e.get("RECS_DEMO_STOREFRONT", "0")),
            demo_public_key=e.get("RECS_DEMO_PUBLIC_KEY", d.demo_public_key),
        )


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("", "0", "false", "no", "off")


STATE_BACKENDS = ("hashmap", "rocksdb")


def _state_backend(value: str) -> str:
    """``RECS_STATE_BACKEND``: one of :data:`STATE_BACKENDS`."""
    v = value.strip().lower()
    if v not in STATE_BACKENDS:
        raise ValueError(f"settings: RECS_STATE_BACKEND must be one of {STATE_BACKENDS}, "
                         f"got {value!r}")
    return v


def _auth_off(value: str) -> bool:
    """``RECS_AUTH``: ``on`` (the default) or ``off``; anything else is an error, so a typo never
    switches authentication off."""
    v = value.strip().lower()
    if v not in ("on", "off"):
        raise ValueError(f"settings: RECS_AUTH must be 'on' or 'off', got {value!r}")
    return v == "off"


def _topics_from_env(e: Mapping[str, str]) -> Topics:
    base = Topics.with_prefix(e.get("RECS_TOPIC_PREFIX", ""))
    return Topics(
        interactions=e.get("RECS_TOPIC_INTERACTIONS", base.interactions),
        items=e.get("RECS_TOPIC_ITEMS", base.items),
        dlq=e.get("RECS_TOPIC_DLQ", base.dlq),
        updates=e.get("RECS_TOPIC_UPDATES", base.updates),
    )
