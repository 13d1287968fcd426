// The event time of a raw interaction, read at the Kafka source, so that each partition keeps a
// watermark of its own (Flink's per-split watermarks) and the job's watermark is their minimum.
// Assigned after parse instead, one watermark follows the records in the order the source reader
// hands them over, partitions interleaved: on a backlog the reader runs ahead on some partitions
// and the others' events arrive minutes behind the watermark, where event-time state expiry
// (StateExpiry) may already have cleared what they need. Per partition, an event is late only by
// its own partition's disorder.
//
// The time is the document's top-level "ts" when it is an integer within the schema's range
// (Interactions.MIN_TS_MS .. MAX_TS_MS), the last one winning as in the parsers; anything else
// reads NONE, which moves no watermark: such a document is malformed and parse dead-letters it.
// For every document parse accepts, the time read here is the event's ts (held to it by
// tests/test_jvm_validation.py on generated documents, through ValidateMain). A scan, not a
// parse: the document is parsed once, by ParseInteractions.
package recs.stream;

import java.time.Duration;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;

public final class EventTimes {
    /** No event time (moves no watermark). */
    public static final long NONE = Long.MIN_VALUE;
    private static final int MAX_DIGITS = 18;  // below 2^63; the schema's range has 13

    private EventTimes() {}

    /** Bounded out-of-orderness per partition; a partition idle for ``idlenessMs`` does not
     *  hold the others back. */
    public static WatermarkStrategy<String> strategy(long outOfOrdernessMs, long idlenessMs) {
        return WatermarkStrategy
            .<String>forBoundedOutOfOrderness(Duration.ofMillis(outOfOrdernessMs))
            .withIdleness(Duration.ofMillis(idlenessMs))
            .withTimestampAssigner((raw, kafkaTs) -> of(raw));
    }

    /** The top-level "ts" of a raw JSON document, or NONE (see the note at the top). */
    public static long of(String raw) {
        long found = NONE;
        int n = raw.length();
        int depth = 0;
        int i = 0;
        while (i < n) {
            char c = raw.charAt(i);
            if (c == '"') {
                int end = stringEnd(raw, i + 1);
                if (end < 0) {
                    return NONE;  // unterminated: not JSON
                }
                if (depth == 1 && end - i == 4 && raw.charAt(i + 1) == 't'
                        && raw.charAt(i + 2) == 's') {
                    int j = spaces(raw, end);
                    // a key: a value is never followed by ':'
                    if (j < n && raw.charAt(j) == ':') {
                        found = integer(raw, spaces(raw, j + 1));
                    }
                }
                i = end;
            } else {
                if (c == '{' || c == '[') {
                    depth++;
                } else if (c == '}' || c == ']') {
                    depth--;
                }
                i++;
            }
        }
        return found;
    }

    /** The index after the string's closing quote (``from``: just after its opening one), or
     *  -1 when it has none. */
    private static int stringEnd(String raw, int from) {
        int n = raw.length();
        for (int i = from; i < n; i++) {
            char c = raw.charAt(i);
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                return i + 1;
            }
        }
        return -1;
    }

    private static int spaces(String raw, int i) {
        int n = raw.length();
        while (i < n) {
            char c = raw.charAt(i);
            if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
                break;
            }
            i++;
        }
        return i;
    }

    /** A JSON integer at ``i`` within the schema's range, or NONE (a fraction, an exponent, a
     *  string, a literal, too many digits, out of range). */
    private static long integer(String raw, int i) {
        int n = raw.length();
        boolean negative = i < n && raw.charAt(i) == '-';
        int start = negative ? i + 1 : i;
        long v = 0;
        int k = start;
        while (k < n && raw.charAt(k) >= '0' && raw.charAt(k) <= '9') {
            if (k - start == MAX_DIGITS) {
                return NONE;
            }
            v = v * 10 + (raw.charAt(k) - '0');
            k++;
        }
        if (k == start || (k < n && (raw.charAt(k) == '.' || raw.charAt(k) == 'e'
                                      || raw.charAt(k) == 'E'))) {
            return NONE;
        }
        v = negative ? -v : v;
        return v < Interactions.MIN_TS_MS || v > Interactions.MAX_TS_MS ? NONE : v;
    }
}
