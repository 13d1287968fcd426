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

    /** A key's timer moves in steps of this share of its wait (ttl + grace): a busy key
     *  keeps one timer for a while instead of a delete and a register per event, and the state
     *  outlives its bound by less than 1/64 of it (11.6 h on the 31 days of a session). */
    static final long STEPS = 64;

    /** ``last + ttl + grace + 1`` rounded up to the next multiple of ``(ttl + grace) / STEPS``
     *  (a later clearing is as safe as the bound: see the classes' opening comments), kept
     *  below NeighbourFunction.END_OF_TIME (whose timers mean "the end of a bounded input"),
     *  so a huge TTL never collides with it or overflows. */
    static long at(long last, long ttlMs, long graceMs) {
        long room = NeighbourFunction.END_OF_TIME - 1 - last;
        long wait = ttlMs + graceMs + 1;
        if (wait < 0 || wait >= room) {
            return NeighbourFunction.END_OF_TIME - 1;
        }
        long step = Math.max(1, (wait - 1) / STEPS);
        long due = last + wait;  // both terms below 2^62: the rounding cannot overflow
        long rounded = Math.floorDiv(due + step - 1, step) * step;
        return Math.min(rounded, NeighbourFunction.END_OF_TIME - 1);
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
