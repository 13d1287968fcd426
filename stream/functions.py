"""Thin PyFlink shells around the pure operators.

Each keyed function decodes its state (JSON, explicit codecs), calls the operator, encodes the
state back, and publishes the key's materialized view. Sessions are published on every change.
Neighbour lists, item values and trending lists, whose hot keys change many times a second,
are published through timers:

- a processing-time timer on the next ``emit_interval_ms`` boundary (Flink keeps one timer per
  key and timestamp, so a hot key is published at most once per interval: coalescing for free,
  and checkpointed with the state, so a crash cannot lose a pending publication);
- an event-time timer at the end of time, which fires only when a bounded input ends, so a
  finite run publishes its final state too.

Publications are :class:`~state.records.Update` wire lines sent to the ``updates`` side output.

Every function counts what goes through it in :class:`OperatorMetrics` (records in and out, and
events behind the watermark), registered on Flink's metric group and exported by Flink's
reporter (``docs/observability.md`` has the exported names).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, Final

import orjson
from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import (
    KeyedCoProcessFunction,
    KeyedProcessFunction,
    OutputTag,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor

from operators import neighbours, session, trending
from operators.config import EngineConfig
from schemas.events import SchemaError, decode_interaction, decode_item, interaction_from_canonical
from state import keys
from stream import views
from stream.dlq import dead_letter
from stream.routing import item_targets, learns_from, ranker_input

log = logging.getLogger(__name__)

UPDATES: Final = OutputTag("updates", Types.STRING())
DLQ: Final = OutputTag("dlq", Types.STRING())
END_OF_TIME: Final = 2**62  # a watermark only a finished bounded input reaches
_NOTHING_PENDING: Final[frozenset[str]] = frozenset()  # shared: no scope changed since an offer
METRICS_FLUSH_S: Final = 1.0  # how often counts are handed to Flink's metric objects
NO_WATERMARK: Final = -(2**63)  # Flink's watermark before the first one arrives

EVENT_ROW: Final = Types.ROW_NAMED(["user_id", "ts", "body"],
                                   [Types.STRING(), Types.LONG(), Types.STRING()])
# device and country: the raw context strings (or None) the context trending scopes come from
ITEM_EVENT_ROW: Final = Types.ROW_NAMED(
    ["item_id", "type", "value", "ts", "device", "country", "body"],
    [Types.STRING(), Types.STRING(), Types.DOUBLE(), Types.LONG(), Types.STRING(),
     Types.STRING(), Types.STRING()])
# the pairs of one event that share a source item travel as one record
PAIRS_ROW: Final = Types.ROW_NAMED(
    ["relation", "src", "dsts", "weights", "ts"],
    [Types.STRING(), Types.STRING(), Types.LIST(Types.STRING()), Types.LIST(Types.DOUBLE()),
     Types.LONG()])
# the online models' inputs, routed by SessionFunction (the parsed event rows, unchanged)
MODEL_INPUT: Final = OutputTag("model-input", EVENT_ROW)
RANKER_INPUT: Final = OutputTag("ranker-input", EVENT_ROW)
SCORE_ROW: Final = Types.ROW_NAMED(["scope", "item_id", "log_score", "ts"],
                                   [Types.STRING(), Types.STRING(), Types.DOUBLE(),
                                    Types.LONG()])


def _json_state(name: str) -> ValueStateDescriptor:
    return ValueStateDescriptor(name, Types.STRING())


class OperatorMetrics:
    """The project's metrics of one operator instance, counted in Python, handed to Flink.

    ``recs_stream_events_total`` (groups ``operator``, ``direction`` ``in``/``out``) and
    ``recs_stream_late_events_total`` (group ``operator``) are Flink counters on the operator's
    metric group. Every call into a Flink metric crosses into the JVM, which costs more than the
    counting, so records are counted in plain ints and added to Flink's counters at most once per
    :data:`METRICS_FLUSH_S`, on the next record or timer (and when the operator closes). "Out"
    is every record a function emits, side outputs (updates, dead letters) included.

    An event is late when its time is behind the operator's watermark, sampled at each flush:
    the watermark only grows, so a sample up to a second old can only undercount. The operators
    still apply late events (their logic does not depend on arrival order); the count measures
    disorder beyond the bounded out-of-orderness, not loss.

    No gauges: Flink's reporter calls a Python gauge from its own thread, which waits for the
    interpreter while an operator runs, and a scrape then hangs (measured). The watermark lag is
    exported by ``recs monitor`` from Flink's own ``currentInputWatermark`` instead.

    A runtime context without a metric group (the unit tests' stand-ins) leaves the counts in
    Python only.
    """

    def __init__(self, operator: str) -> None:
        self.operator = operator
        self.events_in = self.events_out = self.late = 0
        self._flushed = (0, 0, 0)
        self._counters: tuple[Any, Any, Any] | None = None
        self._watermark = NO_WATERMARK
        self._next_flush = 0.0

    def open(self, runtime_context: RuntimeContext) -> None:
        get_group = getattr(runtime_context, "get_metrics_group", None)
        if get_group is None:
            return
        group = get_group().add_group("operator", self.operator)
        self._counters = (group.add_group("direction", "in").counter("recs_stream_events_total"),
                          group.add_group("direction", "out").counter("recs_stream_events_total"),
                          group.counter("recs_stream_late_events_total"))

    def arrived(self, ctx: Any, ts: int | None = None, n: int = 1) -> None:
        """``n`` records in (a batch: its newest event time); ``ts`` their event time (None
        before timestamps are assigned)."""
        self.events_in += n
        if ts is not None and ts < self._watermark:
            self.late += n
        self.tick(ctx)

    def tick(self, ctx: Any) -> None:
        if self._counters is not None and time.monotonic() >= self._next_flush:
            self._watermark = int(ctx.timer_service().current_watermark())
            self.flush()

    def counted(self, outputs: Iterable[Any]) -> Iterator[Any]:
        for out in outputs:
            self.events_out += 1
            yield out

    def flush(self) -> None:
        if self._counters is None:
            return
        self._next_flush = time.monotonic() + METRICS_FLUSH_S
        now = (self.events_in, self.events_out, self.late)
        for counter, new, old in zip(self._counters, now, self._flushed, strict=True):
            if new > old:
                counter.inc(new - old)
        self._flushed = now


class Publisher:
    """Schedules a key's publication with as few calls into the JVM as possible.

    Every call into Flink's timer service crosses the Python/Java boundary, which costs more
    than the operator itself, so a key's tick is registered once per tick (remembered here; a
    forgotten entry only costs a duplicate registration, which Flink ignores) and the
    end-of-input timer once per key (when its state is created; timers are checkpointed).
    """

    def __init__(self, interval_ms: int) -> None:
        self.interval = interval_ms
        self._ticks: dict[Any, int] = {}

    def schedule(self, ctx: Any, key: Any, *, new_key: bool) -> None:
        tick = (int(time.time() * 1000) // self.interval + 1) * self.interval
        if self._ticks.get(key) != tick:
            if len(self._ticks) > 100_000:
                self._ticks.clear()
            self._ticks[key] = tick
            ctx.timer_service().register_processing_time_timer(tick)
        if new_key:
            ctx.timer_service().register_event_time_timer(END_OF_TIME)


class _Measured:
    """The metrics plumbing every function shares; ``OPERATOR`` is its name in the topology."""

    OPERATOR = ""
    metrics: OperatorMetrics

    def open(self, runtime_context: RuntimeContext) -> None:
        self.metrics.open(runtime_context)

    def close(self) -> None:
        self.metrics.flush()


class ParseInteractions(_Measured, ProcessFunction):  # type: ignore[misc]
    """Validate raw interaction JSON; malformed input goes to the DLQ side output, never fails."""

    OPERATOR = "parse"

    def __init__(self) -> None:
        self.metrics = OperatorMetrics(self.OPERATOR)

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx)
        self.metrics.events_out += 1  # exactly one record out: the event or its dead letter
        try:
            event = decode_interaction(value.encode("utf-8", "surrogateescape"))
        except SchemaError as exc:
            yield DLQ, dead_letter(value, exc)
            return
        yield Row(user_id=event.user_id, ts=event.ts, body=event.to_json().decode())


class ParseItems(_Measured, ProcessFunction):  # type: ignore[misc]
    OPERATOR = "parse-items"

    def __init__(self) -> None:
        self.metrics = OperatorMetrics(self.OPERATOR)

    def process_element(self, value: str, ctx: ProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx)
        self.metrics.events_out += 1
        try:
            item = decode_item(value.encode("utf-8", "surrogateescape"))
        except SchemaError as exc:
            yield DLQ, dead_letter(value, exc)
            return
        yield Row(item_id=item.item_id, ts=item.ts, body=item.to_json().decode())


def explode_items(row: Row) -> Any:
    """One row per item an interaction touches (impressions touch every shown item)."""
    event = interaction_from_canonical(orjson.loads(row.body))
    device = trending.context_field(event, keys.CONTEXT_DEVICE)
    country = trending.context_field(event, keys.CONTEXT_COUNTRY)
    for item_id in item_targets(event):
        # fields in ITEM_EVENT_ROW's order
        yield Row(item_id=item_id, type=event.type, value=event.value, ts=event.ts,
                  device=device, country=country, body="")


def group_pairs(pairs: list[session.Pair]) -> Any:
    """One row per (relation, source) with its destinations in emission order.

    Every neighbour key still sees its pairs in the order the operator emitted them, so the
    result equals applying the pairs one by one, with fewer records crossing into Python.
    """
    groups: dict[tuple[str, str], tuple[list[str], list[float], int]] = {}
    for p in pairs:
        dsts, weights, _ = groups.setdefault((p.relation, p.src), ([], [], p.ts))
        dsts.append(p.dst)
        weights.append(p.weight)
    for (relation, src), (dsts, weights, ts) in groups.items():
        yield Row(relation=relation, src=src, dsts=dsts, weights=weights, ts=ts)


class SessionFunction(_Measured, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by user: session state; emits co-visitation / co-purchase pairs downstream.

    A user's session is published on every change, straight away: one user rarely sends two
    events within a publication interval, so a timer would coalesce almost nothing and cost two
    more calls into the JVM per event (and delay the "because you viewed" answer).

    With ``models`` it also routes each event to the online models (``stream/models.py``) by
    side output: :data:`MODEL_INPUT` for the events the collaborative model learns from,
    :data:`RANKER_INPUT` for the ranker's label join. This operator parses every event anyway,
    and a side output keeps the event's timestamp and the watermark, so the routing costs no
    Python operator of its own (a separate router cost a whole extra Python hop per event)."""

    OPERATOR = "sessions"

    def __init__(self, cfg: EngineConfig, *, models: bool = False) -> None:
        self.cfg = cfg
        self.metrics = OperatorMetrics(self.OPERATOR)
        self.models = models
        self.learns = learns_from(cfg)

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.state = runtime_context.get_state(_json_state("session"))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        return self.metrics.counted(self._step(value))

    def _step(self, value: Row) -> Any:
        event = interaction_from_canonical(orjson.loads(value.body))
        if self.models:
            if self.learns(event):
                yield MODEL_INPUT, value
            if ranker_input(event):
                yield RANKER_INPUT, value
        raw = self.state.value()
        old = None if raw is None else session.decode(orjson.loads(raw))
        new, pairs = session.step(old, event, self.cfg.session)
        if new is not old and new is not None:
            self.state.update(orjson.dumps(session.encode(new)).decode())
            yield UPDATES, views.session_update(value.user_id, new).to_wire().decode()
        yield from group_pairs(pairs)


