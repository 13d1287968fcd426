// Twin of operators/session.py (step, render, version) and of SessionFunction in
// stream/functions.py (publication, pair grouping, model routing). The Python operator is the
// specification; the parity tests run both on the same log and compare the Redis state.
//
// Expiry (the spec forgets lazily, on the user's next event): one event-time timer per user at
// expiresAt(s) >= version(s) + ttl + grace + 1 (rounded up by StateExpiry.at), grace being the
// job's bounded out-of-orderness plus RECS_STATE_EXPIRY_LATENESS_MS; when it fires the user's
// state is cleared. The outputs stay the spec's. Once the watermark has passed that time, any
// event at most ``grace`` behind the watermark has ts > version(s) + ttl, so ts is more than ttl
// after the last interest event and after every shown entry (last_ts and each entry's time are
// <= version(s)). For such an event the spec's step:
//  - interest event: _alive finds the interest part expired and no shown entry within ttl of
//    max(version, ts) = ts, returns None, and the state starts over as if it had been empty;
//  - impression: not ignored (newest = ts), _alive returns None as above, and a fresh state is
//    built as from an empty one (an impression showing nothing changes neither state);
//  - any other event: changes no state, either way.
// The model and ranker routing does not read the state. So a cleared state and the lazily forgotten
// one give the same pairs, the same published sessions (seq and version included) and the same
// routing. Expiry itself publishes nothing new: with publishMs > 0 it publishes the state it clears
// (a change may still wait for its processing-time timer, which would find no state), the same
// value and version as the pending publication. Events later than that bound (a subset of
// recs_stream_late_events_total) may find a cleared state and differ.
package recs.stream;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.metrics.Counter;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.TimeDomain;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/** Keyed by user: the session state; emits PAIRS rows, session updates and model inputs. */
public class SessionFunction extends KeyedProcessFunction<String, Row, Row> {
    public static final OutputTag<String> UPDATES = new OutputTag<>("updates", Types.STRING);
    public static final OutputTag<Row> MODEL_INPUT = new OutputTag<>("model-input", Rows.EVENT_ROW);
    public static final OutputTag<Row> RANKER_INPUT =
        new OutputTag<>("ranker-input", Rows.EVENT_ROW);
    static final Set<String> BASKET_TYPES = Set.of("add_to_cart", "purchase");
    static final Set<String> INTEREST_TYPES =
        Set.of("view", "click", "add_to_cart", "purchase", "rating");
    private static final String[] NONE = new String[0];
    private static final long[] NO_TIMES = new long[0];

    /** operators/session.py SessionState; never mutated once built (the step makes new ones). */
    public static class State {
        public String sessionId;
        public long start;
        public long lastTs;
        public String[] evItem = NONE;
        public String[] evType = NONE;
        public long[] evTs = NO_TIMES;
        public String[] sessionItems = NONE;
        public String[] basket = NONE;
        public String[] purchased = NONE;
        public long seq;
        public String[] shownItem = NONE;
        public long[] shownCount = NO_TIMES;
        public long[] shownTs = NO_TIMES;

        public State() {}

        State copy() {
            State s = new State();
            s.sessionId = sessionId;
            s.start = start;
            s.lastTs = lastTs;
            s.evItem = evItem;
            s.evType = evType;
            s.evTs = evTs;
            s.sessionItems = sessionItems;
            s.basket = basket;
            s.purchased = purchased;
            s.seq = seq;
            s.shownItem = shownItem;
            s.shownCount = shownCount;
            s.shownTs = shownTs;
            return s;
        }
    }

    /** operators/config.py SessionConfig. */
    public static final class Config implements java.io.Serializable {
        public int maxEvents = 20;
        public long gapMs = 30 * 60_000L;
        public long ttlMs = 30 * 86_400_000L;
        public int pairWindow = 5;
        public double backwardWeight = 0.5;
        public int maxBasket = 20;
        public int maxPurchased = 100;
        public double cartPairWeight = 0.5;
        public double purchasePairWeight = 1.0;
        public int maxShown = 100;
        public long publishMs;  // 0: every change at once (as the Python twin)
        public long expiryGraceMs;           // expiry: out-of-orderness + allowed lateness
        public boolean models;               // route model inputs (stream/routing.py)
        public boolean explicit;             // MFConfig mode: only ratings teach the model
        public String[] learnTypes = NONE;   // event types the model weighs above zero
    }

    private final Config cfg;
    private final Set<String> learnTypes;
    private final OperatorMetrics metrics = new OperatorMetrics("sessions");
    private transient ValueState<State> state;
    private transient Counter created;
    private transient Counter expired;

    public SessionFunction(Config cfg) {
        this.cfg = cfg;
        this.learnTypes = Set.of(cfg.learnTypes);
    }

