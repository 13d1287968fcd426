// Micro-benchmark of EventTimes.of, the Kafka source's scan of each raw interaction for its
// event time: nanoseconds per document on storefront-shaped events (those of Bench.java's
// generator). Not a stage; run it with
//
//   java -cp "$(python -c 'from stream import jvm; print(jvm.tool_classpath())')" \
//       recs.stream.EventTimesBench [documents-per-round]
package recs.stream;

public final class EventTimesBench {
    private EventTimesBench() {}

    public static void main(String[] args) {
        int n = args.length > 0 ? Integer.parseInt(args[0]) : 10_000_000;
        String[] docs = new String[1000];
        for (int i = 0; i < docs.length; i++) {
            docs[i] = "{\"event_id\":\"ev-" + i + "-7f3a9c\",\"type\":\"view\",\"user_id\":\"u"
                + (i * 7919 % 50_000) + "\",\"session_id\":\"s" + i + "\",\"item_id\":\"i"
                + (i % 5000) + "\",\"ts\":" + (Bench.T0 + i)
                + ",\"context\":{\"device\":\"mobile\",\"country\":\"BR\",\"page\":\"home\"}}";
        }
        long sink = 0;
        for (int round = 0; round < 5; round++) {  // the first rounds warm the JIT up
            long t0 = System.nanoTime();
            for (int k = 0; k < n; k++) {
                sink += EventTimes.of(docs[k % docs.length]);
            }
            double ns = (System.nanoTime() - t0) / (double) n;
            System.out.printf("round %d: %.1f ns per document (%d chars)%n", round, ns,
                              docs[0].length());
        }
        if (sink == 0) {
            System.out.println("(no time read)");  // keeps the JIT from dropping the loop
        }
    }
}
