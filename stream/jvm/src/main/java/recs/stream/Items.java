// Twin of the item half of operators/trending.py (item_event_step, item_upsert_step,
// current_scores, render_item, render_stats) and of operators/arrivals.py (placement, retracted),
// with state/keys.py's scope names. The Python operators are the specification; parity tests
// compare the Redis state both produce.
package recs.stream;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

public final class Items {
    static final long HOUR_MS = 3_600_000L;
    static final String[] DAYPARTS = {"night", "morning", "afternoon", "evening"};
    static final int MAX_CONTEXT_VALUE_LEN = 64;  // state/keys.py
    static final double RETRACT = Double.NEGATIVE_INFINITY;

    private Items() {}

    /** operators/trending.py ItemState; the arrays are small (event types, context scopes). */
    public static class State {
        public String meta;        // the newest upsert as JSON, without schema_version; or null
        public String category;    // meta's category when it is a string
        public boolean deleted;    // meta's deleted flag
        public long metaTs;
        public String[] countType = new String[0];
        public long[] count = new long[0];
        public double logPop = Double.NEGATIVE_INFINITY;
        public long seq;
        public long asOf;
        public long popTs;
        public String[] ctxScope = new String[0];  // insertion order, as the Python dict
        public double[] ctxScore = new double[0];
        public long[] ctxTs = new long[0];
        public long firstSeenTs;

        public State() {}
    }

    /** operators/config.py: the event weights and the TrendingConfig the items stage reads. */
    public static final class Config implements java.io.Serializable {
        public String[] weightType = new String[0];
        public double[] weight = new double[0];
        public double halfLifeS;
        public int maxContextScopes;

        /** EngineConfig.weight: a rating weighs in proportion to how much it was liked. */
        double weight(String type, Double value) {
            for (int i = 0; i < weightType.length; i++) {
                if (weightType[i].equals(type)) {
                    return type.equals("rating") && value != null
                        ? weight[i] * Math.max(value, 0.0) / 5.0 : weight[i];
                }
            }
            return 0.0;
        }
    }

    /** operators/trending.py ScopeScore. */
    public record Score(String scope, String item, double logScore, long ts) {}

    /** item_event_step: updates ``s`` in place and returns the scores the event changed. */
    static List<Score> event(State s, String item, String type, Double value, long ts,
                             String device, String country, Config cfg) {
        int at = indexOf(s.countType, type);
        if (at < 0) {
            s.countType = append(s.countType, type);
            s.count = Arrays.copyOf(s.count, s.count.length + 1);
            at = s.count.length - 1;
        }
        s.count[at]++;
        s.seq++;
        s.asOf = Math.max(s.asOf, ts);
        double w = cfg.weight(type, value);
        if (!(w > 0)) {
            return List.of();
        }
        List<String> scopes = contextScopes(device, country, ts);
        String[] before = s.ctxScope;
        long[] beforeTs = s.ctxTs;
        addContext(s, scopes, w, ts, cfg);
        s.logPop = Decay.add(s.logPop, w, ts, cfg.halfLifeS);
        s.popTs = Math.max(s.popTs, ts);
        List<Score> out = globalScores(item, s, ts);
        for (String scope : scopes) {
            int i = indexOf(s.ctxScope, scope);
            if (i >= 0) {
                out.add(new Score(scope, item, s.ctxScore[i], ts));
            }
        }
        for (int i = 0; i < before.length; i++) {  // scopes the bound pushed out
            if (indexOf(s.ctxScope, before[i]) < 0) {
                out.add(new Score(before[i], item, RETRACT, beforeTs[i]));
            }
        }
        return out;
    }

