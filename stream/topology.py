"""The topology as a function of its input streams: ``define_workflow(interactions, items)``.

Kept apart from sources and sinks (``stream/job.py``) so tests can feed it collections.

    interactions (raw JSON) -> ParseInteractions --(malformed)--> dlq
         | watermarks (bounded out-of-orderness, idle partitions do not stall)
         |-- key_by(user) -> SessionFunction --pairs--> key_by(relation|src) -> NeighbourFunction
         '-- explode(items touched) -> key_by(item) -+-> ItemFunction --scores--> key_by(scope)
                                                     |                          -> TopKFunction
    items (raw JSON) -> ParseItems --(malformed)--> dlq      '-- key_by(item) ---'
    SessionFunction --model input--> key_by("mf") -> ModelFunction <-- items (catalogue)
         '--ranker input (impressions, rec_id engagements)--> key_by(user) -> LabelFunction
                         --labelled examples--> key_by("ranker") -> RankerFunction <-- items
    every keyed function --updates--> union -> updates (Update wire lines)

Every valid event reaches SessionFunction, impressions included (they update the user's
``shown`` list). The rows to ItemFunction carry the event's device and country by name; its
scores go to the global, category and context scopes (``ctx:device:...``, ``ctx:country:...``,
``ctx:daypart:...``) and, on catalogue upserts, to the new-arrival scopes (``new:global``,
``new:cat:...``), all through the same TopKFunction keyed by scope.

The online models (``stream/models.py``; ``models=False`` leaves them out) learn from the same
parsed events: SessionFunction, which decodes every event anyway, routes the interest events to
the collaborative model and the impressions and ``rec_id`` engagements to the ranker's label
join by side outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyflink.common import Duration, Row, WatermarkStrategy
from pyflink.common.typeinfo import Types
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream

from operators.config import EngineConfig
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
    LabelFunction,
    ModelFunction,
    RankerFunction,
)

ITEM_ROW = Types.ROW_NAMED(["item_id", "ts", "body"],
                           [Types.STRING(), Types.LONG(), Types.STRING()])


@dataclass(frozen=True, slots=True)
class TopologyConfig:
    engine: EngineConfig
    out_of_orderness_ms: int = 2_000
    idleness_ms: int = 5_000
    emit_interval_ms: int = 1_000  # neighbour lists, item values, trending lists
    models: bool = True             # the online models (stream/models.py)
    model_publish_ms: int = 2_000   # changed vectors and the ranker, at most this often


class EventTime(TimestampAssigner):  # type: ignore[misc]
    def extract_timestamp(self, value: Row, record_timestamp: int) -> int:
        return int(value.ts)


def define_workflow(interactions: DataStream, items: DataStream,
                    cfg: TopologyConfig) -> tuple[DataStream, DataStream]:
    """Wire the operators; returns ``(updates, dead_letters)``, both streams of strings.

    Every operator has a stable ``uid`` (see :data:`stream.TOPOLOGY_VERSION`)."""
    engine, interval = cfg.engine, cfg.emit_interval_ms
    # with_idleness() returns a strategy without the Python timestamp assigner (PyFlink builds
    # a new Java strategy), so the assigner must come last or records keep their Kafka times
    watermarks = (
        WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
        .with_idleness(Duration.of_millis(cfg.idleness_ms))
        .with_timestamp_assigner(EventTime())
    )
    parsed = (interactions.process(ParseInteractions(), output_type=EVENT_ROW)
              .name("parse").uid("parse"))
    events = (parsed.assign_timestamps_and_watermarks(watermarks)
              .name("watermarks").uid("watermarks"))
    parsed_items = (items.process(ParseItems(), output_type=ITEM_ROW)
                    .name("parse-items").uid("parse-items"))
    catalogue = (parsed_items.assign_timestamps_and_watermarks(watermarks)
                 .name("item-watermarks").uid("item-watermarks"))

    sessions = (events.key_by(_user, key_type=Types.STRING())
                .process(SessionFunction(engine, models=cfg.models), output_type=PAIRS_ROW)
                .name("sessions").uid("sessions"))
    relations = (sessions.key_by(_relation_key, key_type=Types.STRING())
                 .process(NeighbourFunction(engine, interval), output_type=Types.STRING())
                 .name("neighbours").uid("neighbours"))
    touched = (events.flat_map(explode_items, output_type=ITEM_EVENT_ROW)
               .name("items-touched").uid("items-touched"))
    item_scores = (touched.connect(catalogue)
                   .key_by(_item, _item, key_type=Types.STRING())
                   .process(ItemFunction(engine, interval), output_type=SCORE_ROW)
                   .name("items").uid("items"))
    trending = (item_scores.key_by(_scope, key_type=Types.STRING())
                .process(TopKFunction(engine, interval), output_type=Types.STRING())
                .name("trending").uid("trending"))

    outputs = [relations, item_scores, trending]
    if cfg.models:
        outputs += _models(sessions, catalogue, cfg)
    updates = sessions.get_side_output(UPDATES).union(
        *(out.get_side_output(UPDATES) for out in outputs))
    dead = parsed.get_side_output(DLQ).union(parsed_items.get_side_output(DLQ))
    return updates, dead


def _models(sessions: DataStream, catalogue: DataStream,
            cfg: TopologyConfig) -> list[DataStream]:
    engine, every = cfg.engine, cfg.model_publish_ms
    model = (sessions.get_side_output(MODEL_INPUT).connect(catalogue)
             .key_by(_mf_key, _mf_key, key_type=Types.STRING())
             .process(ModelFunction(engine, every), output_type=Types.STRING())
             .name("model").uid("model"))
    labels = (sessions.get_side_output(RANKER_INPUT).key_by(_user, key_type=Types.STRING())
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
