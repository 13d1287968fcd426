"""The topology as a function of its input streams: ``define_workflow(interactions, items)``.

Kept apart from sources and sinks (``stream/job.py``) so tests can feed it collections.

The stages, in order, and where each runs. ``TopologyConfig.runtime`` chooses the per-event
front: ``python`` (every stage a Python shell around its operator) or ``jvm`` (the stages marked
Java run as Java twins of the Python operators, ``stream/jvm/``; the Python operators stay the
specification and the parity tests compare both):

==============  ==============================  =====================================
stage           runtime ``python``              runtime ``jvm``
==============  ==============================  =====================================
parse           ParseInteractions (Python)      ParseInteractions.java
watermarks      Python timestamp assigner       Java timestamp assigner
dedup           (none)                          DedupFunction.java (operators/dedup.py)
sessions        SessionFunction (Python)        SessionFunction.java
neighbours      NeighbourFunction (Python)      NeighbourFunction.java
items           ItemFunction (Python)           ItemFunction.java (+ Items.java)
trending        TopKFunction (Python)           TopKFunction.java
models          ModelFunction, LabelFunction,   ModelFeed.java (batches, sampling), then
                RankerFunction (Python)         BatchedModelFunction, LabelFunction,
                                                RankerFunction (Python)
==============  ==============================  =====================================

    interactions (raw JSON) -> parse --(malformed)--> dlq
         | watermarks (bounded out-of-orderness, idle partitions do not stall)
         | [jvm] key_by(user) -> dedup (drops an event_id the user sent within the window)
         |-- key_by(user) -> sessions --pairs--> key_by(relation|src) -> NeighbourFunction
         '-- explode(items touched) -> key_by(item) -+-> ItemFunction --scores--> key_by(scope)
                                                     |                          -> TopKFunction
    items (raw JSON) -> ParseItems --(malformed)--> dlq      '-- key_by(item) ---'
    sessions --model input--> key_by("mf") -> ModelFunction <-- items (catalogue)
         '--ranker input (impressions, rec_id engagements)--> key_by(user) -> LabelFunction
                         --labelled examples--> key_by("ranker") -> RankerFunction <-- items
    every keyed function --updates--> union -> updates (Update wire lines)

Every valid event reaches the session stage, impressions included (they update the user's
``shown`` list). The rows to ItemFunction carry the event's device and country by name; its
scores go to the global, category and context scopes (``ctx:device:...``, ``ctx:country:...``,
``ctx:daypart:...``) and, on catalogue upserts, to the new-arrival scopes (``new:global``,
``new:cat:...``), all through the same TopKFunction keyed by scope.

The online models (``stream/models.py``; ``models=False`` leaves them out) learn from the same
parsed events: the session stage, which decodes every event anyway, routes the interest events
to the collaborative model and the impressions and ``rec_id`` engagements to the ranker's label
join by side outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from pyflink.common import Duration, Row, WatermarkStrategy
from pyflink.common.typeinfo import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream

from operators.config import EngineConfig
from stream import jvm
from stream.functions import (
    DLQ,
    EVENT_ROW,
    ITEM_EVENT_ROW,
    MODEL_INPUT,
    PAIRS_ROW,
    RANKER_INPUT,
    SCORE_ROW,
    UPDATES,
    ItemFunction,
    NeighbourFunction,
    ParseInteractions,
    ParseItems,
    SessionFunction,
    TopKFunction,
    explode_items,
)
from stream.models import (
    LABELS_ROW,
    MF_KEY,
    RANKER_KEY,
    BatchedModelFunction,
    LabelFunction,
    ModelFunction,
    RankerFunction,
)

PYTHON: Final = "python"  # TopologyConfig.runtime: every stage in Python
JVM: Final = "jvm"        # parse, dedup, sessions, neighbours and trending top-K in Java
RUNTIMES: Final = (PYTHON, JVM)

ITEM_ROW = Types.ROW_NAMED(["item_id", "ts", "body"],
                           [Types.STRING(), Types.LONG(), Types.STRING()])


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    engine: EngineConfig
    out_of_orderness_ms: int = 2_000
    # keyed state of an idle user is cleared this long (plus out_of_orderness_ms) after it last
    # mattered: events up to that far behind the watermark still meet the spec's state
    state_expiry_lateness_ms: int = 86_400_000
    idleness_ms: int = 5_000
    # jvm runtime: the interactions arrive with event time and watermarks from their source
    # (a watermark per Kafka partition: stream/job.py, EventTimes.java); no assigner after parse
    source_watermarks: bool = False
    emit_interval_ms: int = 1_000  # neighbour lists, item values, trending lists
    models: bool = True             # the online models (stream/models.py)
    model_publish_ms: int = 2_000   # changed vectors and the ranker, at most this often
    runtime: str = PYTHON           # where the per-event front runs (see the table above)
    # jvm runtime: the models' feeds (ModelFeed.java). At most this many events a second reach
    # each model (0: every event); the collaborative model learns batches of up to model_batch
    # events, handed over at least every model_batch_ms
    # jvm runtime: a changed session is published at most this often (the python runtime
    # publishes every change; the writers keep only the newest value of a key per flush)
    session_publish_ms: int = 200
    model_max_events_per_s: float = 0.0
    model_batch: int = 100
    model_batch_ms: int = 500

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"TopologyConfig.runtime: expected one of {RUNTIMES}, "
                             f"got {self.runtime!r}")
        if self.source_watermarks and self.runtime != JVM:
            raise ValueError("TopologyConfig.source_watermarks: only the jvm runtime reads "
                             f"event time at the source, got runtime {self.runtime!r}")


class EventTime(TimestampAssigner):  # type: ignore[misc]
    def extract_timestamp(self, value: Row, record_timestamp: int) -> int:
        return int(value.ts)


@dataclass(frozen=True, slots=True)
class Front:
    """What the per-event front gives the rest of the topology."""

    events: DataStream          # valid events: EVENT_ROW (python), the JVM EVENT rows (jvm)
    dead: DataStream            # dead letters of the interactions (strings)
    pairs: DataStream           # PAIRS_ROW, from the session stage
    session_updates: DataStream  # Update wire lines of the sessions
    model_input: DataStream     # EVENT_ROW, for the collaborative model
    ranker_input: DataStream    # EVENT_ROW, for the ranker's label join


def define_workflow(interactions: DataStream, items: DataStream,
                    cfg: TopologyConfig) -> tuple[DataStream, DataStream]:
    """Wire the stages; returns ``(updates, dead_letters)``, both streams of strings.

    Every operator has a stable ``uid`` (see :data:`stream.TOPOLOGY_VERSION`)."""
    engine, interval = cfg.engine, cfg.emit_interval_ms
    front = _jvm_front(interactions, cfg) if cfg.runtime == JVM else _python_front(
        interactions, cfg)
    parsed_items = (items.process(ParseItems(), output_type=ITEM_ROW)
                    .name("parse-items").uid("parse-items"))
    catalogue = (parsed_items.assign_timestamps_and_watermarks(_watermarks(cfg))
                 .name("item-watermarks").uid("item-watermarks"))

    if cfg.runtime == JVM:
        neighbour_updates = jvm.neighbours(front.pairs, engine, interval)
    else:
        relations = (front.pairs.key_by(_relation_key, key_type=Types.STRING())
                     .process(NeighbourFunction(engine, interval), output_type=Types.STRING())
                     .name("neighbours").uid("neighbours"))
        neighbour_updates = relations.get_side_output(UPDATES)
    if cfg.runtime == JVM:
        item_scores, item_updates = jvm.items(front.events, catalogue, engine, interval)
        trending_updates = jvm.trending(item_scores, engine, interval)
    else:
        touched = (front.events.flat_map(explode_items, output_type=ITEM_EVENT_ROW)
                   .name("items-touched").uid("items-touched"))
        item_scores = (touched.connect(catalogue)
                       .key_by(_item, _item, key_type=Types.STRING())
                       .process(ItemFunction(engine, interval), output_type=SCORE_ROW)
                       .name("items").uid("items"))
        item_updates = item_scores.get_side_output(UPDATES)
        trending = (item_scores.key_by(_scope, key_type=Types.STRING())
                    .process(TopKFunction(engine, interval), output_type=Types.STRING())
                    .name("trending").uid("trending"))
        trending_updates = trending.get_side_output(UPDATES)

    updates = [front.session_updates, neighbour_updates, item_updates, trending_updates]
    if cfg.models:
        updates += [out.get_side_output(UPDATES) for out in _models(front, catalogue, cfg)]
    dead = front.dead.union(parsed_items.get_side_output(DLQ))
    if cfg.source_watermarks:  # dead letters with the event's time: a broker would drop old ones
        dead = jvm.untimed(dead, "dlq-untimed")
    merged = updates[0].union(*updates[1:])
    return (jvm.untimed(merged) if cfg.runtime == JVM else merged), dead


def _watermarks(cfg: TopologyConfig) -> WatermarkStrategy:
    # with_idleness() returns a strategy without the Python timestamp assigner (PyFlink builds
    # a new Java strategy), so the assigner must come last or records keep their Kafka times
    return (WatermarkStrategy.for_bounded_out_of_orderness(
                Duration.of_millis(cfg.out_of_orderness_ms))
            .with_idleness(Duration.of_millis(cfg.idleness_ms))
            .with_timestamp_assigner(EventTime()))


def _python_front(interactions: DataStream, cfg: TopologyConfig) -> Front:
    """parse, watermarks and sessions as Python shells around the operators."""
    parsed = (interactions.process(ParseInteractions(), output_type=EVENT_ROW)
              .name("parse").uid("parse"))
    events = (parsed.assign_timestamps_and_watermarks(_watermarks(cfg))
              .name("watermarks").uid("watermarks"))
    sessions = (events.key_by(_user, key_type=Types.STRING())
                .process(SessionFunction(cfg.engine, models=cfg.models), output_type=PAIRS_ROW)
                .name("sessions").uid("sessions"))
    return Front(events, parsed.get_side_output(DLQ), sessions,
                 sessions.get_side_output(UPDATES), sessions.get_side_output(MODEL_INPUT),
                 sessions.get_side_output(RANKER_INPUT))


def _jvm_front(interactions: DataStream, cfg: TopologyConfig) -> Front:
    """parse, watermarks, dedup and sessions as the Java twins (stream/jvm.py)."""
    parsed = jvm.parse(interactions)
    events = (parsed.events if cfg.source_watermarks
              else jvm.watermarks(parsed.events, cfg.out_of_orderness_ms, cfg.idleness_ms))
    grace = cfg.out_of_orderness_ms + cfg.state_expiry_lateness_ms
    deduped = jvm.dedup(events, cfg.engine, grace_ms=grace)
    sessions = jvm.sessions(deduped, cfg.engine, models=cfg.models,
                            publish_ms=cfg.session_publish_ms, grace_ms=grace)
    return Front(deduped, parsed.dead, sessions.pairs, sessions.updates,
                 sessions.model_input, sessions.ranker_input)


def _models(front: Front, catalogue: DataStream, cfg: TopologyConfig) -> list[DataStream]:
    """The online models. On the jvm runtime their inputs pass ``ModelFeed.java`` first: the
    collaborative model learns batches (one Python call each), and both models learn from a
    sample of users when more events arrive than ``model_max_events_per_s``."""
    engine, every = cfg.engine, cfg.model_publish_ms
    model_input, ranker_input = front.model_input, front.ranker_input
    batched = cfg.runtime == JVM
    if batched:
        model_input = jvm.model_feed(model_input, "model-feed", cfg.model_max_events_per_s,
                                     cfg.model_batch, cfg.model_batch_ms)
        ranker_input = jvm.model_feed(ranker_input, "ranker-feed", cfg.model_max_events_per_s,
                                      1, 0)
    mf = (BatchedModelFunction if batched else ModelFunction)(engine, every)
    model = (model_input.connect(catalogue)
             .key_by(_mf_key, _mf_key, key_type=Types.STRING())
             .process(mf, output_type=Types.STRING())
             .name("model").uid("model"))
    labels = (ranker_input.key_by(_user, key_type=Types.STRING())
              .process(LabelFunction(engine), output_type=LABELS_ROW)
              .name("labels").uid("labels"))
    ranker = (labels.connect(catalogue)
              .key_by(_ranker_key, _ranker_key, key_type=Types.STRING())
              .process(RankerFunction(engine, every), output_type=Types.STRING())
              .name("ranker").uid("ranker"))
    return [model, ranker]


def _mf_key(row: Any) -> str:
    return MF_KEY


def _ranker_key(row: Any) -> str:
    return RANKER_KEY


def _user(row: Any) -> str:
    return str(row.user_id)


def _relation_key(row: Any) -> str:
    return f"{row.relation}|{row.src}"


def _item(row: Any) -> str:
    return str(row.item_id)


def _scope(row: Any) -> str:
    return str(row.scope)
