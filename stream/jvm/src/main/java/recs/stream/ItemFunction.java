// Twin of ItemFunction in stream/functions.py: keyed by item, the interactions that touch it
// (input 1, Rows.ITEM_EVENT) and its catalogue upserts (input 2, Python's ITEM_ROW). The state
// and the scores are operators/trending.py's (Items.java); this shell coalesces them the same way.
package recs.stream;

import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.functions.co.KeyedCoProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Scores only grow, so the trending top-K needs an item's latest score, not every intermediate
 * one: they are offered on the item's publication timer, and only for the scopes that changed
 * since its previous offer (remembered in memory, not checkpointed: an item with no entry offers
 * all of its scopes, which is always correct). Retractions and the scores of catalogue upserts
 * go out at once. The item value and its stats go to the {@link #UPDATES} side output.
 */
public class ItemFunction extends KeyedCoProcessFunction<String, Row, Row, Row> {
    public static final OutputTag<String> UPDATES = new OutputTag<>("item-updates", Types.STRING);
    private static final Set<String> NOTHING_PENDING = Set.of();
    private static final int MAX_PENDING = 100_000;

    private final Items.Config cfg;
    private final long emitIntervalMs;
    private final OperatorMetrics metrics = new OperatorMetrics("items");
    private transient ValueState<Items.State> state;
    private transient HashMap<String, Set<String>> pending;

    public ItemFunction(Items.Config cfg, long emitIntervalMs) {
        this.cfg = cfg;
        this.emitIntervalMs = emitIntervalMs;
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("item", TypeInformation.of(Items.State.class)));
        pending = new HashMap<>();
        metrics.open(getRuntimeContext().getMetricGroup());
    }

    @Override
    public void processElement1(Row ev, Context ctx, Collector<Row> out) throws Exception {
        long ts = ev.<Long>getFieldAs(3);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        String item = ev.getFieldAs(0);
        Items.State old = state.value();
        Items.State s = old == null ? new Items.State() : old;
        List<Items.Score> scores = Items.event(s, item, ev.getFieldAs(1), ev.getFieldAs(2), ts,
            ev.getFieldAs(4), ev.getFieldAs(5), cfg);
        store(s, old == null, ctx);
        Set<String> waiting = pending.get(item);
        int emitted = 0;
        for (Items.Score sc : scores) {
            if (sc.logScore() == Items.RETRACT) {
                out.collect(row(sc));
                emitted++;
            } else if (waiting != null) {
                if (waiting == NOTHING_PENDING) {
                    waiting = new HashSet<>();
                    pending.put(item, waiting);
                }
                waiting.add(sc.scope());
            }
        }
        metrics.emitted(emitted);
    }

    @Override
    public void processElement2(Row upsert, Context ctx, Collector<Row> out) throws Exception {
        // catalogue upserts are rare: their scores go out at once, uncoalesced
        long ts = upsert.<Long>getFieldAs(1);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        ObjectNode meta = (ObjectNode) Interactions.JSON.readTree(upsert.<String>getFieldAs(2));
        Items.State old = state.value();
        Items.State s = old == null ? new Items.State() : old;
        List<Items.Score> scores = Items.upsert(s, upsert.getFieldAs(0), ts, meta, cfg);
        store(s, old == null, ctx);
        for (Items.Score sc : scores) {
            out.collect(row(sc));
        }
        metrics.emitted(scores.size());
    }

    private void store(Items.State s, boolean newKey, Context ctx) throws Exception {
        state.update(s);
        long wall = ctx.timerService().currentProcessingTime();
        ctx.timerService().registerProcessingTimeTimer((wall / emitIntervalMs + 1) * emitIntervalMs);
        if (newKey) {
            ctx.timerService().registerEventTimeTimer(NeighbourFunction.END_OF_TIME);
        }
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        Items.State s = state.value();
        if (s == null) {
            return;
        }
        String item = ctx.getCurrentKey();
        int emitted = 0;
        ObjectNode value = Items.renderItem(s);  // stream/views.py item_updates
        if (value != null) {
            ctx.output(UPDATES, Updates.wire(Updates.PREFIX + "item:" + item, s.metaTs, s.metaTs,
                                             value));
            emitted++;
        }
        if (s.seq > 0) {
            ctx.output(UPDATES, Updates.wire(Updates.PREFIX + "itemstats:" + item, s.asOf, s.asOf,
                                             Items.renderStats(s)));
            emitted++;
        }
        Set<String> waiting = pending.get(item);
        for (Items.Score sc : Items.currentScores(item, s)) {
            if (waiting == null || waiting.contains(sc.scope())) {
                out.collect(row(sc));
                emitted++;
            }
        }
        if (waiting == null && pending.size() >= MAX_PENDING) {
            pending.clear();  // forgetting only means offering all scopes next time
        }
        pending.put(item, NOTHING_PENDING);
        metrics.emitted(emitted);
    }

    private static Row row(Items.Score sc) {
        return Row.of(sc.scope(), sc.item(), sc.logScore(), sc.ts());
    }
}
