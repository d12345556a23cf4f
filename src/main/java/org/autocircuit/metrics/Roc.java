package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Objects;
import org.autocircuit.graph.EdgeCounts;
import org.autocircuit.graph.EdgeCountsUtil;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TestEdges;

/**
 * How well prune scores pick out an official circuit: AutoCircuit's {@code measure_task_roc}, plus the
 * area under the resulting curve.
 *
 * <p>For each circuit size k (from {@code edge_counts_util}, or every size), the circuit is every edge whose |score|
 * is at least the k-th largest |score|, exactly as {@code run_circuits} builds circuits, so tied edges enter together
 * and the result does not depend on any ordering among ties. Each size gives one point
 * {@code (FPR, TPR) = (false positives / non-official edges, true positives / official edges)}; the curve starts with
 * {@code (0, 0)} and ends with {@code (1, 1)}.
 *
 * <p>{@link #auc} integrates the points with the trapezoid rule in the order given (FPR never decreases along the
 * curve). A group of tied edges therefore becomes one straight segment, which credits half of every tied
 * official/non-official pair: with every size evaluated ({@code allEdges}), the AUC equals the probability that a
 * random official edge scores higher than a random other edge, ties counting one half. AutoCircuit only plots the
 * curve; the AUC is this port's addition.
 */
public final class Roc {

    private Roc() {
    }

    /**
     * The ROC curve and its area.
     *
     * @param points    {@code (FPR, TPR)} points in curve order, from {@code (0, 0)} to {@code (1, 1)}
     * @param nOfficial number of official edges
     * @param nEdges    number of edges of the graph
     */
    public record Curve(List<Measurement> points, int nOfficial, int nEdges) {
        public Curve {
            points = List.copyOf(points);
        }

        /** Area under the curve (trapezoid rule). */
        public double auc() {
            return Roc.auc(points);
        }
    }

    /** {@link #curve(PruneScores, Collection, boolean)} with AutoCircuit's default sizes ({@code all_edges=False}). */
    public static Curve curve(PruneScores scores, Collection<Edge> official) {
        return curve(scores, official, false);
    }

    /**
     * {@code measure_task_roc(model, official_edges, prune_scores, all_edges)}.
     *
     * @param scores   one score per edge; |score| ranks the edges
     * @param official the circuit to recover: edges of {@code scores.graph()}
     * @param allEdges evaluate every size 0..nEdges instead of {@code edge_counts_util(edges, prune_scores=scores)}
     * @throws IllegalArgumentException if an official edge is not in the graph, the official set is empty or holds
     *                                  every edge (a rate would divide by zero), or a score is NaN
     */
    public static Curve curve(PruneScores scores, Collection<Edge> official, boolean allEdges) {
        Objects.requireNonNull(scores, "scores");
        Objects.requireNonNull(official, "official");
        Graph g = scores.graph();
        int n = g.nEdges();
        boolean[] isOfficial = new boolean[n];
        int nOfficial = 0;
        for (Edge e : official) {
            int i = g.edgeIndex(e);
            if (!isOfficial[i]) {
                isOfficial[i] = true;
                nOfficial++;
            }
        }
        if (nOfficial == 0 || nOfficial == n) {
            throw new IllegalArgumentException("ROC needs official edges and other edges, but " + nOfficial + " of the "
                + n + " edges of " + g + " are official");
        }
        if (scores.hasNaN()) throw new IllegalArgumentException("ROC needs scores without NaN: " + scores);

        float[] flat = scores.flat();
        // Edge indices by |score| descending. Whatever the order among ties, the edges with |score| >= t are a prefix.
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) order[i] = i;
        java.util.Arrays.sort(order, (a, b) -> Float.compare(Math.abs(flat[b]), Math.abs(flat[a])));
        float[] descAbs = new float[n];
        int[] officialPrefix = new int[n + 1];   // officialPrefix[m] = official edges among the first m
        for (int r = 0; r < n; r++) {
            descAbs[r] = Math.abs(flat[order[r]]);
            officialPrefix[r + 1] = officialPrefix[r] + (isOfficial[order[r]] ? 1 : 0);
        }

        List<Integer> counts = allEdges
            ? EdgeCountsUtil.edgeCounts(n, TestEdges.of(EdgeCounts.ALL), null)
            : EdgeCountsUtil.edgeCounts(n, null, scores);
        int nOther = n - nOfficial;
        List<Measurement> points = new ArrayList<>(counts.size() + 2);
        points.add(Measurement.of(0.0, 0.0));
        for (int k : counts) {
            int m = k == 0 ? 0 : atLeast(descAbs, scores.threshold(k));
            int tp = officialPrefix[m];
            int fp = m - tp;
            points.add(Measurement.of((double) fp / nOther, (double) tp / nOfficial));
        }
        points.add(Measurement.of(1.0, 1.0));
        return new Curve(points, nOfficial, n);
    }

    /** Number of entries of the descending array {@code desc} that are {@code >= threshold}. */
    private static int atLeast(float[] desc, float threshold) {
        int lo = 0;
        int hi = desc.length;
        while (lo < hi) {
            int mid = (lo + hi) >>> 1;
            if (desc[mid] >= threshold) lo = mid + 1; else hi = mid;
        }
        return lo;
    }

    /**
     * Trapezoid area under points taken in order: {@code Σ (x2 − x1)(y1 + y2)/2}.
     *
     * @throws IllegalArgumentException if x ever decreases (not a curve in FPR order)
     */
    public static double auc(List<Measurement> points) {
        double area = 0;
        for (int i = 1; i < points.size(); i++) {
            Measurement a = points.get(i - 1);
            Measurement b = points.get(i);
            if (b.x() < a.x()) {
                throw new IllegalArgumentException("ROC points must have non-decreasing x, but point " + i + " " + b
                    + " follows " + a);
            }
            area += (b.x() - a.x()) * (a.y() + b.y()) / 2;
        }
        return area;
    }
}
