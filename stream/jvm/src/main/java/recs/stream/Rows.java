// The row types the JVM stages exchange with each other and with the Python ones. EVENT_ROW,
// PAIRS_ROW are the Python twins' types (stream/functions.py); EVENT carries the parsed fields
// the JVM stages read, so no stage parses the JSON twice.
package recs.stream;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.types.Row;

public final class Rows {
    private Rows() {}

    /** A valid event inside the JVM: what Python's EVENT_ROW holds plus its parsed fields. */
    public static final TypeInformation<Row> EVENT = Types.ROW_NAMED(
        new String[] {"user_id", "ts", "body", "event_id", "type", "session_id", "item_id",
                      "item_ids", "rec", "value", "device", "country"},
        Types.STRING, Types.LONG, Types.STRING, Types.STRING, Types.STRING, Types.STRING,
        Types.STRING, Types.OBJECT_ARRAY(Types.STRING), Types.BOOLEAN, Types.DOUBLE,
        Types.STRING, Types.STRING);

    /** One item an event touches (stream/functions.py ITEM_EVENT_ROW without its body). */
    public static final TypeInformation<Row> ITEM_EVENT = Types.ROW_NAMED(
        new String[] {"item_id", "type", "value", "ts", "device", "country"},
        Types.STRING, Types.STRING, Types.DOUBLE, Types.LONG, Types.STRING, Types.STRING);

    /** stream/functions.py SCORE_ROW: an item's score in one trending scope. */
    public static final TypeInformation<Row> SCORE_ROW = Types.ROW_NAMED(
        new String[] {"scope", "item_id", "log_score", "ts"},
        Types.STRING, Types.STRING, Types.DOUBLE, Types.LONG);

    /** stream/functions.py EVENT_ROW. */
    public static final TypeInformation<Row> EVENT_ROW = Types.ROW_NAMED(
        new String[] {"user_id", "ts", "body"}, Types.STRING, Types.LONG, Types.STRING);

    /** stream/functions.py PAIRS_ROW: the pairs of one event that share a source item. */
    public static final TypeInformation<Row> PAIRS_ROW = Types.ROW_NAMED(
        new String[] {"relation", "src", "dsts", "weights", "ts"},
        Types.STRING, Types.STRING, Types.LIST(Types.STRING), Types.LIST(Types.DOUBLE),
        Types.LONG);

    static Row event(Interactions.Event e) {
        return Row.of(e.userId, e.ts, e.toJson(), e.eventId, e.type, e.sessionId, e.itemId,
            e.itemIds.toArray(new String[0]), e.hasRecId, e.value, e.context("device"),
            e.context("country"));
    }

    /** stream/functions.py explode_items: one row per item an event touches (an impression
     *  touches every item it showed, any other event its item). */
    static void touchedItems(Row event, org.apache.flink.util.Collector<Row> out) {
        String type = event.getFieldAs(4);
        if (type.equals("impression")) {
            for (String item : event.<String[]>getFieldAs(7)) {
                out.collect(itemEvent(item, type, event));
            }
        } else if (event.getField(6) != null) {
            out.collect(itemEvent(event.getFieldAs(6), type, event));
        }
    }

    private static Row itemEvent(String item, String type, Row event) {
        return Row.of(item, type, event.getField(9), event.getField(1), event.getField(10),
            event.getField(11));
    }

    static Row eventRow(Row event) {
        return Row.of(event.getField(0), event.getField(1), event.getField(2));
    }

    static Row pairs(String relation, String src, ArrayList<String> dsts,
                     ArrayList<Double> weights, long ts) {
        return Row.of(relation, src, (List<String>) dsts, (List<Double>) weights, ts);
    }
}