    @Override
    public void open(OpenContext context) {
        state = getRuntimeContext().getState(
            new ValueStateDescriptor<>("session", TypeInformation.of(State.class)));
        metrics.open(getRuntimeContext().getMetricGroup());
        created = StateExpiry.created(getRuntimeContext().getMetricGroup(), "sessions");
        expired = StateExpiry.expired(getRuntimeContext().getMetricGroup(), "sessions");
    }

    long expiresAt(State s) {
        return StateExpiry.at(version(s), cfg.ttlMs, cfg.expiryGraceMs);
    }

    @Override
    public void processElement(Row ev, Context ctx, Collector<Row> out) throws Exception {
        long ts = ev.<Long>getFieldAs(1);
        metrics.arrived(ts, ctx.timerService().currentWatermark());
        String type = ev.getFieldAs(4);
        String itemId = ev.getFieldAs(6);
        int emitted = 0;
        if (cfg.models) {
            boolean learns = cfg.explicit ? type.equals("rating") && itemId != null
                : learnTypes.contains(type) && itemId != null;
            if (learns) {
                ctx.output(MODEL_INPUT, Rows.eventRow(ev));
                emitted++;
            }
            if (type.equals("impression") || ev.<Boolean>getFieldAs(8)) {
                ctx.output(RANKER_INPUT, Rows.eventRow(ev));
                emitted++;
            }
        }
        State old = state.value();
        List<Object[]> pairs = new ArrayList<>();
        State now = step(old, type, itemId, ev.getFieldAs(7), ev.getFieldAs(5), ts, pairs);
        if (now != old && now != null) {
            state.update(now);
            if (old == null) {
                created.inc();
            }
            StateExpiry.reschedule(ctx.timerService(),
                                   old == null ? StateExpiry.NONE : expiresAt(old), expiresAt(now));
            if (cfg.publishMs <= 0) {
                ctx.output(UPDATES, update(ctx.getCurrentKey(), now));
                emitted++;
            } else {  // coalesced: the newest session once per publishMs (see onTimer)
                long wall = ctx.timerService().currentProcessingTime();
                ctx.timerService().registerProcessingTimeTimer(
                    (wall / cfg.publishMs + 1) * cfg.publishMs);
                if (old == null) {
                    ctx.timerService().registerEventTimeTimer(NeighbourFunction.END_OF_TIME);
                }
            }
        }
        emitted += groupPairs(pairs, ts, out);
        metrics.emitted(emitted);
    }

    /** The user's newest session, at most once per publishMs and at the end of a bounded input.
     *  The Redis writers keep only the newest value of a key per flush anyway; rendering and
     *  shipping every intermediate session was most of this stage's cost. And the user's
     *  expiry (see the note at the top). */
    @Override
    public void onTimer(long timestamp, OnTimerContext ctx, Collector<Row> out) throws Exception {
        State s = state.value();
        if (s == null) {
            return;
        }
        boolean expiry = ctx.timeDomain() == TimeDomain.EVENT_TIME
            && timestamp != NeighbourFunction.END_OF_TIME;
        if (expiry && (expiresAt(s) != timestamp || StateExpiry.endOfInput(ctx.timerService()))) {
            return;
        }
        if (!expiry || cfg.publishMs > 0) {
            ctx.output(UPDATES, update(ctx.getCurrentKey(), s));
            metrics.emitted(1);
        }
        if (expiry) {
            state.clear();
            expired.inc();
        }
    }

    /** stream/functions.py group_pairs: one row per (relation, src), in emission order. */
    static int groupPairs(List<Object[]> pairs, long ts, Collector<Row> out) {
        if (pairs.isEmpty()) {
            return 0;
        }
        Map<String, Object[]> groups = new LinkedHashMap<>();
        for (Object[] p : pairs) {
            String relation = (String) p[0];
            String src = (String) p[1];
            Object[] g = groups.computeIfAbsent(relation + "\u0000" + src,
                k -> new Object[] {relation, src, new ArrayList<String>(), new ArrayList<Double>()});
            @SuppressWarnings("unchecked")
            ArrayList<String> dsts = (ArrayList<String>) g[2];
            @SuppressWarnings("unchecked")
            ArrayList<Double> weights = (ArrayList<Double>) g[3];
            dsts.add((String) p[2]);
            weights.add((Double) p[3]);
        }
        for (Object[] g : groups.values()) {
            @SuppressWarnings("unchecked")
            ArrayList<String> dsts = (ArrayList<String>) g[2];
            @SuppressWarnings("unchecked")
            ArrayList<Double> weights = (ArrayList<Double>) g[3];
            out.collect(Rows.pairs((String) g[0], (String) g[1], dsts, weights, ts));
        }
        return groups.size();
    }

