"""The JVM stages (``stream/jvm/``, Java twins of the Python operators) as PyFlink streams.

Each function applies one Java stage (``recs.stream.Stages``) to a PyFlink ``DataStream`` and
wraps the Java result back, so ``stream/topology.py`` wires JVM and Python stages alike. The
shaded jar (``make`` builds it with Maven) must be on ``pipeline.jars`` before the first call:
:func:`jar` finds it.

Which Java class twins which Python operator:

==========================  =================================================
``ParseInteractions.java``  ``schemas/events.py`` + ``ParseInteractions``
``DedupFunction.java``      ``operators/dedup.py``
``SessionFunction.java``    ``operators/session.py`` + ``SessionFunction``
``NeighbourFunction.java``  ``operators/neighbours.py`` + ``NeighbourFunction``
``Items.java``              ``operators/trending.py`` (items) + ``operators/arrivals.py``
``ItemFunction.java``       ``ItemFunction`` + ``explode_items``
``TopKFunction.java``       ``operators/trending.py`` (top-K) + ``TopKFunction``
``Decay.java``              ``operators/decay.py``
``RedisUpdateSink.java``    ``stream/loader.py`` + ``state/redis_store.py``
``ModelFeed.java``          (none: it batches and samples the models' inputs)
==========================  =================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from operators.config import EngineConfig, NeighbourConfig
from operators.mf_config import EXPLICIT

JVM_DIR: Final = Path(__file__).resolve().parent / "jvm"
JAR: Final = JVM_DIR / "target" / "recs-stream-jvm.jar"


class MissingJar(RuntimeError):
    """The JVM stages' jar has not been built."""


def jar(path: Path = JAR) -> Path:
    """The shaded jar of the JVM stages; built by ``make`` (``bash stream/jvm/build.sh``)."""
    if not path.is_file():
        raise MissingJar(f"stream.jvm: {path} is missing; run `make install` or "
                         "`bash stream/jvm/build.sh` (needs Java 17 and Maven)")
    return path


def _stages() -> Any:
    from pyflink.java_gateway import get_gateway

    return get_gateway().jvm.recs.stream.Stages


def _wrap(j_stream: Any) -> Any:
    from pyflink.datastream import DataStream

    return DataStream(j_stream)


@dataclass(frozen=True, slots=True)
class Parsed:
    """The parse stage: valid events (JVM EVENT rows) and the dead letters (strings)."""

    events: Any
    dead: Any


def parse(raw: Any) -> Parsed:
    j_parsed = _stages().parse(raw._j_data_stream)
    return Parsed(_wrap(j_parsed), _wrap(_stages().deadLetters(j_parsed)))


def source_watermarks(out_of_orderness_ms: int, idleness_ms: int) -> Any:
    """The interactions' Kafka source's WatermarkStrategy: event time read from the raw
    document, a watermark per partition (``EventTimes.java``)."""
    from pyflink.common import WatermarkStrategy

    return WatermarkStrategy(_stages().sourceWatermarks(out_of_orderness_ms, idleness_ms))


def watermarks(events: Any, out_of_orderness_ms: int, idleness_ms: int) -> Any:
    return _wrap(_stages().watermarks(events._j_data_stream, out_of_orderness_ms, idleness_ms))


def dedup(events: Any, cfg: EngineConfig, *, grace_ms: int) -> Any:
    """``grace_ms``: how far behind the watermark an event may be and still meet the spec's state
    (out-of-orderness + allowed lateness); a user's dedup state is cleared once the watermark
    passes its newest event time + the window + ``grace_ms`` (the reasoning that this changes
    no output is in ``DedupFunction.java``)."""
    return _wrap(_stages().dedup(events._j_data_stream, cfg.dedup.window_ms,
                                 cfg.dedup.max_ids, grace_ms))


@dataclass(frozen=True, slots=True)
class Sessions:
    """The session stage: pair rows (PAIRS_ROW), session updates, and the models' inputs."""

    pairs: Any
    updates: Any
    model_input: Any
    ranker_input: Any


def session_config(cfg: EngineConfig, *, models: bool, publish_ms: int, grace_ms: int) -> str:
    """What ``SessionFunction.java`` is configured with (``Stages.sessionConfig`` reads it);
    ``publish_ms`` > 0 publishes a changed session at most that often (0: on every change);
    ``grace_ms``, out-of-orderness + allowed lateness: a user's session state is cleared
    once the watermark passes its newest event time + ``ttl_ms`` + ``grace_ms`` (the reasoning
    that this changes no output is in ``SessionFunction.java``)."""
    s, mf = cfg.session, cfg.mf
    return orjson.dumps({
        "max_events": s.max_events, "gap_ms": s.gap_ms, "ttl_ms": s.ttl_ms,
        "pair_window": s.pair_window, "backward_weight": s.backward_weight,
        "max_basket": s.max_basket, "max_purchased": s.max_purchased,
        "cart_pair_weight": s.cart_pair_weight, "purchase_pair_weight": s.purchase_pair_weight,
        "max_shown": s.max_shown, "publish_ms": publish_ms, "models": models,
        "expiry_grace_ms": grace_ms,
        "explicit": mf.mode == EXPLICIT,
        # stream/routing.py learns_from
        "learn_types": sorted(t for t, w in mf.event_weights.items() if w > 0),
    }).decode()


