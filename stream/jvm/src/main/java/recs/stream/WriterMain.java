// The JVM writer outside Flink, for the parity test and the writer benchmark
// (recs/bench_writer.py): wire records (one per line) from stdin, coalesced and applied in
// batches of --batch records exactly as RedisUpdateSink does per flush. Prints one JSON line:
// {"records":N,"applied":N,"malformed":N,"retries":N,"seconds":S} (seconds: decoding and writing
// only; retries: writes repeated through a Redis Cluster failover, 0 on one Redis).
package recs.stream;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

public final class WriterMain {
    private WriterMain() {}

    public static void main(String[] args) throws Exception {
        String url = null;
        long ttl = 30L * 86_400;
        int batchSize = 5_000;
        String writer = "stream";
        int repeat = 1;
        for (int i = 0; i < args.length; i += 2) {
            switch (args[i]) {
                case "--redis-url" -> url = args[i + 1];
                case "--session-ttl-s" -> ttl = Long.parseLong(args[i + 1]);
                case "--batch" -> batchSize = Integer.parseInt(args[i + 1]);
                case "--writer" -> writer = args[i + 1];
                case "--repeat" -> repeat = Integer.parseInt(args[i + 1]);
                default -> throw new IllegalArgumentException("WriterMain: unknown " + args[i]);
            }
        }
        if (url == null) {
            throw new IllegalArgumentException("WriterMain: --redis-url is required");
        }
        List<String> lines = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8), 1 << 20)) {
            for (String line = in.readLine(); line != null; line = in.readLine()) {
                if (!line.isEmpty()) {
                    lines.add(line);
                }
            }
        }
        long applied = 0;
        long malformed = 0;
        long retries = 0;
        double seconds = Double.MAX_VALUE;
        // --repeat > 1: the database is emptied before each pass and the best pass reported
        // (a warm JIT, as in a running job); the counts are the last pass's
        for (int pass = 0; pass < repeat; pass++) {
            applied = 0;
            malformed = 0;
            try (RedisApply redis = new RedisApply(url, ttl, writer)) {
                if (repeat > 1) {
                    redis.flushDatabase();
                }
                long start = System.nanoTime();
                UpdateBatch batch = new UpdateBatch();
                int inBatch = 0;
                for (String line : lines) {
                    try {
                        batch.add(line);
                    } catch (IllegalArgumentException e) {
                        malformed++;
                        if (pass == 0) {
                            System.err.println(e.getMessage());
                        }
                    }
                    if (++inBatch == batchSize) {
                        applied += redis.apply(batch.drain());
                        inBatch = 0;
                    }
                }
                applied += redis.apply(batch.drain());
                seconds = Math.min(seconds, (System.nanoTime() - start) / 1e9);
                retries += redis.retries();
            }
        }
        System.out.printf("{\"records\":%d,\"applied\":%d,\"malformed\":%d,\"retries\":%d,"
                + "\"seconds\":%.4f}%n", lines.size(), applied, malformed, retries, seconds);
    }
}
