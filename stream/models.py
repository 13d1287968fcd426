"""The online models in the topology: PyFlink shells around :mod:`operators.vector_model`,
:mod:`operators.ranker` and :mod:`operators.ranker_state`.

    SessionFunction --model input--> key_by("mf") --> ModelFunction --> updates (vectors)
    items  ---------------------------------------------'
    SessionFunction --ranker input (impressions, rec_id engagements)
              -> key_by(user) -> LabelFunction
              --examples--> key_by("ranker") --> RankerFunction --> updates (ranker)
    items  ----------------------------------------'

**One model, one key.** Each model is a single object updated by every event, so its operator
is keyed by a constant: one subtask holds it, whatever the parallelism (the label join before
the ranker is keyed by user and scales out). In thread mode every Python operator of a task
manager shares one interpreter, so shards of the model would not learn faster in one process;
``docs/stream.md`` has the measured rates and the plan beyond one process.

**Checkpointed as snapshot + log.** A model is one large mutable object; writing it to Flink
state on every event would cost O(model) per event. Instead the keyed state holds the model's
latest snapshot (bytes) and the list of inputs applied since (:class:`Checkpointed`). Both are
keyed state, so a checkpoint captures them together, consistently with the source offsets: a
restore rebuilds the model from the snapshot and replays the log, reaching the exact model (and
the same vectors, versions and RNG states) the crashed job had at the checkpoint. A new
snapshot is taken every ``snapshot_every`` inputs or on the first publication tick after
``snapshot_interval_ms``, and the log restarts empty.

**Published on ticks.** Vectors changed since the previous publication go out every
``publish_interval_ms`` (processing time; ``stream.views`` formats), and once more when a
bounded input ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Generic, TypeVar

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from operators import ranker
from operators.config import EngineConfig
from operators.ranker_state import RankerModel
from operators.vector_model import VectorModel
from schemas.events import interaction_from_canonical
from state.records import Update
from stream.functions import (
    END_OF_TIME,
    UPDATES,
    OperatorMetrics,
    Publisher,
    _Measured,
)
from stream.model_views import (
    BATCH_TAG,
    EVENT_TAG,
    ITEM_TAG,
    LABELS_TAG,
    encode_batch,
    encode_labels,
    publication_updates,
    ranker_model_step,
    ranker_updates,
    vector_model_step,
)

MF_KEY: Final = "mf"
RANKER_KEY: Final = "ranker"

M = TypeVar("M")
LABELS_ROW: Final = Types.ROW_NAMED(["ts", "body"], [Types.LONG(), Types.STRING()])
# ModelFeed.java BATCH: newest event time, events kept, events skipped, the kept events' bodies
MODEL_BATCH: Final = Types.ROW_NAMED(["ts", "n", "skipped", "body"],
                                     [Types.LONG(), Types.INT(), Types.LONG(), Types.STRING()])


class Checkpointed(Generic[M]):
    """A model held in memory and checkpointed in keyed state as snapshot + replay log."""

    def __init__(self, name: str, *, new: Callable[[], M], restore: Callable[[bytes], M],
                 snapshot: Callable[[M], bytes], apply: Callable[[M, str, str], Any],
                 snapshot_every: int, snapshot_interval_ms: int) -> None:
        self.name = name
        self._new, self._restore, self._snapshot, self._apply = new, restore, snapshot, apply
        self.snapshot_every = snapshot_every
        self.snapshot_interval_s = snapshot_interval_ms / 1000
        self.model: M | None = None
        self.logged = 0
        self.restored_from_log = 0
        self._last_snapshot = time.monotonic()

    def open(self, runtime_context: RuntimeContext) -> None:
        self._snap = runtime_context.get_state(
            ValueStateDescriptor(f"{self.name}-snapshot", Types.PICKLED_BYTE_ARRAY()))
        self._log = runtime_context.get_list_state(
            ListStateDescriptor(f"{self.name}-log", Types.STRING()))

    def get(self) -> tuple[M, bool]:
        """The model (restored on first use after a start or a failover) and whether it is
        brand new (no state existed: the caller registers its end-of-input timer)."""
        if self.model is not None:
            return self.model, False
        raw = self._snap.value()
        model = self._new() if raw is None else self._restore(bytes(raw))
        entries = list(self._log.get() or ())
        for entry in entries:
            self._apply(model, entry[0], entry[1:])
        self.model, self.logged, self.restored_from_log = model, len(entries), len(entries)
        self._last_snapshot = time.monotonic()
        return model, raw is None and not entries

    def apply(self, tag: str, body: str) -> Any:
        """Apply one input to the model and log it; snapshot when the log is long."""
        model, _ = self.get()
        out = self._apply(model, tag, body)
        self._log.add(tag + body)
        self.logged += 1
        if self.logged >= self.snapshot_every:
            self.snapshot()
        return out

    def tick(self) -> None:
        if self.logged and time.monotonic() - self._last_snapshot >= self.snapshot_interval_s:
            self.snapshot()

    def snapshot(self) -> None:
        if self.model is None:
            return
        self._snap.update(self._snapshot(self.model))
        self._log.clear()
        self.logged = 0
        self._last_snapshot = time.monotonic()


class _ModelShell(_Measured):
    """What the two model functions share: the checkpointed model, ticks, end of input. Input 1
    is the model's own stream (logged with ``INPUT_TAG``), input 2 the catalogue."""

    INPUT_TAG = ""
    checkpointed: Checkpointed[Any]

    def __init__(self, interval_ms: int) -> None:
        self.publisher = Publisher(interval_ms)
        self.metrics = OperatorMetrics(self.OPERATOR)

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.checkpointed.open(runtime_context)

    def process_element1(self, value: Row, ctx: Any) -> Any:
        return self._input(self.INPUT_TAG, value.body, value.ts, ctx)

    def process_element2(self, value: Row, ctx: Any) -> Any:
        return self._input(ITEM_TAG, value.body, value.ts, ctx)

    def _input(self, tag: str, body: str, ts: int | None, ctx: Any, n: int = 1) -> Any:
        self.metrics.arrived(ctx, ts, n)
        _, new = self.checkpointed.get()
        self.checkpointed.apply(tag, body)
        self.publisher.schedule(ctx, self.OPERATOR, new_key=new)
        return iter(())

    def on_timer(self, timestamp: int, ctx: Any) -> Any:
        self.metrics.tick(ctx)
        model, _ = self.checkpointed.get()
        self.checkpointed.tick()
        return self.metrics.counted(
            (UPDATES, u.to_wire().decode()) for u in self._publish(model, timestamp))

    def _publish(self, model: Any, timestamp: int) -> Iterator[Update]:
        raise NotImplementedError


