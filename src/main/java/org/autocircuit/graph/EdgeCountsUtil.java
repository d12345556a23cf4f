package org.autocircuit.graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * {@code edge_counts_util}: which circuit sizes to evaluate. Kept bug-for-bug with
 * AutoCircuit, including that removing 0 or nEdges removes only the first occurrence, as
 * Python's {@code list.remove} does.
 */
public final class EdgeCountsUtil {

    private EdgeCountsUtil() {
    }

    /**
     * The sorted edge counts to test.
     *
     * @param nEdges         number of edges of the graph
     * @param testCounts     rule or list; null chooses LOGARITHMIC above 200 edges, else ALL,
     *                       but GROUPS when {@code ps} has fewer than min(nEdges/2, 100) distinct
     *                       |scores|
     * @param ps             prune scores; required for GROUPS, optional otherwise
     * @param zeroEdges      include 0; null means "true if the list has more than 2 entries"
     *                       (fewer suggests a binary circuit, where 0 is not interesting)
     * @param allEdges       include nEdges; null means the same rule
     * @param trueEdgeCount  added if absent (the size of the official circuit), or null
     * @throws IllegalArgumentException for negative nEdges, GROUPS without scores, or scores of
     *                                  another size
     */
    public static List<Integer> edgeCounts(int nEdges, TestEdges testCounts, PruneScores ps, Boolean zeroEdges,
                                           Boolean allEdges, Integer trueEdgeCount) {
        if (nEdges < 0) {
            throw new IllegalArgumentException("nEdges must be >= 0, got " + nEdges);
        }
        if (ps != null && ps.graph().nEdges() != nEdges) {
            throw new IllegalArgumentException("ps has " + ps.graph().nEdges() + " edges, but nEdges is " + nEdges);
        }
        if (testCounts == null) {
            testCounts = new TestEdges.Counts(nEdges > 200 ? EdgeCounts.LOGARITHMIC : EdgeCounts.ALL);
            if (ps != null && uniqueAbs(ps).length < Math.min(nEdges / 2.0, 100)) {
                testCounts = new TestEdges.Counts(EdgeCounts.GROUPS);
            }
        }

        List<Integer> counts = new ArrayList<>();
        if (testCounts instanceof TestEdges.Counts c) {
            switch (c.kind()) {
                case ALL -> {
                    for (int n = 0; n <= nEdges; n++) {
                        counts.add(n);
                    }
                }
                case LOGARITHMIC -> {
                    // v is kept when it is a multiple of the largest power of ten <= v.
                    long pow = 1;
                    for (int v = 1; v < nEdges; v++) {
                        if (v >= pow * 10) {
                            pow *= 10;
                        }
                        if (v % pow == 0) {
                            counts.add(v);
                        }
                    }
                }
                case GROUPS -> {
                    if (ps == null) {
                        throw new IllegalArgumentException("EdgeCounts.GROUPS needs prune scores, got ps=null");
                    }
                    counts.addAll(groupCounts(ps));
                }
            }
        } else if (testCounts instanceof TestEdges.Explicit e) {
            for (Number v : e.values()) {
                if (v instanceof Double || v instanceof Float) {
                    // Python int(n * f): truncation toward zero, as Java's cast.
                    counts.add((int) (nEdges * v.doubleValue()));
                } else {
                    counts.add(Math.toIntExact(v.longValue()));
                }
            }
        }

        boolean zero = zeroEdges != null ? zeroEdges : counts.size() > 2;
        boolean all = allEdges != null ? allEdges : counts.size() > 2;
        if (zero && !counts.contains(0)) {
            counts.add(0, 0);
        }
        if (all && !counts.contains(nEdges)) {
            counts.add(nEdges);
        }
        if (!zero) {
            counts.remove(Integer.valueOf(0));
        }
        if (!all) {
            counts.remove(Integer.valueOf(nEdges));
        }
        if (trueEdgeCount != null && !counts.contains(trueEdgeCount)) {
            counts.add(trueEdgeCount);
        }
        Collections.sort(counts);
        return List.copyOf(counts);
    }

    /** {@link #edgeCounts} with the Python defaults for the flags ({@code edge_counts_util(edges, test_counts, ps)}). */
    public static List<Integer> edgeCounts(int nEdges, TestEdges testCounts, PruneScores ps) {
        return edgeCounts(nEdges, testCounts, ps, null, null, null);
    }

    /**
     * GROUPS: the distinct |scores| in descending order, with the cumulative number of edges
     * whose |score| is at least each one; the last value is nEdges.
     */
    static List<Integer> groupCounts(PruneScores ps) {
        float[] desc = ps.descAbs();
        List<Integer> out = new ArrayList<>();
        for (int i = 1; i <= desc.length; i++) {
            if (i == desc.length || Float.compare(desc[i], desc[i - 1]) != 0) {
                out.add(i);
            }
        }
        return out;
    }

    private static float[] uniqueAbs(PruneScores ps) {
        float[] desc = ps.descAbs();
        int n = 0;
        for (int i = 0; i < desc.length; i++) {
            if (i == 0 || Float.compare(desc[i], desc[i - 1]) != 0) {
                desc[n++] = desc[i];
            }
        }
        return Arrays.copyOf(desc, n);
    }
}
