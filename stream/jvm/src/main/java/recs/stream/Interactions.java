// Twin of schemas/events.py (decode_interaction, Interaction.to_dict): the Python module is the
// specification. Same accept/reject decisions, same field named in the reason, checked in the
// same order; tests/test_jvm_validation.py proves it on generated documents.
package recs.stream;

import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.DeserializationFeature;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.json.JsonMapper;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.JsonNodeFactory;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

/** Validates one interaction document and gives its canonical JSON. */
public final class Interactions {
    public static final int SCHEMA_VERSION = 1;
    public static final int MAX_EVENT_BYTES = 16 * 1024;
    public static final long MIN_TS_MS = 631_152_000_000L;
    public static final long MAX_TS_MS = 4_102_444_800_000L;
    public static final int MAX_ID_LEN = 128;
    public static final int MAX_IMPRESSION_ITEMS = 200;
    public static final int MAX_CONTEXT_KEYS = 32;
    static final String CONTRACT = "interaction";
    static final List<String> EVENT_TYPES =
        List.of("add_to_cart", "click", "impression", "purchase", "rating", "view");  // sorted
    static final Set<String> FIELDS = Set.of("schema_version", "event_id", "type", "user_id",
        "session_id", "item_id", "item_ids", "ts", "value", "context", "rec_id", "variant");
    static final Set<String> CONTEXT_STRINGS = Set.of("device", "country", "page", "referrer");

    static final ObjectMapper JSON = JsonMapper.builder()
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
        .build();
    static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    private Interactions() {}

    /** Python's SchemaError: contract, field, the value received (a JsonNode, Number or String). */
    public static final class SchemaError extends Exception implements Serializable {
        public final String contract;
        public final String field;
        public final transient Object value;

        SchemaError(String field, String message, Object value) {
            super(CONTRACT + "." + field + ": " + message + ", got " + PyRepr.of(value));
            this.contract = CONTRACT;
            this.field = field;
            this.value = value;
        }
    }

    /** A valid event: the fields the stages read, and the canonical document. */
    public static final class Event {
        public final String eventId;
        public final String type;
        public final String userId;
        public final String sessionId;
        public final long ts;
        public final String itemId;          // null for an impression without one
        public final List<String> itemIds;   // empty unless given
        public final Double value;
        public final boolean hasRecId;
        public final ObjectNode canonical;

        Event(String eventId, String type, String userId, String sessionId, long ts,
              String itemId, List<String> itemIds, Double value, boolean hasRecId,
              ObjectNode canonical) {
            this.eventId = eventId;
            this.type = type;
            this.userId = userId;
            this.sessionId = sessionId;
            this.ts = ts;
            this.itemId = itemId;
            this.itemIds = itemIds;
            this.value = value;
            this.hasRecId = hasRecId;
            this.canonical = canonical;
        }

        public String toJson() {
            return canonical.toString();
        }

        /** operators/trending.py context_field: context[name] if it is a string, else null. */
        public String context(String name) {
            JsonNode ctx = canonical.get("context");
            JsonNode v = ctx == null ? null : ctx.get(name);
            return v != null && v.isTextual() ? v.textValue() : null;
        }
    }

    /** decode_interaction: the size, the JSON, then the fields in the Python order. */
    public static Event decode(String raw) throws SchemaError {
        int size = utf8Length(raw);
        if (size > MAX_EVENT_BYTES) {
            throw new SchemaError("<document>", "payload of " + size + " bytes exceeds "
                + MAX_EVENT_BYTES + " bytes", (long) size);
        }
        JsonNode doc;
        try {
            doc = JSON.readTree(raw);
            if (doc == null || doc.isMissingNode()) {
                throw new SchemaError("<document>", "not valid JSON (empty document)",
                    preview(raw));
            }
        } catch (JsonProcessingException exc) {
            throw new SchemaError("<document>", "not valid JSON (" + exc.getOriginalMessage()
                + ")", preview(raw));
        }
        String bad = strictJsonProblem(doc);
        if (bad != null) {
            throw new SchemaError("<document>", "not valid JSON (" + bad + ")", preview(raw));
        }
        if (!doc.isObject()) {
            throw new SchemaError("<document>", "expected a JSON object, got "
                + PyRepr.typeName(doc), doc);
        }
        return fromObject((ObjectNode) doc);
    }

