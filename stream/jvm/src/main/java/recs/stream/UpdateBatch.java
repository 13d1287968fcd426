// Twin of state/store.py newest_per_key and of stream/loader.py's decoding: the updates of one
// flush, newest version per key (ties keep the later one), each already encoded as the stored
// envelope (state/records.py encode_envelope).
package recs.stream;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonParser;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonToken;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

final class UpdateBatch {
    /** One coalesced write: the key, its version and event time, and the envelope to store. */
    record Pending(String key, long version, long asOf, String envelope) {}

    private static final JsonFactory JSON = new JsonFactory();
    private static final ObjectMapper MAPPER = new ObjectMapper();

    private final Map<String, Pending> newest = new LinkedHashMap<>();
    private long records;

    /** Add one wire record ({"k","v","t","d"}); throws IllegalArgumentException naming the
     *  field when it is not a valid update (the caller counts and logs it, as the loader does). */
    void add(String wire) {
        Pending p = decode(wire);
        records++;
        Pending cur = newest.get(p.key());
        if (cur == null || p.version() >= cur.version()) {
            newest.put(p.key(), p);
        }
    }

    int size() {
        return newest.size();
    }

    long records() {
        return records;
    }

    /** The coalesced writes, in first-seen key order; the batch is empty afterwards. */
    List<Pending> drain() {
        List<Pending> out = new ArrayList<>(newest.values());
        newest.clear();
        records = 0;
        return out;
    }

    /**
     * The wire record as a pending write. Records made by Update.to_wire (orjson) and by
     * Updates.wire (Jackson) put their fields in the order k, v, t, d with no spaces, so the
     * envelope is the record with its key field cut out, byte for byte what encode_envelope
     * writes; any other record is parsed whole and the envelope written anew.
     */
    static Pending decode(String wire) {
        try (JsonParser p = JSON.createParser(wire)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw bad("update", "not a JSON object", wire);
            }
            if (p.nextToken() == JsonToken.FIELD_NAME && "k".equals(p.currentName())
                    && p.nextToken() == JsonToken.VALUE_STRING) {
                String key = p.getText();
                if (p.nextToken() == JsonToken.FIELD_NAME && "v".equals(p.currentName())) {
                    int vAt = (int) p.currentTokenLocation().getCharOffset();
                    if (p.nextToken() == JsonToken.VALUE_NUMBER_INT) {
                        long version = p.getLongValue();
                        if (p.nextToken() == JsonToken.FIELD_NAME && "t".equals(p.currentName())
                                && p.nextToken() == JsonToken.VALUE_NUMBER_INT) {
                            long asOf = p.getLongValue();
                            if (p.nextToken() == JsonToken.FIELD_NAME
                                    && "d".equals(p.currentName())) {
                                p.nextToken();
                                p.skipChildren();
                                if (p.nextToken() == JsonToken.END_OBJECT && p.nextToken() == null
                                        && wire.charAt(vAt - 1) == ',') {
                                    return new Pending(key, version, asOf,
                                            "{" + wire.substring(vAt));
                                }
                            }
                        }
                    }
                }
            }
        } catch (java.io.IOException e) {
            throw bad("update", "not valid JSON", wire);
        }
        return decodeWhole(wire);
    }

    private static Pending decodeWhole(String wire) {
        JsonNode doc;
        try {
            doc = MAPPER.readTree(wire);
        } catch (java.io.IOException e) {
            throw bad("update", "not valid JSON", wire);
        }
        if (doc == null || !doc.isObject()) {
            throw bad("update", "not a JSON object", wire);
        }
        JsonNode k = doc.get("k");
        JsonNode v = doc.get("v");
        JsonNode t = doc.get("t");
        if (k == null || !k.isTextual()) {
            throw bad("k", "must be a string, got " + k, wire);
        }
        if (v == null || !v.canConvertToLong() || !v.isIntegralNumber()) {
            throw bad("v", "must be an integer, got " + v, wire);
        }
        if (t == null || !t.canConvertToLong() || !t.isIntegralNumber()) {
            throw bad("t", "must be an integer, got " + t, wire);
        }
        if (!doc.has("d")) {
            throw bad("d", "is missing", wire);
        }
        ObjectNode env = MAPPER.createObjectNode();
        env.put("v", v.asLong());
        env.put("t", t.asLong());
        env.set("d", doc.get("d"));
        return new Pending(k.asText(), v.asLong(), t.asLong(), env.toString());
    }

    private static IllegalArgumentException bad(String field, String why, String wire) {
        String head = wire.length() > 80 ? wire.substring(0, 80) + "..." : wire;
        return new IllegalArgumentException(
                "RedisUpdateSink: malformed update: field '" + field + "' " + why + " in " + head);
    }
}
