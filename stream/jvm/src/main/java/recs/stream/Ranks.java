// The order in which the top-K twins publish (NeighbourFunction, TopKFunction), as their Python
// operators sort: score descending, ties by item id in code-point order.
package recs.stream;

import java.util.Arrays;

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
}
