// Twin of operators/dedup.py: duplicate suppression by event_id, keyed by user, on event time.
// A copy of an event the user sent within the window is dropped here, before any stage counts it.
//
// Expiry (not in the spec, which keeps an idle user's ids until the user's next event): one
// event-time timer per user at expiresAt(newest) >= newest + window + grace + 1 (rounded up by
// StateExpiry.at), grace being the job's bounded out-of-orderness plus
// RECS_STATE_EXPIRY_LATENESS_MS (a backlog read from skewed partitions runs minutes behind the
// watermark); when it fires the state is cleared. The outputs stay the spec's. Once the
// watermark has passed that time, any event that is at most ``grace``
// behind the watermark has ts > newest + window. Two cases:
//  - its id is not remembered: the spec forgets every remembered id (all have ts <= newest < ts -
//    window), keeps (id, ts) with newest = ts and passes it, exactly what an empty state does;
//  - its id is remembered: a copy of a remembered event carries that event's time (the id and ts
//    travel together: a producer's or client's retry resends the event), and ts <= newest is not
//    within grace of the watermark. So this case is outside the bound.
// Events later than that bound (a subset of recs_stream_late_events_total) may find a cleared state
// that passes a copy the lazily kept state would have dropped.
package recs.stream;

import java.util.Arrays;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.metrics.Counter;
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
    private final long graceMs;
    private final OperatorMetrics metrics = new OperatorMetrics("dedup");
    private transient ValueState<State> state;
    private transient Counter created;
    private transient Counter expired;
    private long duplicates;

    /** ``graceMs``: how far behind the watermark an event may be and still meet the spec's
     *  state (see the expiry note above). */
    public DedupFunction(long windowMs, int maxIds, long graceMs) {
        this.windowMs = windowMs;
        this.maxIds = maxIds;
        this.graceMs = graceMs;
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("dedup", TypeInformation.of(State.class)));
        metrics.open(getRuntimeContext().getMetricGroup());
        getRuntimeContext().getMetricGroup().addGroup("operator", "dedup")
            .gauge("recs_stream_duplicates", () -> duplicates);
        created = StateExpiry.created(getRuntimeContext().getMetricGroup(), "dedup");
        expired = StateExpiry.expired(getRuntimeContext().getMetricGroup(), "dedup");
    }

    @Override
    public void processElement(Row event, Context ctx, Collector<Row> out) throws Exception {
        long ts = event.<Long>getFieldAs(1);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        State cur = state.value();
        State next = step(cur, event.<String>getFieldAs(3), ts, windowMs, maxIds);
        if (next == null) {
            duplicates++;
            return;
        }
        state.update(next);
        if (cur == null) {
            created.inc();
        }
        StateExpiry.reschedule(ctx.timerService(),
                               cur == null ? StateExpiry.NONE : expiresAt(cur.newest),
                               expiresAt(next.newest));
        metrics.emitted(1);
        out.collect(event);
    }

    long expiresAt(long newest) {
        return StateExpiry.at(newest, windowMs, graceMs);
    }

    /** The user's expiry timer: the state is cleared (see the note at the top). */
    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        State s = state.value();
        if (s != null && expiresAt(s.newest) == timestamp
                && !StateExpiry.endOfInput(ctx.timerService())) {
            state.clear();
            expired.inc();
        }
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