    static Event fromObject(ObjectNode doc) throws SchemaError {
        checkFields(doc);
        String eventId = required(doc, "event_id");
        JsonNode typeNode = doc.get("type");
        String type = typeNode != null && typeNode.isTextual() ? typeNode.textValue() : null;
        if (type == null || !EVENT_TYPES.contains(type)) {
            throw new SchemaError("type", "expected one of " + PyRepr.of(EVENT_TYPES),
                typeNode);
        }
        String userId = required(doc, "user_id");
        String sessionId = required(doc, "session_id");
        long ts = timestamp(doc);
        boolean impression = type.equals("impression");
        String itemId = string(doc, "item_id", !impression, MAX_ID_LEN);
        List<String> itemIds = List.of();
        JsonNode rawIds = doc.get("item_ids");
        boolean idsGiven = rawIds != null && !rawIds.isNull();
        if (impression || idsGiven) {
            if (!idsGiven || !rawIds.isArray() || rawIds.size() == 0) {
                throw new SchemaError("item_ids", "expected a non-empty array of item ids",
                    rawIds);
            }
            if (rawIds.size() > MAX_IMPRESSION_ITEMS) {
                throw new SchemaError("item_ids", "more than " + MAX_IMPRESSION_ITEMS
                    + " items", (long) rawIds.size());
            }
            List<String> ids = new ArrayList<>(rawIds.size());
            for (int i = 0; i < rawIds.size(); i++) {
                JsonNode iid = rawIds.get(i);
                if (!iid.isTextual() || iid.textValue().isEmpty()
                        || codePoints(iid.textValue()) > MAX_ID_LEN) {
                    throw new SchemaError("item_ids[" + i + "]", "expected a non-empty string",
                        iid);
                }
                ids.add(iid.textValue());
            }
            itemIds = ids;
        }
        Double value = number(doc, "value");
        if (type.equals("rating")) {
            if (value == null) {
                throw new SchemaError("value", "is required for a rating", null);
            }
            if (!(value >= 0 && value <= 10)) {
                throw new SchemaError("value", "rating must be within [0, 10]", value);
            }
        }
        JsonNode context = doc.has("context") ? doc.get("context") : null;
        if (context != null) {
            if (!context.isObject()) {
                throw new SchemaError("context", "expected an object", context);
            }
            if (context.size() > MAX_CONTEXT_KEYS) {
                throw new SchemaError("context", "more than " + MAX_CONTEXT_KEYS + " keys",
                    (long) context.size());
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = context.fields(); it.hasNext();) {
                Map.Entry<String, JsonNode> e = it.next();
                JsonNode val = e.getValue();
                if (val.isNull()) {
                    continue;
                }
                if (CONTEXT_STRINGS.contains(e.getKey()) && !val.isTextual()) {
                    throw new SchemaError("context." + e.getKey(), "expected a string", val);
                }
                if (!(val.isTextual() || val.isNumber() || val.isBoolean())) {
                    throw new SchemaError("context." + e.getKey(), "expected a scalar", val);
                }
            }
        }
        String recId = string(doc, "rec_id", false, MAX_ID_LEN);
        String variant = string(doc, "variant", false, 64);

        // Interaction.to_dict(): only the fields that are set, in this order
        ObjectNode out = NODES.objectNode();
        out.put("schema_version", SCHEMA_VERSION);
        out.put("event_id", eventId);
        out.put("type", type);
        out.put("user_id", userId);
        out.put("session_id", sessionId);
        out.put("ts", ts);
        if (itemId != null) {
            out.put("item_id", itemId);
        }
        if (!itemIds.isEmpty()) {
            ArrayNode arr = out.putArray("item_ids");
            itemIds.forEach(arr::add);
        }
        if (value != null) {
            out.put("value", value.doubleValue());
        }
        if (context != null && context.size() > 0) {
            out.set("context", context);
        }
        if (recId != null) {
            out.put("rec_id", recId);
        }
        if (variant != null) {
            out.put("variant", variant);
        }
        return new Event(eventId, type, userId, sessionId, ts, itemId, itemIds, value,
            recId != null, out);
    }

    private static void checkFields(ObjectNode doc) throws SchemaError {
        TreeSet<String> unknown = null;
        for (Iterator<String> it = doc.fieldNames(); it.hasNext();) {
            String name = it.next();
            if (!FIELDS.contains(name)) {
                if (unknown == null) {
                    unknown = new TreeSet<>(Interactions::compareCodePoints);
                }
                unknown.add(name);
            }
        }
        if (unknown != null) {
            String first = unknown.first();
            throw new SchemaError(first, "unknown field", doc.get(first));
        }
        JsonNode version = doc.get("schema_version");
        // Python compares with ==, so 1, 1.0 and true all equal the version 1
        if (version != null && !(version.isNumber() && version.doubleValue() == SCHEMA_VERSION
                                 && !version.isBigInteger() || version.isBoolean()
                                 && version.booleanValue())) {
            throw new SchemaError("schema_version", "expected " + SCHEMA_VERSION, version);
        }
    }

