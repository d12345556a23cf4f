package org.autocircuit.metrics;

import java.util.List;
import org.autocircuit.patching.CircuitOutputs;

/**
 * A metric of the output of a circuit on a task (AutoCircuit's {@code PruneMetric}), with the plotting flags
 * that go with it.
 *
 * <p>Equality is by {@link #key} alone: {@code fn} is usually a lambda, which records would compare by identity
 * (AutoCircuit overrides {@code __eq__} the same way for its registry entries).
 *
 * @param key         unique identifier, e.g. {@code "Logit Diff"}
 * @param name        display name
 * @param fn          the measurement function
 * @param logX        plot (and integrate, see {@link AreaUnderCurve}) the edge counts on a log scale
 * @param logY        the same for the values; needs {@code yMin}
 * @param lowerBetter lower values are better (KL divergence to the clean model)
 * @param yAxesMatch  use one y axis for all tasks when plotting
 * @param yMin        values are clamped to at least this when {@code logY}; {@code null} when unused
 */
public record PruneMetric(String key, String name, MetricFunction fn, boolean logX, boolean logY,
                          boolean lowerBetter, boolean yAxesMatch, Double yMin) {

    public PruneMetric {
        if (key == null || key.isEmpty()) throw new IllegalArgumentException("key must be non-empty, got " + key);
        if (name == null) throw new IllegalArgumentException("name must not be null (metric " + key + ")");
        if (fn == null) throw new IllegalArgumentException("fn must not be null (metric " + key + ")");
        // AutoCircuit meant to check this in `_post_init`, which is misspelt and never runs.
        if (logY && yMin == null) throw new IllegalArgumentException("yMin is required when logY (metric " + key + ")");
        if (yMin != null && !(yMin > 0)) throw new IllegalArgumentException("yMin must be > 0, got " + yMin);
    }

    /** A metric with the default flags (all false, no yMin). */
    public static PruneMetric of(String key, String name, MetricFunction fn) {
        return new PruneMetric(key, name, fn, false, false, false, false, null);
    }

    /** Measures every circuit size of {@code outs}: one {@link Measurement} per edge count, ascending. */
    public List<Measurement> measure(MetricContext ctx, CircuitOutputs outs) {
        if (outs == null) throw new IllegalArgumentException("outs must not be null");
        return fn.measure(ctx, outs);
    }

    /** The area under this metric's curve with its own log flags and {@code yMin} (eps 1e-3), see {@link AreaUnderCurve}. */
    public double auc(List<Measurement> points) {
        return AreaUnderCurve.measurementsAuc(points, logX, logY, yMin, AreaUnderCurve.DEFAULT_EPS);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof PruneMetric m && m.key.equals(key);
    }

    @Override
    public int hashCode() {
        return key.hashCode();
    }
}