class NeighbourFunction(_Measured, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by ``relation|src``: bounded decayed neighbours of one item.

    With the second similar-items list on (``EngineConfig.similar_recent``), a ``similar`` key
    also keeps the same pairs decayed at that list's half-life in a second state of its own and
    publishes it on the same timer, at ``recs:v1:similar_recent:{src}`` (the reference runner
    steps every similar pair into both). A second state of the key that already receives the
    pairs costs one more state read and write per record; routing the pairs to a key of their
    own would send every similar pair through the shuffle and into Python a second time, and
    double the timers. Off, the function has no second state at all."""

    OPERATOR = "neighbours"

    def __init__(self, cfg: EngineConfig, emit_interval_ms: int) -> None:
        self.cfg = cfg
        self.publisher = Publisher(emit_interval_ms)
        self.metrics = OperatorMetrics(self.OPERATOR)
        self.recent: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.state = runtime_context.get_state(_json_state("neighbours"))
        if self.cfg.similar_recent is not None:
            self.recent = runtime_context.get_state(_json_state("neighbours_recent"))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        if not value.dsts:  # group_pairs sends none such; nothing to step
            return iter(())
        raw = self.state.value()
        self.state.update(self._stepped(raw, value, value.relation))
        if self.recent is not None and value.relation == keys.KIND_SIMILAR:
            self.recent.update(self._stepped(self.recent.value(), value,
                                             keys.KIND_SIMILAR_RECENT))
        self.publisher.schedule(ctx, (value.relation, value.src), new_key=raw is None)
        return iter(())

    def _stepped(self, raw: str | None, value: Row, relation: str) -> str:
        """The encoded state ``raw`` after the row's pairs, decayed as ``relation`` is."""
        ncfg = self.cfg.neighbour(relation)
        state = None if raw is None else neighbours.decode(orjson.loads(raw))
        for dst, weight in zip(value.dsts, value.weights, strict=True):
            state = neighbours.step(state, session.Pair(value.relation, value.src, dst, weight,
                                                        value.ts), ncfg)
        if state is None:  # process_element skips such rows
            raise ValueError(f"NeighbourFunction: expected a pairs row with destinations, got "
                             f"none for {value.relation}|{value.src}")
        return orjson.dumps(neighbours.encode(state)).decode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        self.metrics.tick(ctx)
        return self.metrics.counted(self._publish(ctx))

    def _publish(self, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        relation, _, src = ctx.get_current_key().partition("|")
        lists = [(relation, self.state)]
        if self.recent is not None and relation == keys.KIND_SIMILAR:
            lists.append((keys.KIND_SIMILAR_RECENT, self.recent))
        for kind, state in lists:
            raw = state.value()
            if raw is not None:
                upd = views.neighbour_update(kind, src, neighbours.decode(orjson.loads(raw)),
                                             self.cfg)
                yield UPDATES, upd.to_wire().decode()


class ItemFunction(_Measured, KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by item: catalogue metadata (input 2), popularity and counters (input 1).

    Scores only grow, so the trending top-K needs the latest score of an item, not every
    intermediate one: they are offered on the item's publication timer (coalesced), and only
    for the scopes that changed since the item's previous offer. Those are remembered in memory
    (``_pending``, not checkpointed), starting at an offer: an item with no entry (its first
    timer in this process, after a restore, or once the map was cleared) offers all of its
    scopes, which is always correct. Retractions are emitted at once (the item's state no
    longer knows a scope it dropped)."""

    OPERATOR = "items"

    def __init__(self, cfg: EngineConfig, emit_interval_ms: int) -> None:
        self.cfg = cfg
        self.publisher = Publisher(emit_interval_ms)
        self._pending: dict[str, set[str] | frozenset[str]] = {}
        self.metrics = OperatorMetrics(self.OPERATOR)

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.state = runtime_context.get_state(_json_state("item"))

    def _load(self) -> trending.ItemState | None:
        raw = self.state.value()
        return None if raw is None else trending.decode_item(orjson.loads(raw))

    def _store(self, item_id: str, old: trending.ItemState | None, state: trending.ItemState,
               ctx: Any) -> None:
        self.state.update(orjson.dumps(trending.encode_item(state)).decode())
        self.publisher.schedule(ctx, item_id, new_key=old is None)

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        return self.metrics.counted(self._event(value, ctx))

    def _event(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Any:
        old = self._load()
        new, scores = trending.item_event_step(old, value.item_id, value.type, value.value,
                                               value.ts, self.cfg, device=value.device,
                                               country=value.country)
        self._store(value.item_id, old, new, ctx)
        pending = self._pending.get(value.item_id)
        for s in scores:
            if s.log_score == trending.RETRACT:
                yield Row(scope=s.scope, item_id=s.item_id, log_score=s.log_score, ts=s.ts)
            elif pending is not None:
                if isinstance(pending, frozenset):
                    pending = self._pending[value.item_id] = set()
                pending.add(s.scope)

    def process_element2(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        return self.metrics.counted(self._upsert(value, ctx))

    def _upsert(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Any:
        # catalogue upserts are rare: their scores (category moves, new arrivals, retractions
        # before a lowered new-arrival score, in that order) go out at once, uncoalesced
        item = decode_item(value.body)
        old = self._load()
        new, scores = trending.item_upsert_step(old, item, self.cfg)
        self._store(item.item_id, old, new, ctx)
        for s in scores:
            yield Row(scope=s.scope, item_id=s.item_id, log_score=s.log_score, ts=s.ts)

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Any:
        self.metrics.tick(ctx)
        return self.metrics.counted(self._publish(ctx))

    def _publish(self, ctx: KeyedCoProcessFunction.OnTimerContext) -> Any:
        state = self._load()
        if state is not None:
            item_id = ctx.get_current_key()
            pending = self._pending.get(item_id)
            for upd in views.item_updates(item_id, state):
                yield UPDATES, upd.to_wire().decode()
            for s in trending.current_scores(item_id, state):
                if pending is None or s.scope in pending:
                    yield Row(scope=s.scope, item_id=s.item_id, log_score=s.log_score, ts=s.ts)
            if item_id not in self._pending and len(self._pending) >= 100_000:
                self._pending.clear()  # forgetting only means offering all scopes next time
            self._pending[item_id] = _NOTHING_PENDING


class TopKFunction(_Measured, KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by scope: exact streaming top-K of monotone forward-decayed scores, for the
    popularity scopes and the new-arrival ones (``new:...``, ``new_top_k`` long)."""

    OPERATOR = "trending"

    def __init__(self, cfg: EngineConfig, emit_interval_ms: int) -> None:
        self.cfg = cfg
        self.publisher = Publisher(emit_interval_ms)
        self.metrics = OperatorMetrics(self.OPERATOR)

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.state = runtime_context.get_state(_json_state("topk"))

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Any:
        self.metrics.arrived(ctx, value.ts)
        raw = self.state.value()
        old = None if raw is None else trending.decode_topk(orjson.loads(raw))
        score = trending.ScopeScore(value.scope, value.item_id, value.log_score, value.ts)
        new, changed = trending.topk_step(old, score)
        if changed and new is not None:
            new = trending.trim(new, self.cfg.trending, value.scope)
            self.state.update(orjson.dumps(trending.encode_topk(new)).decode())
            self.publisher.schedule(ctx, value.scope, new_key=raw is None)
        return iter(())

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        self.metrics.tick(ctx)
        return self.metrics.counted(self._publish(ctx))

    def _publish(self, ctx: KeyedProcessFunction.OnTimerContext) -> Any:
        raw = self.state.value()
        if raw is not None:
            upd = views.trending_update(ctx.get_current_key(),
                                        trending.decode_topk(orjson.loads(raw)), self.cfg)
            yield UPDATES, upd.to_wire().decode()
