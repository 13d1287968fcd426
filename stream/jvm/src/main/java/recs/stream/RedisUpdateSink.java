// Twin of stream/loader.py (with state/redis_store.py): the updates the stages publish, written
// to Redis from inside the job instead of through the recs.updates topic and a Python loader.
// Each subtask coalesces what it receives (newest version per key) and writes it with the
// loader's conditional script (RedisApply) every flushIntervalMs, when maxPending keys wait,
// before every checkpoint barrier (SinkWriter.flush) and at end of input. Writes are versioned
// and idempotent, so the records a restore replays after a crash rewrite nothing newer: the
// same exactly-once effect as the loader committing its offsets after each batch.
package recs.stream;

import java.io.IOException;
import java.io.Serializable;
import java.util.List;

import org.apache.flink.api.common.operators.ProcessingTimeService;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

public final class RedisUpdateSink implements Sink<String> {
    private static final long serialVersionUID = 1L;

    /** Where and how the sink writes. */
    public record Config(String redisUrl, long sessionTtlS, long flushIntervalMs, int maxPending,
                         String writer) implements Serializable {
        public Config {
            if (flushIntervalMs <= 0 || maxPending <= 0) {
                throw new IllegalArgumentException("RedisUpdateSink: flushIntervalMs ("
                        + flushIntervalMs + ") and maxPending (" + maxPending + ") must be > 0");
            }
        }
    }

    private final Config config;

    public RedisUpdateSink(Config config) {
        this.config = config;
    }

    /** For PyFlink: the sink from plain arguments. */
    public static RedisUpdateSink of(String redisUrl, long sessionTtlS, long flushIntervalMs,
                                     int maxPending, String writer) {
        return new RedisUpdateSink(new Config(redisUrl, sessionTtlS, flushIntervalMs, maxPending,
                writer));
    }

    @Override
    public SinkWriter<String> createWriter(WriterInitContext context) throws IOException {
        return new Writer(config, context.getProcessingTimeService(), context.metricGroup());
    }

    static final class Writer implements SinkWriter<String> {
        private static final Logger LOG = LoggerFactory.getLogger(RedisUpdateSink.class);
        private final Config config;
        private final ProcessingTimeService timers;
        private final UpdateBatch batch = new UpdateBatch();
        private final RedisApply redis;
        private final Counter records;
        private final Counter applied;
        private final Counter malformed;
        private final Counter flushes;
        private volatile long lastAsOfLagMs;

        Writer(Config config, ProcessingTimeService timers, MetricGroup metrics) {
            this.config = config;
            this.timers = timers;
            this.redis = new RedisApply(config.redisUrl(), config.sessionTtlS(),
                    config.writer());
            MetricGroup g = metrics.addGroup("recs_writer");
            this.records = g.counter("records");
            this.applied = g.counter("applied");
            this.malformed = g.counter("malformed");
            this.flushes = g.counter("flushes");
            g.gauge("freshness_ms", () -> lastAsOfLagMs);
            schedule();
        }

        private void schedule() {
            long at = timers.getCurrentProcessingTime() + config.flushIntervalMs();
            timers.registerTimer(at, now -> {
                write();
                schedule();
            });
        }

        @Override
        public void write(String wire, Context context) {
            records.inc();
            try {
                batch.add(wire);
            } catch (IllegalArgumentException e) {
                malformed.inc();
                LOG.error("{}", e.getMessage());
                return;
            }
            if (batch.size() >= config.maxPending()) {
                write();
            }
        }

        @Override
        public void flush(boolean endOfInput) {
            write();
        }

        private void write() {
            if (batch.size() == 0) {
                return;
            }
            List<UpdateBatch.Pending> out = batch.drain();
            long newest = 0;
            for (UpdateBatch.Pending p : out) {
                newest = Math.max(newest, p.asOf());
            }
            applied.inc(redis.apply(out));
            flushes.inc();
            lastAsOfLagMs = System.currentTimeMillis() - newest;
        }

        @Override
        public void close() {
            redis.close();
        }
    }
}
