package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * The faithfulness areas of MIB (Mueller et al., 2025, "MIB: A Mechanistic Interpretability Benchmark"): circuit
 * performance ratio (CPR, higher is better) and circuit–model distance (CMD, lower is better).
 *
 * <p>For a metric m (e.g. the logit difference), the empty circuit ∅ (every edge ablated) and the full model N, the
 * faithfulness of the circuit C<sub>k</sub> made of the top fraction k of edges is
 * <pre>
 *   f(C_k) = (m(C_k) − m(∅)) / (m(N) − m(∅))
 * </pre>
 * so f(∅) = 0 and f(N) = 1. Over the fractions k ∈ {@link #FRACTIONS} = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
 * 0.2, 0.5, 1} (linear in k, trapezoid rule):
 * <pre>
 *   CPR = Σ_i (k_{i+1} − k_i) · (f(C_{k_i}) + f(C_{k_{i+1}})) / 2
 *   CMD = Σ_i (k_{i+1} − k_i) · (|1 − f(C_{k_i})| + |1 − f(C_{k_{i+1}})|) / 2
 * </pre>
 * A perfectly faithful family (f ≡ 1) has CPR = 0.999 (the span of the grid) and CMD = 0.
 */
public final class Faithfulness {
    /** MIB's grid of edge fractions. */
    public static final List<Double> FRACTIONS =
        List.of(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0);

    private static final double FRACTION_TOLERANCE = 1e-9;

    private Faithfulness() {}

    /**
     * f(C) = (m(C) − m(∅)) / (m(N) − m(∅)).
     *
     * @throws IllegalArgumentException if m(N) = m(∅) (the metric does not separate the full model from the empty
     *                                  circuit, so no ratio is defined) or a value is not finite
     */
    public static double faithfulness(double mEmpty, double mFull, double mCircuit) {
        checkEnds(mEmpty, mFull);
        if (!Double.isFinite(mCircuit)) throw new IllegalArgumentException("mCircuit must be finite, got " + mCircuit);
        return (mCircuit - mEmpty) / (mFull - mEmpty);
    }

    /**
     * The faithfulness curve: (k, f(C_k)) for each point, sorted by k.
     *
     * @param points (fraction k of edges, m(C_k)); their k must be exactly {@link #FRACTIONS}, each once, in any order
     */
    public static List<Measurement> curve(double mEmpty, double mFull, List<Measurement> points) {
        checkEnds(mEmpty, mFull);
        List<Measurement> sorted = checkGrid(points);
        List<Measurement> f = new ArrayList<>(sorted.size());
        for (Measurement p : sorted) f.add(new Measurement(p.x(), faithfulness(mEmpty, mFull, p.y())));
        return List.copyOf(f);
    }

    /** Circuit performance ratio: the trapezoid area under f over {@link #FRACTIONS}. See the class comment. */
    public static double cpr(double mEmpty, double mFull, List<Measurement> points) {
        return trapezoid(curve(mEmpty, mFull, points));
    }

    /** Circuit–model distance: the trapezoid area of |1 − f| over {@link #FRACTIONS}. See the class comment. */
    public static double cmd(double mEmpty, double mFull, List<Measurement> points) {
        List<Measurement> distance = new ArrayList<>();
        for (Measurement p : curve(mEmpty, mFull, points)) distance.add(new Measurement(p.x(), Math.abs(1 - p.y())));
        return trapezoid(distance);
    }

    /** The trapezoid-rule area under the points, taken in ascending x (linear axes, no baseline). */
    public static double trapezoid(List<Measurement> points) {
        if (points == null || points.size() < 2) {
            throw new IllegalArgumentException("points needs at least two points for an area, got " + points);
        }
        List<Measurement> sorted = new ArrayList<>(points);
        sorted.sort(Comparator.comparingDouble(Measurement::x));
        double area = 0.0;
        for (int i = 1; i < sorted.size(); i++) {
            Measurement a = sorted.get(i - 1);
            Measurement b = sorted.get(i);
            area += (b.x() - a.x()) * (a.y() + b.y()) / 2.0;
        }
        return area;
    }

    private static void checkEnds(double mEmpty, double mFull) {
        if (!Double.isFinite(mEmpty) || !Double.isFinite(mFull)) {
            throw new IllegalArgumentException("mEmpty and mFull must be finite, got " + mEmpty + " and " + mFull);
        }
        if (mFull == mEmpty) {
            throw new IllegalArgumentException("mFull equals mEmpty (" + mFull + "): the metric does not separate the "
                + "full model from the empty circuit, so faithfulness (m(C) − m(∅)) / (m(N) − m(∅)) is undefined");
        }
    }

    private static List<Measurement> checkGrid(List<Measurement> points) {
        if (points == null || points.size() != FRACTIONS.size()) {
            throw new IllegalArgumentException("points must have one entry per fraction of " + FRACTIONS + ", got "
                + (points == null ? null : points.size() + " points"));
        }
        List<Measurement> sorted = new ArrayList<>(points);
        sorted.sort(Comparator.comparingDouble(Measurement::x));
        for (int i = 0; i < sorted.size(); i++) {
            if (Math.abs(sorted.get(i).x() - FRACTIONS.get(i)) > FRACTION_TOLERANCE) {
                throw new IllegalArgumentException("points must be at the fractions " + FRACTIONS + "; sorted point " + i
                    + " has x = " + sorted.get(i).x());
            }
        }
        return sorted;
    }
}
