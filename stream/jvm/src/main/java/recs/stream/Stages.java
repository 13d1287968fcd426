// The JVM stages as stream/topology.py wires them: each method applies one stage to a Java
// DataStream and returns the Java DataStream PyFlink wraps back (stream/jvm.py). The topology
// itself stays in Python; this class only spares Python the Java generics.
package recs.stream;

import java.time.Duration;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;

public final class Stages {
    private Stages() {}

    /** Rows are keyed by their first field (user_id in EVENT rows). */
    public static final class FirstField implements KeySelector<Row, String> {
        @Override
        public String getKey(Row row) {
            return row.getFieldAs(0);
        }
    }

    public static SingleOutputStreamOperator<Row> parse(DataStream<String> raw) {
        return raw.process(new ParseInteractions(), Rows.EVENT).name("parse").uid("parse");
    }

    public static DataStream<String> deadLetters(SingleOutputStreamOperator<Row> parsed) {
        return parsed.getSideOutput(ParseInteractions.DLQ);
    }

    /** The interactions' Kafka source's strategy: event time read from the raw document,
     *  watermarks per partition (EventTimes). */
    public static WatermarkStrategy<String> sourceWatermarks(long outOfOrdernessMs,
                                                             long idlenessMs) {
        return EventTimes.strategy(outOfOrdernessMs, idlenessMs);
    }

    /** Event time from the row's ``ts``; bounded out-of-orderness; idle partitions do not stall.
     *  One watermark for the records as they come (a source without per-partition ones). */
    public static DataStream<Row> watermarks(DataStream<Row> events, long outOfOrdernessMs,
                                             long idlenessMs) {
        WatermarkStrategy<Row> strategy = WatermarkStrategy
            .<Row>forBoundedOutOfOrderness(Duration.ofMillis(outOfOrdernessMs))
            .withIdleness(Duration.ofMillis(idlenessMs))
            .withTimestampAssigner((row, previous) -> row.<Long>getFieldAs(1));
        return events.assignTimestampsAndWatermarks(strategy).name("watermarks").uid("watermarks");
    }

    /** ``graceMs``: out-of-orderness + allowed lateness (DedupFunction's expiry). */
    public static DataStream<Row> dedup(DataStream<Row> events, long windowMs, int maxIds,
                                        long graceMs) {
        return events.keyBy(new FirstField())
            .process(new DedupFunction(windowMs, maxIds, graceMs), Rows.EVENT)
            .name("dedup").uid("dedup");
    }

    /** The session stage on the deduplicated stream, still partitioned by user (no shuffle). */
    public static SingleOutputStreamOperator<Row> sessions(DataStream<Row> deduped,
                                                           String configJson) throws Exception {
        return DataStreamUtils.reinterpretAsKeyedStream(deduped, new FirstField())
            .process(new SessionFunction(sessionConfig(configJson)), Rows.PAIRS_ROW)
            .name("sessions").uid("sessions");
    }

    public static DataStream<String> sessionUpdates(SingleOutputStreamOperator<Row> sessions) {
        return sessions.getSideOutput(SessionFunction.UPDATES);
    }

    public static DataStream<Row> modelInput(SingleOutputStreamOperator<Row> sessions) {
        return sessions.getSideOutput(SessionFunction.MODEL_INPUT);
    }

    public static DataStream<Row> rankerInput(SingleOutputStreamOperator<Row> sessions) {
        return sessions.getSideOutput(SessionFunction.RANKER_INPUT);
    }

    /** A model's input (EVENT_ROW) as ModelFeed batches (maxBatch > 1) or sampled rows. */
    public static SingleOutputStreamOperator<Row> modelFeed(DataStream<Row> input, String name,
                                                            double budget, int maxBatch,
                                                            long maxDelayMs) {
        // a task of its own: no Python operator (the models' key-by) chained into the counting
        // path, where it would wait for the interpreter while a model learns a batch
        return input.transform(name, maxBatch > 1 ? ModelFeed.BATCH : Rows.EVENT_ROW,
                               new ModelFeed(name, budget, maxBatch, maxDelayMs))
            .uid(name).disableChaining();
    }

    /** PAIRS rows are keyed by ``relation|src`` (stream/topology.py _relation_key). */
    public static final class RelationKey implements KeySelector<Row, String> {
        @Override
        public String getKey(Row row) {
            return row.<String>getFieldAs(0) + "|" + row.<String>getFieldAs(1);
        }
    }

    /** Decayed, bounded neighbours per (relation, source item); a stream of Update lines.
     *  ``similar_recent`` null: the second similar-items list is off. */
    public static DataStream<String> neighbours(DataStream<Row> pairs, String configJson)
            throws Exception {
        JsonNode doc = Interactions.JSON.readTree(configJson);
        JsonNode recent = doc.get("similar_recent");
        return pairs.keyBy(new RelationKey())
            .process(new NeighbourFunction(neighbourConfig(doc.get("similar")),
                                           neighbourConfig(doc.get("bought")),
                                           recent == null || recent.isNull() ? null
                                               : neighbourConfig(recent),
                                           doc.get("emit_interval_ms").longValue()),
                     org.apache.flink.api.common.typeinfo.Types.STRING)
            .name("neighbours").uid("neighbours");
    }