    /** _add_context: add the event to its scopes, keep the max_context_scopes best. */
    private static void addContext(State s, List<String> scopes, double w, long ts, Config cfg) {
        String[] scope = s.ctxScope.clone();
        double[] score = s.ctxScore.clone();
        long[] newest = s.ctxTs.clone();
        for (String sc : scopes) {
            int i = indexOf(scope, sc);
            if (i < 0) {
                scope = append(scope, sc);
                score = Arrays.copyOf(score, score.length + 1);
                newest = Arrays.copyOf(newest, newest.length + 1);
                i = scope.length - 1;
                score[i] = Double.NEGATIVE_INFINITY;
                newest[i] = ts;
            }
            score[i] = Decay.add(score[i], w, ts, cfg.halfLifeS);
            newest[i] = Math.max(newest[i], ts);
        }
        if (scope.length > cfg.maxContextScopes) {
            Integer[] order = Ranks.byScore(scope, score);
            boolean[] keep = new boolean[scope.length];
            for (int k = 0; k < cfg.maxContextScopes; k++) {
                keep[order[k]] = true;
            }
            int n = 0;
            for (int i = 0; i < scope.length; i++) {  // the kept ones in insertion order
                if (keep[i]) {
                    scope[n] = scope[i];
                    score[n] = score[i];
                    newest[n++] = newest[i];
                }
            }
            scope = Arrays.copyOf(scope, n);
            score = Arrays.copyOf(score, n);
            newest = Arrays.copyOf(newest, n);
        }
        s.ctxScope = scope;
        s.ctxScore = score;
        s.ctxTs = newest;
    }

    /** item_upsert_step; ``meta`` is the upsert's document. Updates ``s`` in place. */
    static List<Score> upsert(State s, String item, long ts, ObjectNode meta, Config cfg) {
        List<Score> out = new ArrayList<>();
        if (s.meta != null && ts < s.metaTs) {
            if (ts >= s.firstSeenTs) {
                return out;
            }
            Map<String, Double> old = placement(s, cfg);
            s.firstSeenTs = ts;
            arrivalScores(item, old, s.metaTs, s, cfg, out);
            return out;
        }
        Map<String, Double> oldPlaces = placement(s, cfg);
        String oldCat = s.category;
        long oldMetaTs = s.metaTs;
        meta.remove("schema_version");
        JsonNode cat = meta.get("category");
        JsonNode deleted = meta.get("deleted");
        boolean wasListed = s.meta != null;
        s.meta = meta.toString();
        s.category = cat != null && cat.isTextual() ? cat.textValue() : null;
        s.deleted = deleted != null && deleted.asBoolean(false);
        s.metaTs = ts;
        s.firstSeenTs = wasListed ? Math.min(s.firstSeenTs, ts) : ts;
        if (s.deleted) {  // _trending_moves: a retired item leaves every list it is on
            out.add(new Score("global", item, RETRACT, s.popTs));
            if (oldCat != null) {
                out.add(new Score("cat:" + oldCat, item, RETRACT, s.popTs));
            }
            for (int i = 0; i < s.ctxScope.length; i++) {
                out.add(new Score(s.ctxScope[i], item, RETRACT, s.ctxTs[i]));
            }
        } else {
            if (oldCat != null && !oldCat.equals(s.category)) {
                out.add(new Score("cat:" + oldCat, item, RETRACT, s.popTs));
            }
            if (s.category != null && !s.category.equals(oldCat)
                    && s.logPop != Double.NEGATIVE_INFINITY) {
                out.add(new Score("cat:" + s.category, item, s.logPop, s.popTs));
            }
        }
        arrivalScores(item, oldPlaces, oldMetaTs, s, cfg, out);
        return out;
    }

    /** _arrival_scores: leave the new-arrival scopes left or lowered, then offer the new ones. */
    private static void arrivalScores(String item, Map<String, Double> old, long oldMetaTs,
                                      State now, Config cfg, List<Score> out) {
        Map<String, Double> places = placement(now, cfg);
        for (Map.Entry<String, Double> e : old.entrySet()) {  // arrivals.retracted
            Double v = places.get(e.getKey());
            if (v == null || v < e.getValue()) {
                out.add(new Score(e.getKey(), item, RETRACT, oldMetaTs));
            }
        }
        for (Map.Entry<String, Double> e : places.entrySet()) {
            out.add(new Score(e.getKey(), item, e.getValue(), now.metaTs));
        }
    }