class ModelFunction(_ModelShell, KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by :data:`MF_KEY`: the collaborative model (input 1: interactions, input 2: the
    catalogue)."""

    OPERATOR = "model"
    INPUT_TAG = EVENT_TAG

    def __init__(self, cfg: EngineConfig, publish_interval_ms: int, *,
                 snapshot_every: int = 50_000, snapshot_interval_ms: int = 30_000) -> None:
        super().__init__(publish_interval_ms)
        mf = cfg.mf
        self.checkpointed = Checkpointed(
            "mf", new=lambda: VectorModel(mf), restore=VectorModel.restore,
            snapshot=VectorModel.snapshot, apply=vector_model_step,
            snapshot_every=snapshot_every, snapshot_interval_ms=snapshot_interval_ms)

    def _publish(self, model: VectorModel, timestamp: int) -> Iterator[Update]:
        pub = model.drain()
        if pub is not None:
            yield from publication_updates(pub)


class BatchedModelFunction(ModelFunction):
    """:class:`ModelFunction` fed by the JVM (``ModelFeed.java``): input 1 is
    :data:`MODEL_BATCH` rows, each applied in one call and logged as one entry
    (:data:`~stream.model_views.BATCH_TAG`); a batch's ``skipped`` is what the feed left out by
    sampling (the model header's ``sampled_out``)."""

    def process_element1(self, value: Row, ctx: Any) -> Any:
        ts = value.ts if value.n else None  # a count of skipped events only: no event time
        return self._input(BATCH_TAG, encode_batch(value.skipped, value.body), ts, ctx, value.n)


class RankerFunction(_ModelShell, KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by :data:`RANKER_KEY`: the click-through ranker (input 1: labelled examples,
    input 2: the catalogue its features read)."""

    OPERATOR = "ranker"
    INPUT_TAG = LABELS_TAG

    def __init__(self, cfg: EngineConfig, publish_interval_ms: int, *,
                 snapshot_every: int = 50_000, snapshot_interval_ms: int = 30_000) -> None:
        super().__init__(publish_interval_ms)
        rcfg = cfg.ranker
        self.checkpointed = Checkpointed(
            "ranker", new=lambda: RankerModel(rcfg), restore=RankerModel.restore,
            snapshot=RankerModel.snapshot, apply=ranker_model_step,
            snapshot_every=snapshot_every, snapshot_interval_ms=snapshot_interval_ms)

    def _publish(self, model: RankerModel, timestamp: int) -> Iterator[Update]:
        if model.changed:
            yield from ranker_updates(model)


class LabelFunction(_Measured, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by user: the delayed-feedback join (:func:`operators.ranker.label_step`). Each
    impression registers an event-time timer at the end of its window, which closes it when
    the watermark passes (and every open window closes when a bounded input ends)."""

    OPERATOR = "labels"

    def __init__(self, cfg: EngineConfig) -> None:
        self.cfg = cfg.ranker
        self.metrics = OperatorMetrics(self.OPERATOR)

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.state = runtime_context.get_state(ValueStateDescriptor("labels", Types.STRING()))

    def _load(self) -> ranker.LabelState | None:
        raw = self.state.value()
        return None if raw is None else ranker.decode_state(orjson.loads(raw))

    def _store(self, state: ranker.LabelState | None) -> None:
        if state is None:
            self.state.clear()
        else:
            self.state.update(orjson.dumps(ranker.encode_state(state)).decode())

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        event = interaction_from_canonical(orjson.loads(value.body))
        old = self._load()
        new, labels = ranker.label_step(old, event, self.cfg)
        if new is not old:
            self._store(new)
        if event.type == ranker.IMPRESSION and labels.ignored is None:
            ctx.timer_service().register_event_time_timer(event.ts + self.cfg.window_ms + 1)
        return self.metrics.counted(self._emit(labels, event.ts))

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        self.metrics.tick(ctx)
        old = self._load()
        until = END_OF_TIME if timestamp >= END_OF_TIME else timestamp
        new, labels = ranker.close(old, until, ctx.get_current_key(), self.cfg)
        if new is not old:
            self._store(new)
        return self.metrics.counted(self._emit(labels, timestamp))

    def _emit(self, labels: ranker.Labels, ts: int) -> Iterator[Row]:
        if labels.examples or labels.ignored is not None:
            yield Row(ts=min(ts, END_OF_TIME), body=encode_labels(labels))