def sessions(deduped: Any, cfg: EngineConfig, *, models: bool, publish_ms: int,
             grace_ms: int) -> Sessions:
    stages = _stages()
    j_sessions = stages.sessions(deduped._j_data_stream,
                                 session_config(cfg, models=models, publish_ms=publish_ms,
                                                grace_ms=grace_ms))
    return Sessions(_wrap(j_sessions), _wrap(stages.sessionUpdates(j_sessions)),
                    _wrap(stages.modelInput(j_sessions)), _wrap(stages.rankerInput(j_sessions)))


def model_feed(events: Any, name: str, budget: float, max_batch: int, max_delay_ms: int) -> Any:
    """``ModelFeed.java`` on a model's input (EVENT_ROW): ``MODEL_BATCH`` rows when
    ``max_batch > 1``, else the kept events; at most ``budget`` events a second reach the model
    (``<= 0``: every event), the rest are skipped by user (see the Java class)."""
    return _wrap(_stages().modelFeed(events._j_data_stream, name, float(budget), max_batch,
                                     max_delay_ms))


def neighbour_config(cfg: EngineConfig, emit_interval_ms: int) -> str:
    """What ``NeighbourFunction.java`` is configured with (``Stages.neighbours`` reads it):
    one ``NeighbourConfig`` per relation, ``similar_recent`` null when the second
    similar-items list is off."""
    def one(n: NeighbourConfig) -> dict[str, Any]:
        return {"capacity": n.capacity, "top_k": n.top_k, "half_life_s": n.half_life_s}

    recent = cfg.similar_recent
    return orjson.dumps({"similar": one(cfg.similar), "bought": one(cfg.bought),
                         "similar_recent": None if recent is None else one(recent),
                         "emit_interval_ms": emit_interval_ms}).decode()


def neighbours(pairs: Any, cfg: EngineConfig, emit_interval_ms: int) -> Any:
    """Co-visitation and co-purchase neighbours (and the second similar-items list when it is
    on); returns the stream of Update lines."""
    return _wrap(_stages().neighbours(pairs._j_data_stream,
                                      neighbour_config(cfg, emit_interval_ms)))


def items(events: Any, catalogue: Any, cfg: EngineConfig, emit_interval_ms: int
          ) -> tuple[Any, Any]:
    """The items stage on the JVM events and the catalogue (ITEM_ROW): returns the SCORE_ROW
    stream (for :func:`trending`) and the stream of Update lines (item values and stats)."""
    t = cfg.trending
    conf = orjson.dumps({"event_weights": dict(cfg.event_weights), "half_life_s": t.half_life_s,
                         "max_context_scopes": t.max_context_scopes,
                         "emit_interval_ms": emit_interval_ms}).decode()
    stages = _stages()
    j_items = stages.items(events._j_data_stream, catalogue._j_data_stream, conf)
    return _wrap(j_items), _wrap(stages.itemUpdates(j_items))


def trending(scores: Any, cfg: EngineConfig, emit_interval_ms: int) -> Any:
    """The trending and new-arrival lists from ItemFunction's SCORE_ROW stream; Update lines."""
    t = cfg.trending
    return _wrap(_stages().trending(scores._j_data_stream, t.top_k, t.new_top_k, t.half_life_s,
                                    emit_interval_ms))


def untimed(updates: Any, name: str = "untimed") -> Any:
    """The Update lines without record timestamps (``Stages.untimed``: an end-of-input timer's
    side output carries 2^62, which a Kafka sink must not send); ``name``: the operator's name
    and uid, for a second use (the dead letters)."""
    return _wrap(_stages().untimed(updates._j_data_stream, name))


def redis_sink(settings: Any) -> Any:
    """``RedisUpdateSink`` for the job's updates (``Settings.writer == "jvm"``), as a PyFlink
    sink: the Redis URL, the session TTL, the flush interval (``writer_flush_ms``; a flush
    also runs before every checkpoint) and the writer name of the freshness stamp."""
    from pyflink.datastream.connectors import Sink
    from pyflink.java_gateway import get_gateway

    j_sink = get_gateway().jvm.recs.stream.RedisUpdateSink.of(
        settings.redis_url, settings.session_ttl_ms // 1000, settings.writer_flush_ms,
        WRITER_MAX_PENDING, "stream")
    return Sink(j_sink)


WRITER_MAX_PENDING: Final = 50_000  # keys a subtask coalesces before it writes early


def tool_classpath(path: Path = JAR) -> str:
    """Class path to run the jar's command-line tools (``recs.stream.ValidateMain``) outside
    Flink: the jar and Flink's ``flink-dist`` (its shaded Jackson), from the installed PyFlink."""
    from infra.paths import pyflink_plugins_dir

    dist = sorted((pyflink_plugins_dir().parent / "lib").glob("flink-dist-*.jar"))
    if not dist:
        raise MissingJar("stream.jvm: no flink-dist jar in the installed PyFlink's lib/")
    return f"{jar(path)}:{dist[-1]}"