    /** operators/arrivals.py placement: new:global and new:cat:{category}, in that order. */
    static Map<String, Double> placement(State s, Config cfg) {
        if (s.meta == null || s.deleted) {
            return Map.of();
        }
        double score = Decay.logTerm(1.0, s.firstSeenTs, cfg.halfLifeS);
        java.util.LinkedHashMap<String, Double> out = new java.util.LinkedHashMap<>();
        out.put("new:global", score);
        if (s.category != null) {
            out.put("new:cat:" + s.category, score);
        }
        return out;
    }

    /** current_scores: global, category, then the context scopes sorted by name. */
    static List<Score> currentScores(String item, State s) {
        List<Score> out = globalScores(item, s, s.popTs);
        Integer[] order = new Integer[s.ctxScope.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Interactions.compareCodePoints(s.ctxScope[a], s.ctxScope[b]));
        for (int i : order) {
            out.add(new Score(s.ctxScope[i], item, s.ctxScore[i], s.ctxTs[i]));
        }
        return out;
    }

    private static List<Score> globalScores(String item, State s, long ts) {
        List<Score> out = new ArrayList<>();
        if (s.logPop == Double.NEGATIVE_INFINITY) {
            return out;
        }
        out.add(new Score("global", item, s.logPop, ts));
        if (s.category != null) {
            out.add(new Score("cat:" + s.category, item, s.logPop, ts));
        }
        return out;
    }

    /** context_scopes: device and country (normalised, when usable), then the daypart. */
    static List<String> contextScopes(String device, String country, long ts) {
        List<String> out = new ArrayList<>(3);
        String d = contextValue(device);
        if (d != null) {
            out.add("ctx:device:" + d);
        }
        String c = contextValue(country);
        if (c != null) {
            out.add("ctx:country:" + c);
        }
        out.add("ctx:daypart:" + DAYPARTS[(int) (Math.floorMod(Math.floorDiv(ts, HOUR_MS), 24L) / 6)]);
        return out;
    }

    /** state/keys.py context_value: Python's str.strip() and lower(), 1..64 code points. */
    static String contextValue(String raw) {
        if (raw == null) {
            return null;
        }
        int start = 0;
        int end = raw.length();
        while (start < end && isPySpace(raw.charAt(start))) {
            start++;
        }
        while (end > start && isPySpace(raw.charAt(end - 1))) {
            end--;
        }
        String norm = raw.substring(start, end).toLowerCase(Locale.ROOT);
        int n = norm.codePointCount(0, norm.length());
        return n > 0 && n <= MAX_CONTEXT_VALUE_LEN ? norm : null;
    }

    /** Python's str.isspace for one UTF-16 unit (every whitespace is in the BMP). */
    static boolean isPySpace(char c) {
        return (c >= '\t' && c <= '\r') || (c >= '\u001c' && c <= ' ') || c == '\u0085'
            || c == '\u00a0' || c == '\u1680' || (c >= '\u2000' && c <= '\u200a')
            || c == '\u2028' || c == '\u2029' || c == '\u202f' || c == '\u205f' || c == '\u3000';
    }

    /** render_item: the newest upsert and first_seen_ms; null before the first upsert. */
    static ObjectNode renderItem(State s) throws Exception {
        if (s.meta == null) {
            return null;
        }
        ObjectNode d = (ObjectNode) Interactions.JSON.readTree(s.meta);
        d.put("first_seen_ms", s.firstSeenTs);
        return d;
    }

    /** render_stats: counts by event type (sorted) and log_pop (null before any weight). */
    static ObjectNode renderStats(State s) {
        ObjectNode d = Interactions.NODES.objectNode();
        ObjectNode counts = d.putObject("counts");
        String[] types = s.countType.clone();
        Arrays.sort(types);
        for (String t : types) {
            counts.put(t, s.count[indexOf(s.countType, t)]);
        }
        if (s.logPop == Double.NEGATIVE_INFINITY) {
            d.putNull("log_pop");
        } else {
            d.put("log_pop", s.logPop);
        }
        return d;
    }

    static int indexOf(String[] a, String x) {
        for (int i = 0; i < a.length; i++) {
            if (a[i].equals(x)) {
                return i;
            }
        }
        return -1;
    }

    private static String[] append(String[] a, String x) {
        String[] r = Arrays.copyOf(a, a.length + 1);
        r[a.length] = x;
        return r;
    }
}
