package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * AutoCircuit's {@code measurements_auc}: the trapezoidal area between a metric-versus-edge-count curve and
 * its value for the empty circuit.
 *
 * <p>The points are sorted by x, and the first x must be 0; its (raw, untransformed) y is the baseline b. For each
 * consecutive pair: with {@code logY} both y are first clamped to at least {@code yMin}; with {@code logX} a segment with
 * an endpoint at x = 0 is skipped (log 0 is undefined) and x maps to log10 x; with {@code logY} y maps to
 * log10 y − log10 yMin. The segment adds {@code (x2 − x1)·((y1 − b) + (y2 − b))/2}. The result is
 * {@code max(area, eps)}, so that normalising by another algorithm's area never divides by zero.
 *
 * <p>As in AutoCircuit, the baseline is subtracted <em>after</em> the log-y transform although it was taken before it;
 * this is kept on purpose so that areas match the Python library.
 */
public final class AreaUnderCurve {
    /** AutoCircuit's default {@code eps}. */
    public static final double DEFAULT_EPS = 1e-3;

    private AreaUnderCurve() {}

    /** {@link #measurementsAuc(List, boolean, boolean, Double, double)} with {@code eps = 1e-3}. */
    public static double measurementsAuc(List<Measurement> points, boolean logX, boolean logY, Double yMin) {
        return measurementsAuc(points, logX, logY, yMin, DEFAULT_EPS);
    }

    /**
     * @param points (edge count, value) pairs in any order; one must have x = 0 and none may have x &lt; 0
     * @param logX   integrate over log10 of the edge count (segments touching 0 are skipped)
     * @param logY   integrate log10(max(y, yMin)) − log10(yMin)
     * @param yMin   required (&gt; 0) when {@code logY}; ignored otherwise
     * @param eps    the smallest area returned
     */
    public static double measurementsAuc(List<Measurement> points, boolean logX, boolean logY, Double yMin,
                                         double eps) {
        if (points == null || points.isEmpty()) {
            throw new IllegalArgumentException("points must contain at least the point at x = 0, got " + points);
        }
        if (logY && (yMin == null || !(yMin > 0))) {
            throw new IllegalArgumentException("yMin must be > 0 when logY, got " + yMin);
        }
        List<Measurement> sorted = new ArrayList<>(points);
        sorted.sort(Comparator.comparingDouble(Measurement::x));
        if (sorted.get(0).x() != 0) {
            throw new IllegalArgumentException("the smallest x of points must be 0 (the empty circuit), got "
                + sorted.get(0).x());
        }
        double baseline = sorted.get(0).y();
        double area = 0.0;
        for (int i = 1; i < sorted.size(); i++) {
            double x1 = sorted.get(i - 1).x();
            double y1 = sorted.get(i - 1).y();
            double x2 = sorted.get(i).x();
            double y2 = sorted.get(i).y();
            if (logY) {
                y1 = Math.max(y1, yMin);
                y2 = Math.max(y2, yMin);
            }
            if (logX && (x1 == 0 || x2 == 0)) continue;
            if (logX) {
                x1 = Math.log10(x1);
                x2 = Math.log10(x2);
            }
            if (logY) {
                y1 = Math.log10(y1) - Math.log10(yMin);
                y2 = Math.log10(y2) - Math.log10(yMin);
            }
            area += (x2 - x1) * ((y1 - baseline) + (y2 - baseline)) / 2.0;
        }
        return Math.max(area, eps);
    }
}
