// Twin of operators/neighbours.py (step, top, render; the decay of operators/decay.py) and of
// NeighbourFunction in stream/functions.py (publication at most once per emit interval and at
// the end of a bounded input). The Python operator is the specification.
//
// With the second similar-items list on (EngineConfig.similar_recent), a "similar" key keeps the
// same pairs decayed at that list's half-life in a second state of its own and publishes it on
// the same timer at recs:v1:similar_recent:<src>, as the Python function does (and for the same
// reason: no second shuffle of every similar pair, no second timer). Off, no second state.
package recs.stream;

import java.util.Arrays;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;

/** Keyed by ``relation|src``: bounded (Space-Saving) decayed neighbours; emits Update lines. */
public class NeighbourFunction extends KeyedProcessFunction<String, Row, String> {
    static final long END_OF_TIME = 1L << 62;  // stream/functions.py END_OF_TIME
    // the relations (state/keys.py KIND_SIMILAR, KIND_BOUGHT, KIND_SIMILAR_RECENT)
    static final String SIMILAR = "similar";
    static final String BOUGHT = "bought";
    static final String SIMILAR_RECENT = "similar_recent";

    /** operators/neighbours.py NeighbourState: neighbour -> log score, seq, as_of. */
    public static class State {
        public String[] dst = new String[0];
        public double[] score = new double[0];
        public long seq;
        public long asOf;

        public State() {}
    }

    /** operators/config.py NeighbourConfig, one per relation. */
    public static final class Config implements java.io.Serializable {
        public int capacity = 100;
        public int topK = 50;
        public double halfLifeS;

        public Config() {}

        public Config(int capacity, int topK, double halfLifeS) {
            this.capacity = capacity;
            this.topK = topK;
            this.halfLifeS = halfLifeS;
        }
    }

    private final Config similar;
    private final Config bought;
    private final Config similarRecent;  // null: the second similar-items list is off
    private final long emitIntervalMs;
    private final OperatorMetrics metrics = new OperatorMetrics("neighbours");
    private transient ValueState<State> state;
    private transient ValueState<State> recent;  // null when similarRecent is

    public NeighbourFunction(Config similar, Config bought, Config similarRecent,
                             long emitIntervalMs) {
        this.similar = similar;
        this.bought = bought;
        this.similarRecent = similarRecent;
        this.emitIntervalMs = emitIntervalMs;
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("neighbours", TypeInformation.of(State.class)));
        if (similarRecent != null) {
            recent = getRuntimeContext().getState(
                new ValueStateDescriptor<>("neighbours_recent", TypeInformation.of(State.class)));
        }
        metrics.open(getRuntimeContext().getMetricGroup());
    }

    /** operators/config.py EngineConfig.neighbour. */
    Config config(String relation) {
        switch (relation) {
            case SIMILAR:
                return similar;
            case BOUGHT:
                return bought;
            case SIMILAR_RECENT:
                if (similarRecent != null) {
                    return similarRecent;
                }
                break;
            default:
                break;
        }
        throw new IllegalArgumentException("NeighbourFunction: relation '" + relation
            + "' is not kept (expected similar, bought or, when on, similar_recent)");
    }

    @Override
    public void processElement(Row pairs, Context ctx, Collector<String> out) throws Exception {
        long ts = pairs.<Long>getFieldAs(4);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        String relation = pairs.getFieldAs(0);
        java.util.List<String> dsts = pairs.getFieldAs(2);
        java.util.List<Double> weights = pairs.getFieldAs(3);
        State old = state.value();
        state.update(stepped(old, dsts, weights, ts, config(relation)));
        if (recent != null && relation.equals(SIMILAR)) {
            recent.update(stepped(recent.value(), dsts, weights, ts, similarRecent));
        }
        long now = ctx.timerService().currentProcessingTime();
        ctx.timerService().registerProcessingTimeTimer((now / emitIntervalMs + 1) * emitIntervalMs);
        if (old == null) {
            ctx.timerService().registerEventTimeTimer(END_OF_TIME);
        }
    }

    /** ``old`` (null: none) after one row's pairs, a new object (Flink's heap state keeps
     *  the object it was given). */
    static State stepped(State old, java.util.List<String> dsts, java.util.List<Double> weights,
                         long ts, Config cfg) {
        State s = old == null ? new State() : copy(old);
        for (int i = 0; i < dsts.size(); i++) {
            step(s, old == null && i == 0, dsts.get(i), weights.get(i), ts, cfg);
        }
        return s;
    }

    static State copy(State s) {
        State c = new State();
        c.dst = s.dst;  // the arrays are copied on write below
        c.score = s.score;
        c.seq = s.seq;
        c.asOf = s.asOf;
        return c;
    }

    /** operators/neighbours.py step, applied to ``s`` in place (its arrays are replaced). */
    static void step(State s, boolean first, String dst, double weight, long ts, Config cfg) {
        double term = Decay.logTerm(weight, ts, cfg.halfLifeS);
        int n = s.dst.length;
        int at = -1;
        for (int i = 0; i < n; i++) {
            if (s.dst[i].equals(dst)) {
                at = i;
                break;
            }
        }
        if (at >= 0) {
            s.score = s.score.clone();
            s.score[at] = Decay.logaddexp(s.score[at], term);
        } else if (n < cfg.capacity) {
            s.dst = Arrays.copyOf(s.dst, n + 1);
            s.score = Arrays.copyOf(s.score, n + 1);
            s.dst[n] = dst;
            s.score[n] = term;
        } else {
            int weakest = 0;  // the smallest score, ties: the smallest item id
            for (int i = 1; i < n; i++) {
                if (s.score[i] < s.score[weakest] || s.score[i] == s.score[weakest]
                        && Interactions.compareCodePoints(s.dst[i], s.dst[weakest]) < 0) {
                    weakest = i;
                }
            }
            s.dst = s.dst.clone();
            s.score = s.score.clone();
            s.dst[weakest] = dst;
            s.score[weakest] = Decay.logaddexp(s.score[weakest], term);
        }
        s.seq = first ? 1 : s.seq + 1;
        s.asOf = first ? ts : Math.max(s.asOf, ts);
    }

    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<String> out)
            throws Exception {
        State s = state.value();
        if (s == null) {
            return;
        }
        String key = ctx.getCurrentKey();
        int bar = key.indexOf('|');
        String relation = key.substring(0, bar);
        String src = key.substring(bar + 1);
        out.collect(update(relation, src, s, config(relation)));
        metrics.emitted(1);
        State r = recent != null && relation.equals(SIMILAR) ? recent.value() : null;
        if (r != null) {
            out.collect(update(SIMILAR_RECENT, src, r, similarRecent));
            metrics.emitted(1);
        }
    }

    /** stream/views.py neighbour_update: the best top_k, ties by item id. */
    static String update(String relation, String src, State s, Config cfg) {
        return Updates.wire(Updates.PREFIX + relation + ":" + src, s.asOf, s.asOf,
                            Ranks.render(s.dst, s.score, cfg.topK, cfg.halfLifeS));
    }
}
