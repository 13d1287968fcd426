// The JVM validation (Interactions.java, twin of schemas/events.py) as a line-oriented process,
// so tests/test_jvm_validation.py can hold both to the same decisions on generated documents:
//
//   java -cp recs-stream-jvm.jar:flink-dist.jar recs.stream.ValidateMain
//
// Each input line is one document encoded as a JSON string; each output line is
// {"ok": true, "event": <canonical document>} or {"ok": false, "field": ..., "reason": ...}, each
// with "source_ts": the event time the Kafka source reads (EventTimes.of; null: none).
package recs.stream;

import java.io.BufferedReader;
import java.io.BufferedWriter;
import java.io.InputStreamReader;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

public final class ValidateMain {
    private ValidateMain() {}

    public static void main(String[] args) throws Exception {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        BufferedWriter out = new BufferedWriter(new OutputStreamWriter(System.out, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String raw = Interactions.JSON.readTree(line).textValue();
            ObjectNode result = Interactions.NODES.objectNode();
            long sourceTs = EventTimes.of(raw);
            if (sourceTs == EventTimes.NONE) {
                result.putNull("source_ts");
            } else {
                result.put("source_ts", sourceTs);
            }
            try {
                Interactions.Event event = Interactions.decode(raw);
                result.put("ok", true);
                result.set("event", event.canonical);
            } catch (Interactions.SchemaError exc) {
                result.put("ok", false);
                result.put("field", exc.field);
                result.put("reason", exc.getMessage());
                result.set("letter", Interactions.JSON.readTree(
                    ParseInteractions.deadLetter(raw, exc, "parse")));
            }
            out.write(result.toString());
            out.write('\n');
            out.flush();
        }
    }
}