    /** The items stage: every item an event touches (Rows.touchedItems) and the catalogue
     *  (Python's ITEM_ROW: item_id, ts, body), keyed by item; emits SCORE rows. */
    public static SingleOutputStreamOperator<Row> items(DataStream<Row> events,
                                                        DataStream<Row> catalogue,
                                                        String configJson) throws Exception {
        JsonNode doc = Interactions.JSON.readTree(configJson);
        Items.Config cfg = new Items.Config();
        JsonNode weights = doc.get("event_weights");
        cfg.weightType = new String[weights.size()];
        cfg.weight = new double[weights.size()];
        int i = 0;
        for (java.util.Iterator<String> it = weights.fieldNames(); it.hasNext(); i++) {
            cfg.weightType[i] = it.next();
            cfg.weight[i] = weights.get(cfg.weightType[i]).doubleValue();
        }
        cfg.halfLifeS = doc.get("half_life_s").doubleValue();
        cfg.maxContextScopes = doc.get("max_context_scopes").intValue();
        DataStream<Row> touched = events
            .flatMap((Row event, org.apache.flink.util.Collector<Row> out) ->
                Rows.touchedItems(event, out), Rows.ITEM_EVENT)
            .name("items-touched").uid("items-touched");
        return touched.connect(catalogue)
            .keyBy(new FirstField(), new FirstField())
            .process(new ItemFunction(cfg, doc.get("emit_interval_ms").longValue()), Rows.SCORE_ROW)
            .name("items").uid("items");
    }

    public static DataStream<String> itemUpdates(SingleOutputStreamOperator<Row> items) {
        return items.getSideOutput(ItemFunction.UPDATES);
    }

    /** The trending lists from ItemFunction's scope scores (SCORE_ROW, keyed by scope). */
    public static DataStream<String> trending(DataStream<Row> scores, int topK, int newTopK,
                                              double halfLifeS, long emitIntervalMs) {
        return scores.keyBy(new FirstField())
            .process(new TopKFunction(topK, newTopK, halfLifeS, emitIntervalMs),
                     org.apache.flink.api.common.typeinfo.Types.STRING)
            .name("trending").uid("trending");
    }

    static NeighbourFunction.Config neighbourConfig(JsonNode doc) {
        return new NeighbourFunction.Config(doc.get("capacity").intValue(),
            doc.get("top_k").intValue(), doc.get("half_life_s").doubleValue());
    }

    /** Update lines without a record timestamp. Those published by an end-of-input timer
     *  carry the timer's time (2^62), which a Kafka broker rejects; the stages publish from
     *  timers through their main output and side outputs alike, so the timestamps are dropped
     *  here, once, before the sinks. Chained to the sink; no record crosses a thread. */
    public static DataStream<String> untimed(DataStream<String> updates) {
        return untimed(updates, "untimed");
    }

    /** The same, under another name and uid (``name``): the dead letters of a front whose
     *  records carry event time from the source (EventTimes) must not reach Kafka with it,
     *  since a broker deletes records older than its retention at once (a replay's dead
     *  letters, measured: 3 of 10 gone before the test read them). */
    public static DataStream<String> untimed(DataStream<String> updates, String name) {
        return updates.process(new org.apache.flink.streaming.api.functions.ProcessFunction<
                String, String>() {
            @Override
            public void processElement(String value, Context ctx,
                                       org.apache.flink.util.Collector<String> out) {
                if (out instanceof org.apache.flink.streaming.api.operators.TimestampedCollector<
                        String> stamped) {
                    stamped.eraseTimestamp();
                }
                out.collect(value);
            }
        }, org.apache.flink.api.common.typeinfo.Types.STRING).name(name).uid(name);
    }

    /** operators/config.py SessionConfig and the model routing, as stream/jvm.py writes them. */
    static SessionFunction.Config sessionConfig(String json) throws Exception {
        JsonNode doc = Interactions.JSON.readTree(json);
        SessionFunction.Config c = new SessionFunction.Config();
        c.maxEvents = doc.get("max_events").intValue();
        c.gapMs = doc.get("gap_ms").longValue();
        c.ttlMs = doc.get("ttl_ms").longValue();
        c.pairWindow = doc.get("pair_window").intValue();
        c.backwardWeight = doc.get("backward_weight").doubleValue();
        c.maxBasket = doc.get("max_basket").intValue();
        c.maxPurchased = doc.get("max_purchased").intValue();
        c.cartPairWeight = doc.get("cart_pair_weight").doubleValue();
        c.purchasePairWeight = doc.get("purchase_pair_weight").doubleValue();
        c.maxShown = doc.get("max_shown").intValue();
        c.publishMs = doc.get("publish_ms").longValue();
        c.expiryGraceMs = doc.get("expiry_grace_ms").longValue();
        c.models = doc.get("models").booleanValue();
        c.explicit = doc.get("explicit").booleanValue();
        JsonNode types = doc.get("learn_types");
        c.learnTypes = new String[types.size()];
        for (int i = 0; i < types.size(); i++) {
            c.learnTypes[i] = types.get(i).textValue();
        }
        return c;
    }
}
