// Twin of state/records.py Update.to_wire (and the prefix of state/keys.py): one line on the
// recs.updates topic, {"k": key, "v": version, "t": as_of, "d": data}.
package recs.stream;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

final class Updates {
    static final String PREFIX = "recs:v1:";

    private Updates() {}

    static String wire(String key, long version, long asOf, JsonNode data) {
        ObjectNode u = Interactions.NODES.objectNode();
        u.put("k", key);
        u.put("v", version);
        u.put("t", asOf);
        u.set("d", data);
        return u.toString();
    }
}
