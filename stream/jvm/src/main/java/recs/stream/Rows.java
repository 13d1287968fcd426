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
                      "item_ids", "rec"},
        Types.STRING, Types.LONG, Types.STRING, Types.STRING, Types.STRING, Types.STRING,
        Types.STRING, Types.OBJECT_ARRAY(Types.STRING), Types.BOOLEAN);

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
            e.itemIds.toArray(new String[0]), e.hasRecId);
    }

    static Row eventRow(Row event) {
        return Row.of(event.getField(0), event.getField(1), event.getField(2));
    }

    static Row pairs(String relation, String src, ArrayList<String> dsts,
                     ArrayList<Double> weights, long ts) {
        return Row.of(relation, src, (List<String>) dsts, (List<Double>) weights, ts);
    }
}
