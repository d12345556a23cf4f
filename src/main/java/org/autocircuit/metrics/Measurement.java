package org.autocircuit.metrics;

/**
 * One point of a metric curve: AutoCircuit's {@code (edge_count, value)} tuple ({@code Measurements}).
 *
 * @param x the number of edges in the circuit (or, for {@link Faithfulness}, the fraction of edges)
 * @param y the metric value
 */
public record Measurement(double x, double y) {
    public static Measurement of(double x, double y) {
        return new Measurement(x, y);
    }
}
