// Twin of operators/decay.py: forward decay in log space, log Σ w·exp(λ·t) with the epoch as
// landmark. Adding an event is one logaddexp; scores only grow; nothing overflows.
package recs.stream;

final class Decay {
    static final double LN2 = Math.log(2.0);

    private Decay() {}

    static double rate(double halfLifeS) {
        return LN2 / halfLifeS;
    }

    /** log(w·exp(λ·t)) for one event of weight w > 0 at event time ts (ms). */
    static double logTerm(double weight, long tsMs, double halfLifeS) {
        return Math.log(weight) + rate(halfLifeS) * (tsMs / 1000.0);
    }

    /** operators/decay.py add: one event of weight w at ts added to a log score. */
    static double add(double logScore, double weight, long tsMs, double halfLifeS) {
        return logaddexp(logScore, logTerm(weight, tsMs, halfLifeS));
    }

    static double logaddexp(double a, double b) {
        if (a == Double.NEGATIVE_INFINITY) {
            return b;
        }
        if (b == Double.NEGATIVE_INFINITY) {
            return a;
        }
        if (a < b) {
            double t = a;
            a = b;
            b = t;
        }
        return a + Math.log1p(Math.exp(b - a));
    }
}