    private static String required(ObjectNode doc, String name) throws SchemaError {
        return string(doc, name, true, MAX_ID_LEN);
    }

    private static String string(ObjectNode doc, String name, boolean required, int maxLen)
            throws SchemaError {
        JsonNode val = doc.get(name);
        if (val == null || val.isNull()) {
            if (required || val != null) {
                throw new SchemaError(name, "is required and must be a non-empty string", null);
            }
            return null;
        }
        if (!val.isTextual() || val.textValue().isEmpty()) {
            throw new SchemaError(name, "expected a non-empty string", val);
        }
        String s = val.textValue();
        if (codePoints(s) > maxLen) {
            throw new SchemaError(name, "longer than " + maxLen + " characters",
                s.substring(0, s.offsetByCodePoints(0, 40)) + "...");
        }
        return s;
    }

    private static long timestamp(ObjectNode doc) throws SchemaError {
        JsonNode ts = doc.get("ts");
        // orjson reads integers beyond 64 bits as floats: not an integer either
        if (ts == null || !ts.isIntegralNumber() || ts.isBigInteger()) {
            throw new SchemaError("ts", "expected an integer epoch-milliseconds timestamp", ts);
        }
        long v = ts.longValue();
        if (v < MIN_TS_MS || v > MAX_TS_MS) {
            throw new SchemaError("ts", "outside [" + MIN_TS_MS + ", " + MAX_TS_MS
                + "] epoch ms (seconds instead of milliseconds?)", v);
        }
        return v;
    }

    private static Double number(ObjectNode doc, String name) throws SchemaError {
        JsonNode val = doc.get(name);
        if (val == null) {
            return null;
        }
        if (val.isNull()) {
            throw new SchemaError(name, "expected a number, got null", null);
        }
        if (!val.isNumber()) {
            throw new SchemaError(name, "expected a finite number", val);
        }
        return val.doubleValue();
    }

    /** What orjson refuses that Jackson reads: infinite numbers and lone surrogates. */
    private static String strictJsonProblem(JsonNode node) {
        if (node.isNumber()) {
            if (node.isFloatingPointNumber() && !Double.isFinite(node.doubleValue())) {
                return "number is infinity when parsed as double";
            }
        } else if (node.isTextual()) {
            return loneSurrogate(node.textValue()) ? "lone surrogate in string" : null;
        } else if (node.isContainerNode()) {
            if (node.isObject()) {
                for (Iterator<String> it = node.fieldNames(); it.hasNext();) {
                    if (loneSurrogate(it.next())) {
                        return "lone surrogate in string";
                    }
                }
            }
            for (JsonNode child : node) {
                String bad = strictJsonProblem(child);
                if (bad != null) {
                    return bad;
                }
            }
        }
        return null;
    }

    private static boolean loneSurrogate(String s) {
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c)) {
                if (i + 1 >= s.length() || !Character.isLowSurrogate(s.charAt(i + 1))) {
                    return true;
                }
                i++;
            } else if (Character.isLowSurrogate(c)) {
                return true;
            }
        }
        return false;
    }

    static int codePoints(String s) {
        return s.codePointCount(0, s.length());
    }

    /** Python orders strings by code point; Java's compareTo by UTF-16 unit. */
    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int ca = a.codePointAt(i);
            int cb = b.codePointAt(j);
            if (ca != cb) {
                return Integer.compare(ca, cb);
            }
            i += Character.charCount(ca);
            j += Character.charCount(cb);
        }
        return Boolean.compare(i < a.length(), j < b.length());
    }

    static int utf8Length(String s) {
        if (s.length() * 3 <= MAX_EVENT_BYTES) {
            return s.length() * 3 <= MAX_EVENT_BYTES && isAscii(s) ? s.length()
                : s.getBytes(StandardCharsets.UTF_8).length;
        }
        return s.getBytes(StandardCharsets.UTF_8).length;
    }

    private static boolean isAscii(String s) {
        for (int i = 0; i < s.length(); i++) {
            if (s.charAt(i) >= 0x80) {
                return false;
            }
        }
        return true;
    }

    private static String preview(String raw) {
        return raw.length() <= 80 ? raw : raw.substring(0, 80);
    }
}
