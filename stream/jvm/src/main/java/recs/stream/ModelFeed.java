// What the online models (Python, stream/models.py) are fed from the JVM: their input events in
// batches, one Python call per batch instead of one per event, and a sample of them when more
// arrive than the models can learn, so the counting path never waits for a model.
package recs.stream;

import java.util.ArrayList;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.io.network.api.writer.ResultPartitionWriter;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Input: EVENT_ROW (user_id, ts, body). Output: {@link #BATCH} rows (``batch`` mode) or the kept
 * EVENT_ROWs themselves (``batch == 1``: the ranker's label join is keyed by user).
 *
 * <p><b>Batches.</b> Kept events wait in memory and go out as one row (bodies joined by newlines:
 * canonical JSON holds none) when {@code maxBatch} wait, on every watermark (so none is overtaken
 * by it), every {@code maxDelayMs}, before every checkpoint barrier and at the end of input. So
 * nothing waits in this operator across a checkpoint: it keeps no state and exactly-once holds.
 *
 * <p><b>Sampling.</b> Each subtask may forward {@code budget / parallelism} events per second
 * ({@code budget <= 0}: every event). Once a second it measures the rate that arrived and sets the
 * share it keeps for the next second, {@code min(1, allowed / arrived)}; an event is kept when the
 * hash of its user falls below the share, so the models see whole histories of the sampled users
 * (and the label join sees a user's impressions with their clicks), and while the second has not
 * forwarded its budget yet (a cap for bursts, when the previous second's share is too high). The events dropped are
 * counted ({@code recs_stream_events_total{direction=in}} minus {@code out}; in batch mode also
 * in each batch's {@code skipped}, which the collaborative model publishes in its header). With a
 * budget the feed also leaves events out while the model's side has no room for them (the
 * Python operators behind on a batch, or waiting for the interpreter), so the counting path
 * never waits; without one ({@code budget <= 0}) it waits, and every event is learned. While the
 * models keep up nothing is dropped; once sampling, a restore from a checkpoint may draw a
 * different sample of the replayed events.
 */
public class ModelFeed extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput {
    /** stream/models.py MODEL_BATCH: newest event time, events, skipped since the last batch. */
    public static final TypeInformation<Row> BATCH = Types.ROW_NAMED(
        new String[] {"ts", "n", "skipped", "body"}, Types.LONG, Types.INT, Types.LONG,
        Types.STRING);
    static final long WINDOW_MS = 1_000;

    private final String name;
    private final double budget;
    private final int maxBatch;
    private final long maxDelayMs;
    private transient ArrayList<String> bodies;
    private transient long newest;
    private transient long skipped;
    private transient double allowed;      // events per second for this subtask (<= 0: all)
    private transient double share;
    private transient long windowStart;
    private transient long arrivedInWindow;
    private transient long keptInWindow;
    private final OperatorMetrics metrics;
    private transient ResultPartitionWriter[] writers;

    public ModelFeed(String name, double budget, int maxBatch, long maxDelayMs) {
        this.name = name;
        this.budget = budget;
        this.maxBatch = maxBatch;
        this.maxDelayMs = maxDelayMs;
        this.metrics = new OperatorMetrics(name);
    }

    @Override
    public void open() throws Exception {
        super.open();
        bodies = new ArrayList<>();
        newest = Long.MIN_VALUE;
        share = 1.0;
        int parallelism = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
        allowed = budget > 0 ? budget / parallelism : 0;
        windowStart = getProcessingTimeService().getCurrentProcessingTime();
        metrics.open(getMetricGroup());  // in: offered, out: forwarded
        getMetricGroup().addGroup("operator", name).gauge("recs_model_feed_share", () -> share);
        writers = getContainingTask().getEnvironment().getAllWriters();
        if (maxBatch > 1) {
            scheduleTick();
        }
    }

    private void scheduleTick() {
        long now = getProcessingTimeService().getCurrentProcessingTime();
        getProcessingTimeService().registerTimer(now + maxDelayMs, t -> {
            flush();
            scheduleTick();
        });
    }

    @Override
    public void processElement(StreamRecord<Row> record) {
        Row ev = record.getValue();
        metrics.arrived();
        if (!keep(ev.getFieldAs(0)) || allowed > 0 && backpressured()) {
            skipped++;
            return;
        }
        metrics.emitted(1);
        if (maxBatch <= 1) {
            output.collect(record);
            return;
        }
        bodies.add(ev.getFieldAs(2));
        newest = Math.max(newest, ev.<Long>getFieldAs(1));
        if (bodies.size() >= maxBatch) {
            flush();
        }
    }

    /** Whether this user's event goes to the model, under the share of the current second. */
    boolean keep(String user) {
        if (allowed <= 0) {
            return true;
        }
        long now = getProcessingTimeService().getCurrentProcessingTime();
        if (now - windowStart >= WINDOW_MS) {
            double rate = arrivedInWindow * 1000.0 / (now - windowStart);
            share = rate <= allowed ? 1.0 : allowed / rate;
            windowStart = now;
            arrivedInWindow = 0;
            keptInWindow = 0;
        }
        arrivedInWindow++;
        // the share follows the previous second; the cap holds this one to the budget when
        // the rate jumps (the first second of a backlog, a burst)
        if (keptInWindow >= allowed * WINDOW_MS / 1000.0 || share < 1.0 && unit(user) >= share) {
            return false;
        }
        keptInWindow++;
        return true;
    }

    /** Whether the model's side cannot take a record now (no free network buffer towards it).
     *  The feed runs in a task of its own (Stages.modelFeed disables chaining), so this is the
     *  Python side falling behind, whatever the budget says; with a budget the feed then leaves
     *  events out instead of waiting, so the counting path never waits for the models. */
    private boolean backpressured() {
        for (ResultPartitionWriter w : writers) {
            if (!w.isAvailable()) {
                return true;
            }
        }
        return false;
    }

    /** A user's place in [0, 1): String.hashCode (stable across JVMs) through a 32-bit mixer. */
    static double unit(String user) {
        int h = user.hashCode();
        h ^= h >>> 16;
        h *= 0x85ebca6b;
        h ^= h >>> 13;
        h *= 0xc2b2ae35;
        h ^= h >>> 16;
        return (h & 0xffffffffL) / 4294967296.0;
    }

    private void flush() {
        if (maxBatch <= 1 || bodies.isEmpty() && skipped == 0) {
            return;
        }
        Row batch = Row.of(newest, bodies.size(), skipped, String.join("\n", bodies));
        if (bodies.isEmpty()) {
            output.collect(new StreamRecord<>(batch));  // only a count of skipped events
        } else {
            output.collect(new StreamRecord<>(batch, newest));
        }
        bodies.clear();
        newest = Long.MIN_VALUE;
        skipped = 0;
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flush();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        if (allowed > 0 && backpressured()) {  // sampling: leave the batch out, never block
            skipped += bodies.size();
            bodies.clear();
        }
        flush();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void endInput() {
        flush();
    }
}
