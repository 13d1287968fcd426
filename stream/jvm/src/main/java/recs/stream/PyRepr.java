// Python's repr() of decoded JSON values, for reasons that read like the Python twin's
// (schemas/events.py: SchemaError says "got {value!r}"). Only the field must match exactly;
// the wording follows Python's as closely as this simple rendering goes.
package recs.stream;

import java.util.Collection;
import java.util.Iterator;
import java.util.Map;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;

final class PyRepr {
    private PyRepr() {}

    static String of(Object value) {
        StringBuilder out = new StringBuilder();
        append(out, value);
        return out.toString();
    }

    /** Python's type name of a decoded JSON value. */
    static String typeName(JsonNode node) {
        if (node.isTextual()) {
            return "str";
        }
        if (node.isBoolean()) {
            return "bool";
        }
        if (node.isIntegralNumber() && !node.isBigInteger()) {
            return "int";
        }
        if (node.isNumber()) {
            return "float";
        }
        if (node.isArray()) {
            return "list";
        }
        if (node.isObject()) {
            return "dict";
        }
        return "NoneType";
    }

    private static void append(StringBuilder out, Object value) {
        if (value == null) {
            out.append("None");
        } else if (value instanceof String s) {
            string(out, s);
        } else if (value instanceof Collection<?> c) {
            out.append('[');
            int i = 0;
            for (Object o : c) {
                out.append(i++ == 0 ? "" : ", ");
                append(out, o);
            }
            out.append(']');
        } else if (value instanceof JsonNode node) {
            node(out, node);
        } else {
            out.append(value);
        }
    }

    private static void node(StringBuilder out, JsonNode node) {
        if (node.isNull() || node.isMissingNode()) {
            out.append("None");
        } else if (node.isTextual()) {
            string(out, node.textValue());
        } else if (node.isBoolean()) {
            out.append(node.booleanValue() ? "True" : "False");
        } else if (node.isIntegralNumber() && !node.isBigInteger()) {
            out.append(node.longValue());
        } else if (node.isNumber()) {
            out.append(node.doubleValue());
        } else if (node.isArray()) {
            out.append('[');
            for (int i = 0; i < node.size(); i++) {
                out.append(i == 0 ? "" : ", ");
                node(out, node.get(i));
            }
            out.append(']');
        } else {
            out.append('{');
            int i = 0;
            for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext();) {
                Map.Entry<String, JsonNode> e = it.next();
                out.append(i++ == 0 ? "" : ", ");
                string(out, e.getKey());
                out.append(": ");
                node(out, e.getValue());
            }
            out.append('}');
        }
    }

    private static void string(StringBuilder out, String s) {
        char quote = s.indexOf('\'') >= 0 && s.indexOf('"') < 0 ? '"' : '\'';
        out.append(quote);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == quote || c == '\\') {
                out.append('\\').append(c);
            } else if (c == '\n') {
                out.append("\\n");
            } else if (c == '\t') {
                out.append("\\t");
            } else if (c == '\r') {
                out.append("\\r");
            } else if (c < 0x20 || c == 0x7f) {
                out.append(String.format("\\x%02x", (int) c));
            } else {
                out.append(c);
            }
        }
        out.append(quote);
    }
}