    // -- operators/session.py ---------------------------------------------------------------

    static long version(State s) {
        return s.shownTs.length > 0 ? Math.max(s.lastTs, s.shownTs[s.shownTs.length - 1])
            : s.lastTs;
    }

    static boolean hasInterest(State s) {
        return s.sessionItems.length > 0;
    }

    /** _live: entries shown within ttl of newest; the same arrays when nothing is dropped. */
    static State live(State s, long newest, long ttl) {
        int n = s.shownTs.length;
        if (n == 0 || newest - s.shownTs[0] <= ttl) {
            return s;
        }
        int k = 0;
        String[] item = new String[n];
        long[] count = new long[n];
        long[] times = new long[n];
        for (int i = 0; i < n; i++) {
            if (newest - s.shownTs[i] <= ttl) {
                item[k] = s.shownItem[i];
                count[k] = s.shownCount[i];
                times[k++] = s.shownTs[i];
            }
        }
        State r = s.copy();
        r.shownItem = Arrays.copyOf(item, k);
        r.shownCount = Arrays.copyOf(count, k);
        r.shownTs = Arrays.copyOf(times, k);
        return r;
    }

    State alive(State s, long ts) {
        if (s == null || (hasInterest(s) && ts - s.lastTs <= cfg.ttlMs)) {
            return s;
        }
        State shown = live(s, Math.max(version(s), ts), cfg.ttlMs);
        if (shown.shownItem.length == 0) {
            return null;
        }
        if (!hasInterest(s) && shown == s) {
            return s;
        }
        State r = shown.copy();
        r.start = 0;
        r.lastTs = 0;
        r.evItem = NONE;
        r.evType = NONE;
        r.evTs = NO_TIMES;
        r.sessionItems = NONE;
        r.basket = NONE;
        r.purchased = NONE;
        return r;
    }

    static String[] appendBounded(String[] items, String item, int limit) {
        ArrayList<String> kept = new ArrayList<>(items.length + 1);
        for (String x : items) {
            if (!x.equals(item)) {
                kept.add(x);
            }
        }
        kept.add(item);
        int from = Math.max(0, kept.size() - limit);
        return kept.subList(from, kept.size()).toArray(NONE);
    }

    /** _record_shown on a copy of ``cur`` (its other fields untouched). */
    State recordShown(State cur, String[] itemIds, long ts, long newest) {
        LinkedHashSet<String> distinct = new LinkedHashSet<>(Arrays.asList(itemIds));
        int n = cur.shownItem.length;
        List<Object[]> merged = new ArrayList<>(n + distinct.size());
        Map<String, Integer> before = new LinkedHashMap<>();
        for (int i = 0; i < n; i++) {
            if (distinct.contains(cur.shownItem[i])) {
                before.put(cur.shownItem[i], i);
            } else {
                merged.add(new Object[] {cur.shownItem[i], cur.shownCount[i], cur.shownTs[i]});
            }
        }
        for (String i : distinct) {
            Integer at = before.get(i);
            merged.add(at == null ? new Object[] {i, 1L, ts}
                : new Object[] {i, cur.shownCount[at] + 1, Math.max(cur.shownTs[at], ts)});
        }
        merged.sort((a, b) -> Long.compare((Long) a[2], (Long) b[2]));  // stable
        State r = cur.copy();
        r.shownItem = new String[merged.size()];
        r.shownCount = new long[merged.size()];
        r.shownTs = new long[merged.size()];
        for (int i = 0; i < merged.size(); i++) {
            r.shownItem[i] = (String) merged.get(i)[0];
            r.shownCount[i] = (Long) merged.get(i)[1];
            r.shownTs[i] = (Long) merged.get(i)[2];
        }
        r = live(r, newest, cfg.ttlMs);
        int m = r.shownItem.length;
        if (m > cfg.maxShown) {
            r = r == cur ? r.copy() : r;
            r.shownItem = Arrays.copyOfRange(r.shownItem, m - cfg.maxShown, m);
            r.shownCount = Arrays.copyOfRange(r.shownCount, m - cfg.maxShown, m);
            r.shownTs = Arrays.copyOfRange(r.shownTs, m - cfg.maxShown, m);
        }
        return r;
    }

    State impressionStep(State s, String[] itemIds, String sessionId, long ts) {
        long newest = s == null ? ts : Math.max(version(s), ts);
        if (newest - ts > cfg.ttlMs || itemIds == null || itemIds.length == 0) {
            return s;
        }
        State cur = alive(s, ts);
        if (cur == null) {
            State fresh = new State();
            fresh.sessionId = sessionId;
            fresh.seq = 1;
            return recordShown(fresh, itemIds, ts, newest);
        }
        State shown = recordShown(cur, itemIds, ts, newest);
        if (cur == s && Arrays.equals(shown.shownItem, cur.shownItem)
                && Arrays.equals(shown.shownCount, cur.shownCount)
                && Arrays.equals(shown.shownTs, cur.shownTs)) {
            return s;
        }
        State r = shown == cur ? cur.copy() : shown;
        r.seq = cur.seq + 1;
        return r;
    }

