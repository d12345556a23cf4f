package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.junit.jupiter.api.Test;

/** ROC points and AUC on the 13-edge micro-model graph, computed by hand. */
class RocTest {

    private static final Graph G = Graph.microModel(2, true, null);

    private static Set<Edge> edges(int... idx) {
        List<Edge> out = new ArrayList<>();
        for (int i : idx) out.add(G.edges().get(i));
        return Set.copyOf(out);
    }

    private static void assertPoints(double[][] expected, List<Measurement> actual) {
        assertEquals(expected.length, actual.size(), "points: " + actual);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i][0], actual.get(i).x(), 1e-12, "FPR of point " + i + ": " + actual);
            assertEquals(expected[i][1], actual.get(i).y(), 1e-12, "TPR of point " + i + ": " + actual);
        }
    }

    @Test
    void distinctScoresGiveOnePointPerSize() {
        // Scores 13, 12, ..., 1 in edge order (signs must not matter); official = edges 0, 2 and 5.
        float[] s = new float[13];
        for (int i = 0; i < 13; i++) s[i] = (i % 2 == 0 ? 1 : -1) * (13 - i);
        Roc.Curve c = Roc.curve(PruneScores.ofFlat(G, s), edges(0, 2, 5));
        double t = 1.0 / 3;
        // 13 distinct scores: edge_counts_util picks ALL (0..13), and AutoCircuit's curve starts with (0,0) and ends
        // with (1,1) on top of that.
        assertPoints(new double[][] {{0, 0}, {0, 0}, {0, t}, {0.1, t}, {0.1, 2 * t}, {0.2, 2 * t}, {0.3, 2 * t},
            {0.3, 1}, {0.4, 1}, {0.5, 1}, {0.6, 1}, {0.7, 1}, {0.8, 1}, {0.9, 1}, {1.0, 1}, {1, 1}}, c.points());
        // Official edges outrank 10 + 9 + 7 of the 3 x 10 (official, other) pairs.
        assertEquals(26.0 / 30, c.auc(), 1e-12);
        assertEquals(3, c.nOfficial());
        assertEquals(13, c.nEdges());
    }

    @Test
    void tiesEnterTogetherAndCountHalf() {
        // Edges 0, 1 score 3 (0 official, 1 not); edges 2..12 score 1 (2 official). Two distinct |scores| -> GROUPS
        // sizes [2, 13], and with only two sizes 0 and 13 are dropped: one inner point at size 2.
        float[] s = new float[13];
        java.util.Arrays.fill(s, 1f);
        s[0] = 3f;
        s[1] = -3f;
        Roc.Curve c = Roc.curve(PruneScores.ofFlat(G, s), edges(0, 2));
        assertPoints(new double[][] {{0, 0}, {1.0 / 11, 0.5}, {1, 1}}, c.points());
        // Pairs: edge 0 beats 10 others and ties 1 (10.5); edge 2 ties 10 (5) -> 15.5 / 22.
        assertEquals(15.5 / 22, c.auc(), 1e-12);

        // Every size: sizes inside a tie group give the whole group, so the curve and its area do not change.
        Roc.Curve all = Roc.curve(PruneScores.ofFlat(G, s), edges(0, 2), true);
        assertEquals(16, all.points().size());
        assertEquals(15.5 / 22, all.auc(), 1e-12);
        assertEquals(new Measurement(1.0 / 11, 0.5), all.points().get(2));
        assertEquals(new Measurement(1.0 / 11, 0.5), all.points().get(3));
        assertEquals(new Measurement(1.0, 1.0), all.points().get(4));
    }

    @Test
    void perfectAndInvertedScores() {
        float[] s = new float[13];
        for (int i = 0; i < 13; i++) s[i] = i < 4 ? 10 + i : i - 4;
        assertEquals(1.0, Roc.curve(PruneScores.ofFlat(G, s), edges(0, 1, 2, 3), true).auc(), 1e-12);
        assertEquals(0.0, Roc.curve(PruneScores.ofFlat(G, s), edges(4, 5), true).auc(), 1e-12);
    }

    @Test
    void badInputIsNamed() {
        PruneScores zeros = PruneScores.zeros(G);
        assertThrows(IllegalArgumentException.class, () -> Roc.curve(zeros, Set.of()));
        Graph other = Graph.microModel(3, true, null);
        assertThrows(IllegalArgumentException.class, () -> Roc.curve(zeros, Set.of(other.edges().get(20))));
        float[] nan = new float[13];
        nan[3] = Float.NaN;
        assertThrows(IllegalArgumentException.class, () -> Roc.curve(PruneScores.ofFlat(G, nan), edges(1)));
        assertThrows(IllegalArgumentException.class,
            () -> Roc.auc(List.of(new Measurement(0.5, 0), new Measurement(0.2, 1))));
    }
}
