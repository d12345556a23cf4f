package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Port of tests/utils/test_graph_utils.py plus the remaining rules of edge_counts_util. */
class EdgeCountsUtilTest {

    /** The mini test transformer (2 layers, 2 heads), combined attention input: 26 edges. */
    private static final Graph MINI = Graph.transformerFactorized(TransformerShape.sequential(2, 2), false, null);
    private static final Graph MICRO = Graph.microModel(2, true, null);

    private static List<Integer> range(int from, int toInclusive) {
        return IntStream.rangeClosed(from, toInclusive).boxed().collect(Collectors.toList());
    }

    @Test
    void testEdgeCountsUtil() {
        assertEquals(26, MINI.nEdges());
        assertEquals(List.of(0, 13, 26),
                EdgeCountsUtil.edgeCounts(MINI.nEdges(), TestEdges.of(0.0, 0.5, 1.0), null, null, null, null));
        assertEquals(range(0, 26),
                EdgeCountsUtil.edgeCounts(MINI.nEdges(), TestEdges.of(EdgeCounts.ALL), null, null, null, null));
    }

    @Test
    void testGroupsEdgeCounts() {
        assertEquals(13, MICRO.nEdges());
        Edge e0 = MICRO.edges().get(0);
        Edge e1 = MICRO.edges().get(5);
        Edge e2 = MICRO.edges().get(12);
        TestEdges groups = EdgeCounts.GROUPS.asTestEdges();
        PruneScores zeros = PruneScores.zeros(MICRO);
        assertEquals(List.of(0, 13), EdgeCountsUtil.edgeCounts(13, groups, zeros, true, true, null));
        assertEquals(List.of(), EdgeCountsUtil.edgeCounts(13, groups, zeros, false, false, null));
        PruneScores one = zeros.with(e0, 1f);
        assertEquals(List.of(1), EdgeCountsUtil.edgeCounts(13, groups, one, false, false, null));
        PruneScores two = one.with(e1, 1f);
        assertEquals(List.of(2), EdgeCountsUtil.edgeCounts(13, groups, two, false, false, null));
        PruneScores oneOneTwo = two.with(e2, 2f);
        assertEquals(List.of(1, 3), EdgeCountsUtil.edgeCounts(13, groups, oneOneTwo, false, false, null));
        PruneScores oneTwoTwo = zeros.with(e0, 1f).with(e1, 2f).with(e2, 2f);
        assertEquals(List.of(2, 3), EdgeCountsUtil.edgeCounts(13, groups, oneTwoTwo, false, false, null));
        // Groups use |score|: -2 and 2 tie.
        PruneScores signed = zeros.with(e0, 1f).with(e1, -2f).with(e2, 2f);
        assertEquals(List.of(2, 3), EdgeCountsUtil.edgeCounts(13, groups, signed, false, false, null));
        // Default flags with 3 groups (> 2 entries) add 0; 13 is already there.
        assertEquals(List.of(0, 2, 3, 13), EdgeCountsUtil.edgeCounts(13, groups, oneTwoTwo, null, null, null));
    }

    @Test
    void logarithmicValues() {
        List<Integer> expected = new ArrayList<>();
        expected.add(0);
        for (int pow = 1; pow <= 100; pow *= 10) {
            for (int m = 1; m <= 9; m++) {
                expected.add(m * pow);
            }
        }
        expected.add(1000);
        List<Integer> got = EdgeCountsUtil.edgeCounts(1000, TestEdges.of(EdgeCounts.LOGARITHMIC), null, null, null,
                null);
        assertEquals(expected, got);
        assertEquals(29, got.size());
        // 1000 itself is not generated (range stops at n-1); 1001 edges generate it.
        List<Integer> n1001 = EdgeCountsUtil.edgeCounts(1001, TestEdges.of(EdgeCounts.LOGARITHMIC), null, false,
                false, null);
        assertEquals(1000, n1001.get(n1001.size() - 1));
        assertEquals(28, n1001.size());
    }

    @Test
    void defaultsChooseAllLogarithmicOrGroups() {
        assertEquals(range(0, 200), EdgeCountsUtil.edgeCounts(200, null, null, null, null, null));
        List<Integer> log = EdgeCountsUtil.edgeCounts(201, null, null, null, null, null);
        assertEquals(List.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 200, 201), log);
        // Micro (13 edges): 2 distinct |scores| < min(6.5, 100) -> GROUPS; 2 entries -> no 0, no 13 added.
        PruneScores few = PruneScores.zeros(MICRO).with(MICRO.edges().get(3), 5f);
        assertEquals(List.of(1), EdgeCountsUtil.edgeCounts(13, null, few, null, null, null));
        // 13 distinct scores: not fewer than 6.5 -> ALL.
        float[] distinct = new float[13];
        for (int i = 0; i < 13; i++) {
            distinct[i] = i;
        }
        assertEquals(range(0, 13),
                EdgeCountsUtil.edgeCounts(13, null, PruneScores.ofFlat(MICRO, distinct), null, null, null));
        assertEquals(List.of(1), EdgeCountsUtil.edgeCounts(13, null, few));
    }

    @Test
    void explicitListsTrueCountAndFlags() {
        // Integers are kept, floats scaled and truncated; 2 entries -> no 0 / n added.
        assertEquals(List.of(5, 6), EdgeCountsUtil.edgeCounts(26, TestEdges.of(5, 0.25), null, null, null, null));
        assertEquals(List.of(0, 5, 6, 26),
                EdgeCountsUtil.edgeCounts(26, TestEdges.of(5, 0.25), null, true, true, null));
        // Integer 1 is one edge, Double 1.0 is every edge.
        assertEquals(List.of(1, 26), EdgeCountsUtil.edgeCounts(26, TestEdges.of(1, 1.0), null, null, true, null));
        // Two entries look like a binary circuit, so by default nEdges is removed again.
        assertEquals(List.of(1), EdgeCountsUtil.edgeCounts(26, TestEdges.of(1, 1.0), null, null, null, null));
        assertEquals(List.of(3, 7),
                EdgeCountsUtil.edgeCounts(26, TestEdges.of(26, 3), null, null, null, 7));
        assertEquals(List.of(0, 3, 10, 20, 26),
                EdgeCountsUtil.edgeCounts(26, TestEdges.of(20, 3, 10), null, null, null, 10));
        // Python list.remove drops the first occurrence only.
        assertEquals(List.of(0, 4, 26),
                EdgeCountsUtil.edgeCounts(26, TestEdges.of(0, 0, 4), null, false, null, null));
    }

    @Test
    void badArguments() {
        assertThrows(IllegalArgumentException.class,
                () -> EdgeCountsUtil.edgeCounts(13, EdgeCounts.GROUPS.asTestEdges(), null, null, null, null));
        assertThrows(IllegalArgumentException.class,
                () -> EdgeCountsUtil.edgeCounts(26, null, PruneScores.zeros(MICRO), null, null, null));
        assertThrows(IllegalArgumentException.class, () -> EdgeCountsUtil.edgeCounts(-1, null, null, null, null, null));
        assertThrows(IllegalArgumentException.class, () -> TestEdges.of(1, null));
        assertThrows(IllegalArgumentException.class,
                () -> TestEdges.of(new java.math.BigDecimal("0.5")));
        assertThrows(IllegalArgumentException.class, () -> new TestEdges.Counts(null));
    }
}
