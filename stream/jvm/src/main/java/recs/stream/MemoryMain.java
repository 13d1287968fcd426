// The JVM job's keyed state per user, for `make bench-memory` (recs/bench_memory.py): the same
// synthetic users as the Python measurement (a 5-event session each: 4 views or cart adds, then
// an impression of 4 items, Zipf-popular items), through the Java twins' steps (DedupFunction,
// SessionFunction), every state kept alive. Prints one JSON line:
//
//   java -Xmx8g -cp recs-stream-jvm.jar:flink-dist.jar recs.stream.MemoryMain USERS ITEMS
//
// heap_bytes_per_user: growth of the used heap (after full GCs) over the users, i.e. what the
// heap state backend holds per user (its per-entry overhead, the key strings, not included);
// checkpoint_bytes_per_user: the states as Flink's POJO serializer writes them into a checkpoint.
package recs.stream;

import java.util.ArrayList;
import java.util.SplittableRandom;

import org.apache.flink.api.common.serialization.SerializerConfigImpl;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.core.memory.DataOutputSerializer;

public final class MemoryMain {
    static final long T0 = 1_700_000_000_000L;

    private MemoryMain() {}

    public static void main(String[] args) throws Exception {
        int users = Integer.parseInt(args[0]);
        int items = Integer.parseInt(args[1]);
        double[] cumulative = new double[items];
        double sum = 0;
        for (int r = 0; r < items; r++) {
            sum += 1.0 / Math.pow(r + 1, 1.1);
            cumulative[r] = sum;
        }
        SessionFunction.Config cfg = new SessionFunction.Config();
        cfg.learnTypes = new String[] {"add_to_cart", "click", "purchase", "rating", "view"};
        SessionFunction sessions = new SessionFunction(cfg);
        long before = usedAfterGc();
        ArrayList<SessionFunction.State> sessionStates = new ArrayList<>(users);
        ArrayList<DedupFunction.State> dedupStates = new ArrayList<>(users);
        ArrayList<Object[]> pairs = new ArrayList<>();
        for (int u = 0; u < users; u++) {
            SplittableRandom rnd = new SplittableRandom(u * 0x9E3779B97F4A7C15L);
            String sessionId = "u" + u + "-s0";
            SessionFunction.State s = null;
            DedupFunction.State d = null;
            for (int e = 0; e < 5; e++) {
                long ts = T0 + 1_000L * e;
                d = DedupFunction.step(d, "e" + u + "-" + e, ts, 600_000L, 200);
                pairs.clear();
                if (e < 4) {
                    String type = rnd.nextInt(4) == 0 ? "add_to_cart" : "view";
                    s = sessions.step(s, type, item(rnd, cumulative, sum), null, sessionId, ts,
                                      pairs);
                } else {
                    String[] shown = new String[4];
                    for (int k = 0; k < 4; k++) {
                        shown[k] = item(rnd, cumulative, sum);
                    }
                    s = sessions.step(s, "impression", null, shown, sessionId, ts, pairs);
                }
            }
            sessionStates.add(s);
            dedupStates.add(d);
        }
        long heap = usedAfterGc() - before;
        TypeSerializer<SessionFunction.State> sessionSer = TypeInformation
            .of(SessionFunction.State.class).createSerializer(new SerializerConfigImpl());
        TypeSerializer<DedupFunction.State> dedupSer = TypeInformation
            .of(DedupFunction.State.class).createSerializer(new SerializerConfigImpl());
        DataOutputSerializer out = new DataOutputSerializer(4096);
        long sessionBytes = 0;
        long dedupBytes = 0;
        for (int u = 0; u < users; u++) {
            out.clear();
            sessionSer.serialize(sessionStates.get(u), out);
            sessionBytes += out.length();
            out.clear();
            dedupSer.serialize(dedupStates.get(u), out);
            dedupBytes += out.length();
        }
        System.out.println("{\"users\":" + users
            + ",\"heap_bytes_per_user\":" + Math.round((double) heap / users)
            + ",\"checkpoint_bytes_per_user\":" + Math.round((double) (sessionBytes + dedupBytes) / users)
            + ",\"session_checkpoint_bytes_per_user\":" + Math.round((double) sessionBytes / users)
            + ",\"dedup_checkpoint_bytes_per_user\":" + Math.round((double) dedupBytes / users)
            + ",\"kept\":" + (sessionStates.size() + dedupStates.size()) + "}");
    }

    private static String item(SplittableRandom rnd, double[] cumulative, double sum) {
        int at = java.util.Arrays.binarySearch(cumulative, rnd.nextDouble() * sum);
        return "i" + Math.min(cumulative.length - 1, at >= 0 ? at : -at - 1);
    }

    private static long usedAfterGc() throws InterruptedException {
        Runtime rt = Runtime.getRuntime();
        for (int i = 0; i < 4; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return rt.totalMemory() - rt.freeMemory();
    }
}
