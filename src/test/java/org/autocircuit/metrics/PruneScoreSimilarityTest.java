package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.junit.jupiter.api.Test;

class PruneScoreSimilarityTest {
    private static final Graph G = Graph.microModel(2, true, null);       // 13 edges

    private static PruneScores scores(float... first) {
        float[] v = new float[G.nEdges()];
        System.arraycopy(first, 0, v, 0, first.length);
        return PruneScores.ofFlat(G, v);
    }

    @Test
    void overlapOfTopKCircuits() {
        PruneScores a = scores(5, 4, 3, 2, 1);                         // ranking 0, 1, 2, 3, 4
        PruneScores b = scores(-5, 1, 3, 4, 2);                        // |·| ranking 0, 3, 2, 4, 1
        assertEquals(1.0, PruneScoreSimilarity.similarity(a, b, 1), 0.0);   // {0} vs {0}
        assertEquals(0.5, PruneScoreSimilarity.similarity(a, b, 2), 0.0);   // {0,1} vs {0,3}
        assertEquals(2 / 3.0, PruneScoreSimilarity.similarity(a, b, 3), 1e-15);  // {0,1,2} vs {0,3,2}
        assertEquals(1.0, PruneScoreSimilarity.similarity(a, b, 5), 0.0);
        assertTrue(Double.isNaN(PruneScoreSimilarity.similarity(a, b, 0)));
        // Ties at the threshold make the real circuit larger than k → NaN.
        PruneScores tied = scores(5, 4, 4, 1);
        assertTrue(Double.isNaN(PruneScoreSimilarity.similarity(a, tied, 2)));
        assertEquals(1.0, PruneScoreSimilarity.similarity(a, tied, 3), 0.0);
    }

    @Test
    void upperTriangleWithDiagonal() {
        Map<String, PruneScores> algos = new LinkedHashMap<>();
        algos.put("A", scores(5, 4, 3, 2, 1));
        algos.put("B", scores(-5, 1, 3, 4, 2));
        algos.put("C", scores(0, 0, 0, 0, 0, 9, 8));
        var sims = PruneScoreSimilarity.similarities(algos, List.of(2, 1));
        assertEquals(List.of(2, 1), List.copyOf(sims.keySet()));
        var at2 = sims.get(2);
        assertEquals(List.of("A", "B", "C"), List.copyOf(at2.get("A").keySet()));
        assertEquals(List.of("B", "C"), List.copyOf(at2.get("B").keySet()));
        assertEquals(List.of("C"), List.copyOf(at2.get("C").keySet()));
        assertFalse(at2.get("B").containsKey("A"));
        assertEquals(1.0, at2.get("A").get("A"), 0.0);
        assertEquals(0.5, at2.get("A").get("B"), 0.0);
        assertEquals(0.0, at2.get("A").get("C"), 0.0);
        assertEquals(1.0, sims.get(1).get("A").get("B"), 0.0);
    }

    @Test
    void rejectsMismatchedGraphs() {
        PruneScores other = PruneScores.zeros(Graph.microModel(2, true, 3));
        assertThrows(IllegalArgumentException.class,
            () -> PruneScoreSimilarity.similarity(scores(1), other, 1));
        assertThrows(IllegalArgumentException.class,
            () -> PruneScoreSimilarity.similarities(Map.of(), List.of(1)));
    }
}
