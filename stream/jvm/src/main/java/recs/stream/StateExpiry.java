// Event-time expiry of a keyed stage's state: one timer per key, moved when the state's
// relevant time moves, and the counters of keys created and cleared (DedupFunction,
// SessionFunction). Each stage argues in its own comment why clearing at that time leaves its
// outputs those of its spec.
package recs.stream;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;
import org.apache.flink.streaming.api.TimerService;

final class StateExpiry {
    /** No timer (a key without state). */
    static final long NONE = Long.MIN_VALUE;

    private StateExpiry() {}

    /** ``last + ttl + grace + 1``, kept below NeighbourFunction.END_OF_TIME (whose timers mean
     *  "the end of a bounded input"), so a huge TTL never collides with it or overflows. */
    static long at(long last, long ttlMs, long graceMs) {
        long room = NeighbourFunction.END_OF_TIME - 1 - last;
        long wait = ttlMs + graceMs + 1;
        return wait < 0 || wait >= room ? NeighbourFunction.END_OF_TIME - 1 : last + wait;
    }

    /** Replaces the key's timer at ``was`` (NONE: it had none) by one at ``next``. */
    static void reschedule(TimerService timers, long was, long next) {
        if (was == next) {
            return;
        }
        if (was != NONE) {
            timers.deleteEventTimeTimer(was);
        }
        timers.registerEventTimeTimer(next);
    }

    /** The watermark of a finished bounded input: every timer fires, no event follows. The
     *  stages then keep their state (nothing could read it differently) and count nothing. */
    static boolean endOfInput(TimerService timers) {
        return timers.currentWatermark() == Long.MAX_VALUE;
    }

    /** recs_stream_state_keys_created_total{operator}: keys given a state (again, after expiry). */
    static Counter created(MetricGroup root, String operator) {
        return root.addGroup("operator", operator).counter("recs_stream_state_keys_created_total");
    }

    /** recs_stream_state_keys_expired_total{operator}: keys whose state expiry cleared. */
    static Counter expired(MetricGroup root, String operator) {
        return root.addGroup("operator", operator).counter("recs_stream_state_keys_expired_total");
    }
}
