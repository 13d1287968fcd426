// The order in which the top-K twins publish (NeighbourFunction, TopKFunction), as their Python
// operators sort: score descending, ties by item id in code-point order.
package recs.stream;

import java.util.Arrays;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ArrayNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.node.ObjectNode;

final class Ranks {
    private Ranks() {}

    /** Indexes of {@code ids} (with their {@code scores}) from the best to the worst. */
    static Integer[] byScore(String[] ids, double[] scores) {
        Integer[] order = new Integer[ids.length];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> scores[a] != scores[b]
            ? Double.compare(scores[b], scores[a])
            : Interactions.compareCodePoints(ids[a], ids[b]));
        return order;
    }

    /** A published ranked list (neighbours, trending): {"items": [[id, score], ...] (the best
     *  {@code k}), "half_life_s": ...}, as operators/neighbours.py and trending.py render it. */
    static ObjectNode render(String[] ids, double[] scores, int k, double halfLifeS) {
        Integer[] order = byScore(ids, scores);
        ObjectNode d = Interactions.NODES.objectNode();
        ArrayNode items = d.putArray("items");
        for (int i = 0; i < Math.min(k, order.length); i++) {
            items.addArray().add(ids[order[i]]).add(scores[order[i]]);
        }
        d.put("half_life_s", halfLifeS);
        return d;
    }
}
