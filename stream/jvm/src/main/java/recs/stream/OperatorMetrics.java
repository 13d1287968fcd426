// Twin of OperatorMetrics in stream/functions.py: the same metric names and groups, so
// dashboards, alerts and `recs monitor` read a JVM stage exactly as its Python twin.
package recs.stream;

import java.io.Serializable;

import org.apache.flink.metrics.Counter;
import org.apache.flink.metrics.MetricGroup;

/** recs_stream_events_total{operator, direction} and recs_stream_late_events_total{operator}. */
final class OperatorMetrics implements Serializable {
    private final String operator;
    private transient Counter in;
    private transient Counter out;
    private transient Counter late;

    OperatorMetrics(String operator) {
        this.operator = operator;
    }

    void open(MetricGroup root) {
        MetricGroup group = root.addGroup("operator", operator);
        in = group.addGroup("direction", "in").counter("recs_stream_events_total");
        out = group.addGroup("direction", "out").counter("recs_stream_events_total");
        late = group.counter("recs_stream_late_events_total");
    }

    /** One record in at event time ``ts`` under ``watermark`` (Long.MIN_VALUE: none yet). */
    void arrived(long ts, long watermark) {
        in.inc();
        if (ts < watermark) {
            late.inc();
        }
    }

    void arrived() {
        in.inc();
    }

    void emitted(int n) {
        out.inc(n);
    }
}
