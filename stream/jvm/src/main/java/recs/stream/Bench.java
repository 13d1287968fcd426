// The pieces of `make bench-stages` (recs/bench_stages.py) that must be Java: a generator of
// synthetic storefront events as raw JSON (the job's Kafka input), a probe recording when the
// first event left the source (a file per source subtask: the job's classes are not the ones
// Python sees), and a discarding sink. Not a stage; no Python twin.
package recs.stream;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.SourceReaderContext;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.connector.datagen.source.GeneratorFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

public final class Bench {
    static final long T0 = 1_700_000_000_000L;

    private Bench() {}

    /** ``n`` storefront events as raw JSON: ``users`` shoppers with sessions of about
     *  ``sessionLength`` events, Zipf-popular items (s = 1.1) out of ``items``, the funnel mix
     *  of tests/streamkit.py (70 % views, 12 clicks, 8 carts, 4 purchases, 6 impressions of
     *  8 items), a device and country per event, 2 ms of event time apart. Each source subtask
     *  writes the wall-clock ms and the process's CPU ns at its first event to ``probe`` + "."
     *  + its index. */
    public static DataStream<String> source(StreamExecutionEnvironment env, long n, int users,
                                            int items, int sessionLength, String probe,
                                            String name) {
        DataGeneratorSource<String> source = new DataGeneratorSource<>(
            new Events(users, items, sessionLength, probe), n, Types.STRING);
        return env.fromSource(source, WatermarkStrategy.noWatermarks(), name).uid(name);
    }

    public static void discard(DataStream<?> stream, String name) {
        stream.sinkTo(new DiscardingSink<>()).name(name).uid(name);
    }

    static final class Events implements GeneratorFunction<Long, String> {
        private final int users;
        private final int items;
        private final int sessionLength;
        private final String probe;
        private transient double[] cumulative;
        private transient Path probeFile;

        Events(int users, int items, int sessionLength, String probe) {
            this.users = users;
            this.items = items;
            this.sessionLength = sessionLength;
            this.probe = probe;
        }

        @Override
        public void open(SourceReaderContext context) {
            probeFile = probe.isEmpty() ? null : Path.of(probe + "." + context.getIndexOfSubtask());
            cumulative = new double[items];
            double sum = 0;
            for (int r = 0; r < items; r++) {
                sum += 1.0 / Math.pow(r + 1, 1.1);
                cumulative[r] = sum;
            }
            for (int r = 0; r < items; r++) {
                cumulative[r] /= sum;
            }
        }

        private int item(SplittableRandom rnd) {
            int at = java.util.Arrays.binarySearch(cumulative, rnd.nextDouble());
            return Math.min(items - 1, at >= 0 ? at : -at - 1);
        }

        @Override
        public String map(Long index) {
            long i = index;
            SplittableRandom rnd = new SplittableRandom(i * 0x9E3779B97F4A7C15L);
            if (probeFile != null) {
                try {
                    long cpuNs = ((com.sun.management.OperatingSystemMXBean)
                        java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                        .getProcessCpuTime();
                    Files.writeString(probeFile, System.currentTimeMillis() + " " + cpuNs,
                        StandardCharsets.UTF_8);
                } catch (IOException exc) {
                    throw new UncheckedIOException(exc);
                }
                probeFile = null;
            }
            int user = rnd.nextInt(users);
            // a user's n-th event falls in session n / sessionLength (events per user grow with i)
            long session = i / ((long) users * sessionLength);
            long ts = T0 + 2 * i;
            int roll = rnd.nextInt(100);
            String device = rnd.nextBoolean() ? "web" : (rnd.nextBoolean() ? "ios" : "android");
            String country = new String[] {"de", "us", "fr", "gb"}[rnd.nextInt(4)];
            StringBuilder b = new StringBuilder(256);
            b.append("{\"event_id\":\"g").append(i).append("\",\"type\":\"");
            if (roll < 94) {
                String type = roll < 70 ? "view" : roll < 82 ? "click"
                    : roll < 90 ? "add_to_cart" : "purchase";
                b.append(type).append("\",\"item_id\":\"i").append(item(rnd)).append('"');
            } else {
                b.append("impression\",\"item_ids\":[");
                for (int k = 0; k < 8; k++) {
                    b.append(k == 0 ? "" : ",").append("\"i").append(item(rnd)).append('"');
                }
                b.append(']');
            }
            b.append(",\"user_id\":\"u").append(user).append("\",\"session_id\":\"u")
                .append(user).append("-s").append(session).append("\",\"ts\":").append(ts)
                .append(",\"context\":{\"device\":\"").append(device)
                .append("\",\"country\":\"").append(country).append("\"}}");
            return b.toString();
        }
    }
}
