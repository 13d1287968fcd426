// Twin of operators/trending.py (topk_step, trim, list_size, render_topk) and of TopKFunction in
// stream/functions.py (publication at most once per emit interval and at the end of a bounded
// input). Input: the scope scores ItemFunction emits. The Python operator is the specification.
package recs.stream;

import java.util.Arrays;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** Keyed by trending scope: exact streaming top-K of monotone forward-decayed scores. */
public class TopKFunction extends KeyedProcessFunction<String, Row, String> {
    /** operators/trending.py TopKState: member -> log score (at most list_size), seq, as_of. */
    public static class State {
        public String[] item = new String[0];
        public double[] score = new double[0];
        public long seq;
        public long asOf;

        public State() {}
    }

    private final int topK;
    private final int newTopK;
    private final double halfLifeS;
    private final long emitIntervalMs;
    private final OperatorMetrics metrics = new OperatorMetrics("trending");
    private transient ValueState<State> state;

    public TopKFunction(int topK, int newTopK, double halfLifeS, long emitIntervalMs) {
        this.topK = topK;
        this.newTopK = newTopK;
        this.halfLifeS = halfLifeS;
        this.emitIntervalMs = emitIntervalMs;
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("topk", TypeInformation.of(State.class)));
        metrics.open(getRuntimeContext().getMetricGroup());
    }

    /** list_size: new_top_k for a new-arrivals scope, top_k for any other. */
    int listSize(String scope) {
        return scope.startsWith("new:") ? newTopK : topK;
    }

    @Override
    public void processElement(Row score, Context ctx, Collector<String> out) throws Exception {
        long ts = score.<Long>getFieldAs(3);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        State old = state.value();
        State now = step(old, score.getFieldAs(1), score.<Double>getFieldAs(2), ts);
        if (now == null) {
            return;  // nothing changed
        }
        state.update(trim(now, listSize(ctx.getCurrentKey())));
        long wall = ctx.timerService().currentProcessingTime();
        ctx.timerService().registerProcessingTimeTimer((wall / emitIntervalMs + 1) * emitIntervalMs);
        if (old == null) {
            ctx.timerService().registerEventTimeTimer(NeighbourFunction.END_OF_TIME);
        }
    }

    /** topk_step: the new state, or null when the published list cannot have changed. */
    static State step(State s, String item, double logScore, long ts) {
        int n = s == null ? 0 : s.item.length;
        int at = -1;
        for (int i = 0; i < n; i++) {
            if (s.item[i].equals(item)) {
                at = i;
                break;
            }
        }
        State r = new State();
        if (logScore == Double.NEGATIVE_INFINITY) {  // a retraction
            if (s == null || at < 0) {
                return null;
            }
            r.item = new String[n - 1];
            r.score = new double[n - 1];
            for (int i = 0, k = 0; i < n; i++) {
                if (i != at) {
                    r.item[k] = s.item[i];
                    r.score[k++] = s.score[i];
                }
            }
            r.seq = s.seq + 1;
            r.asOf = Math.max(s.asOf, ts);
            return r;
        }
        double current = at < 0 ? Double.NEGATIVE_INFINITY : s.score[at];
        if (current >= logScore) {
            if (s != null && ts > s.asOf) {
                r.item = s.item;
                r.score = s.score;
                r.seq = s.seq + 1;
                r.asOf = ts;
                return r;
            }
            return null;
        }
        if (at >= 0) {
            r.item = s.item;
            r.score = s.score.clone();
            r.score[at] = logScore;
        } else {
            r.item = Arrays.copyOf(s == null ? new String[0] : s.item, n + 1);
            r.score = Arrays.copyOf(s == null ? new double[0] : s.score, n + 1);
            r.item[n] = item;
            r.score[n] = logScore;
        }
        r.seq = s == null ? 1 : s.seq + 1;
        r.asOf = s == null ? ts : Math.max(s.asOf, ts);
        return r;
    }

    /** trim: the best ``k`` by (score descending, item id). */
    static State trim(State s, int k) {
        if (s.item.length <= k) {
            return s;
        }
        Integer[] order = ranked(s);
        State r = new State();
        r.item = new String[k];
        r.score = new double[k];
        for (int i = 0; i < k; i++) {
            r.item[i] = s.item[order[i]];
            r.score[i] = s.score[order[i]];
        }
        r.seq = s.seq;
        r.asOf = s.asOf;
        return r;
    }

    static Integer[] ranked(State s) {
        return Ranks.byScore(s.item, s.score);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<String> out)
            throws Exception {
        State s = state.value();
        if (s == null) {
            return;
        }
        String scope = ctx.getCurrentKey();
        out.collect(Updates.wire(Updates.PREFIX + "trending:" + scope, s.asOf, s.asOf,
                                 Ranks.render(s.item, s.score, listSize(scope), halfLifeS)));
        metrics.emitted(1);
    }
}
