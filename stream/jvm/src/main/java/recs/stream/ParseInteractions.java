// Twin of ParseInteractions in stream/functions.py (validation: schemas/events.py, the dead
// letter: stream/dlq.py). Valid events go on as EVENT rows; malformed ones to the DLQ side
// output with the field, the value and the reason; nothing fails the job.
package recs.stream;

import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/** Raw interaction JSON -> {@link Rows#EVENT} rows; malformed -> {@link #DLQ}. */
public class ParseInteractions extends ProcessFunction<String, Row> {
    public static final OutputTag<String> DLQ =
        new OutputTag<>("dlq", org.apache.flink.api.common.typeinfo.Types.STRING);
    private final OperatorMetrics metrics = new OperatorMetrics("parse");

    @Override
    public void open(OpenContext context) {
        metrics.open(getRuntimeContext().getMetricGroup());
    }

    @Override
    public void processElement(String raw, Context ctx, Collector<Row> out) {
        metrics.arrived();
        metrics.emitted(1);  // exactly one record out: the event or its dead letter
        Interactions.Event event;
        try {
            event = Interactions.decode(raw);
        } catch (Interactions.SchemaError exc) {
            ctx.output(DLQ, deadLetter(raw, exc, "parse"));
            return;
        }
        out.collect(Rows.event(event));
    }

    /** stream/dlq.py's dead_letter: scalars as they are, anything else as its repr. */
    public static String deadLetter(String raw, Interactions.SchemaError exc, String stage) {
        ObjectNode doc = Interactions.NODES.objectNode();
        doc.put("reason", exc.getMessage());
        doc.put("contract", exc.contract);
        doc.put("field", exc.field);
        Object value = exc.value;
        if (value == null) {
            doc.putNull("value");
        } else if (value instanceof JsonNode node) {
            if (node.isValueNode()) {
                doc.set("value", node);
            } else {
                String repr = PyRepr.of(node);
                doc.put("value", repr.length() <= 200 ? repr : repr.substring(0, 200));
            }
        } else if (value instanceof Long n) {
            doc.put("value", n);
        } else if (value instanceof Double d) {
            doc.put("value", d);
        } else {
            doc.put("value", value.toString());
        }
        doc.put("stage", stage);
        doc.put("raw", raw);
        return doc.toString();
    }
}
