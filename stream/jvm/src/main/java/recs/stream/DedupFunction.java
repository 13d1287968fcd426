// Twin of operators/dedup.py: duplicate suppression by event_id, keyed by user, on event time.
// A copy of an event the user sent within the window is dropped here, before any stage counts it.
package recs.stream;

import java.util.Arrays;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** Keyed by user: passes each EVENT row whose event_id the user has not sent within the window. */
public class DedupFunction extends KeyedProcessFunction<String, Row, Row> {
    /** operators/dedup.py DedupState: ids and their times in arrival order, newest last. */
    public static class State {
        public String[] ids = new String[0];
        public long[] ts = new long[0];
        public long newest;

        public State() {}
    }

    private final long windowMs;
    private final int maxIds;
    private final OperatorMetrics metrics = new OperatorMetrics("dedup");
    private transient ValueState<State> state;
    private long duplicates;

    public DedupFunction(long windowMs, int maxIds) {
        this.windowMs = windowMs;
        this.maxIds = maxIds;
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("dedup", TypeInformation.of(State.class)));
        metrics.open(getRuntimeContext().getMetricGroup());
        getRuntimeContext().getMetricGroup().addGroup("operator", "dedup")
            .gauge("recs_stream_duplicates", () -> duplicates);
    }

    @Override
    public void processElement(Row event, Context ctx, Collector<Row> out) throws Exception {
        long ts = event.<Long>getFieldAs(1);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        State next = step(state.value(), event.<String>getFieldAs(3), ts, windowMs, maxIds);
        if (next == null) {
            duplicates++;
            return;
        }
        state.update(next);
        metrics.emitted(1);
        out.collect(event);
    }

    /** operators/dedup.py step: the new state, or null when the id is a duplicate. */
    static State step(State cur, String eventId, long ts, long windowMs, int maxIds) {
        int n = cur == null ? 0 : cur.ids.length;
        for (int i = 0; i < n; i++) {
            if (cur.ids[i].equals(eventId)) {
                return null;
            }
        }
        long newest = cur == null ? ts : Math.max(cur.newest, ts);
        long horizon = newest - windowMs;
        String[] ids = new String[n + 1];
        long[] times = new long[n + 1];
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (cur.ts[i] >= horizon) {
                ids[k] = cur.ids[i];
                times[k++] = cur.ts[i];
            }
        }
        if (ts >= horizon) {
            ids[k] = eventId;
            times[k++] = ts;
        }
        int from = Math.max(0, k - maxIds);
        State next = new State();
        next.ids = Arrays.copyOfRange(ids, from, k);
        next.ts = Arrays.copyOfRange(times, from, k);
        next.newest = newest;
        return next;
    }
}