    /** step(): the new state (the same object when the event changes nothing); pairs out as
     *  {relation, src, dst, weight}. */
    State step(State s, String type, String item, String[] itemIds, String sessionId, long ts,
               List<Object[]> pairs) {
        if (type.equals("impression")) {
            return impressionStep(s, itemIds, sessionId, ts);
        }
        if (!INTEREST_TYPES.contains(type) || item == null) {
            return s;
        }
        State st = alive(s, ts);
        if (st == null) {
            st = new State();
            st.sessionId = sessionId;
            st.start = ts;
            st.lastTs = ts;
        } else if (!hasInterest(st) || !sessionId.equals(st.sessionId)
                   || ts - st.lastTs > cfg.gapMs) {
            st = st.copy();
            st.sessionId = sessionId;
            st.start = ts;
            st.sessionItems = NONE;
            st.basket = NONE;
        }
        String[] history = st.sessionItems;
        if (history.length == 0 || !history[history.length - 1].equals(item)) {
            int from = Math.max(0, history.length - cfg.pairWindow);
            int dist = 1;
            for (int i = history.length - 1; i >= from; i--, dist++) {
                String prev = history[i];
                if (prev.equals(item)) {
                    continue;
                }
                pairs.add(new Object[] {"similar", prev, item, 1.0 / dist});
                if (cfg.backwardWeight > 0) {
                    pairs.add(new Object[] {"similar", item, prev, cfg.backwardWeight / dist});
                }
            }
        }
        String[] basket = st.basket;
        String[] purchased = st.purchased;
        if (BASKET_TYPES.contains(type)) {
            double weight = type.equals("purchase") ? cfg.purchasePairWeight : cfg.cartPairWeight;
            if (weight > 0) {
                for (String other : basket) {
                    if (!other.equals(item)) {
                        pairs.add(new Object[] {"bought", other, item, weight});
                        pairs.add(new Object[] {"bought", item, other, weight});
                    }
                }
            }
            basket = appendBounded(basket, item, cfg.maxBasket);
            if (type.equals("purchase")) {
                purchased = appendBounded(purchased, item, cfg.maxPurchased);
            }
        }
        int n = st.evItem.length + 1;
        int from = Math.max(0, n - cfg.maxEvents);
        String[] evItem = Arrays.copyOfRange(st.evItem, from, n);
        String[] evType = Arrays.copyOfRange(st.evType, from, n);
        long[] evTs = Arrays.copyOfRange(st.evTs, from, n);
        evItem[evItem.length - 1] = item;
        evType[evType.length - 1] = type;
        evTs[evTs.length - 1] = ts;
        State shown = live(st, Math.max(version(st), ts), cfg.ttlMs);
        State r = new State();
        r.sessionId = st.sessionId;
        r.start = st.start;
        r.lastTs = Math.max(st.lastTs, ts);
        r.evItem = evItem;
        r.evType = evType;
        r.evTs = evTs;
        r.sessionItems = appendBounded(history, item, cfg.pairWindow);
        r.basket = basket;
        r.purchased = purchased;
        r.seq = st.seq + 1;
        r.shownItem = shown.shownItem;
        r.shownCount = shown.shownCount;
        r.shownTs = shown.shownTs;
        return r;
    }

    /** stream/views.py session_update as an Update wire line (state/records.py). */
    static String update(String userId, State s) {
        long v = version(s);
        ObjectNode d = Interactions.NODES.objectNode();
        d.put("session_id", s.sessionId);
        d.put("start", s.start);
        d.put("last_ts", s.lastTs);
        ArrayNode events = d.putArray("events");
        for (int i = 0; i < s.evItem.length; i++) {
            events.addArray().add(s.evItem[i]).add(s.evType[i]).add(s.evTs[i]);
        }
        ArrayNode basket = d.putArray("basket");
        for (String b : s.basket) {
            basket.add(b);
        }
        ArrayNode purchased = d.putArray("purchased");
        for (String p : s.purchased) {
            purchased.add(p);
        }
        ArrayNode shown = d.putArray("shown");
        for (int i = 0; i < s.shownItem.length; i++) {
            shown.addArray().add(s.shownItem[i]).add(s.shownCount[i]).add(s.shownTs[i]);
        }
        return Updates.wire(Updates.PREFIX + "session:" + userId, v, v, d);
    }
}
