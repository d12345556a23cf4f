package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.graph.PruneScores;

/**
 * AutoCircuit's {@code prune_score_similarities}: how much two algorithms' circuits of the same size overlap.
 *
 * <p>For an edge count k, each algorithm's circuit is every edge with |score| ≥ its k-th largest |score|
 * ({@link PruneScores#threshold}). If ties make either circuit larger than k, the similarity is NaN; otherwise it is
 * |common edges| / k.
 *
 * <p>One deliberate difference: AutoCircuit divides 0 by 0 (and raises) for k = 0; here the similarity of two empty
 * circuits is NaN, like any other undefined overlap.
 */
public final class PruneScoreSimilarity {
    private PruneScoreSimilarity() {}

    /**
     * The overlap of the top-{@code edgeCount} circuits of two score sets over the same graph, in [0, 1], or NaN when a
     * circuit's real size differs from {@code edgeCount} (ties) or {@code edgeCount} is 0.
     *
     * @throws IllegalArgumentException if the graphs differ or {@code edgeCount} is outside [0, nEdges]
     */
    public static double similarity(PruneScores a, PruneScores b, int edgeCount) {
        if (a == null || b == null) throw new IllegalArgumentException("prune scores must not be null");
        if (!a.graph().equals(b.graph())) {
            throw new IllegalArgumentException("prune scores a and b belong to different graphs");
        }
        float thresholdA = a.threshold(edgeCount);
        float thresholdB = b.threshold(edgeCount);
        float[] flatA = a.flat();
        float[] flatB = b.flat();
        int realA = 0;
        int realB = 0;
        int common = 0;
        for (int i = 0; i < flatA.length; i++) {
            boolean inA = Math.abs(flatA[i]) >= thresholdA;
            boolean inB = Math.abs(flatB[i]) >= thresholdB;
            if (inA) realA++;
            if (inB) realB++;
            if (inA && inB) common++;
        }
        if (realA != edgeCount || realB != edgeCount || edgeCount == 0) return Double.NaN;
        return (double) common / edgeCount;
    }

    /**
     * Every pair of algorithms in the upper triangle, diagonal included, in the iteration order of
     * {@code algoPruneScores} (pass a {@link LinkedHashMap}): {@code result.get(k).get(algo1).get(algo2)} exists when
     * algo2 does not come before algo1.
     *
     * @param algoPruneScores algorithm key → its scores, all over the same graph
     * @param edgeCounts      the circuit sizes k, each in [0, nEdges]
     * @return edge count → algo1 → algo2 → similarity (unmodifiable, in input order)
     */
    public static Map<Integer, Map<String, Map<String, Double>>> similarities(Map<String, PruneScores> algoPruneScores,
                                                                            List<Integer> edgeCounts) {
        if (algoPruneScores == null || algoPruneScores.isEmpty()) {
            throw new IllegalArgumentException("algoPruneScores must hold at least one algorithm");
        }
        if (edgeCounts == null || edgeCounts.isEmpty()) {
            throw new IllegalArgumentException("edgeCounts must not be empty");
        }
        Map<Integer, Map<String, Map<String, Double>>> result = new LinkedHashMap<>();
        for (int k : edgeCounts) result.put(k, new LinkedHashMap<>());
        List<String> algos = new ArrayList<>(algoPruneScores.keySet());
        for (int i = 0; i < algos.size(); i++) {
            for (int j = i; j < algos.size(); j++) {
                PruneScores a = algoPruneScores.get(algos.get(i));
                PruneScores b = algoPruneScores.get(algos.get(j));
                for (int k : edgeCounts) {
                    result.get(k).computeIfAbsent(algos.get(i), x -> new LinkedHashMap<>())
                        .put(algos.get(j), similarity(a, b, k));
                }
            }
        }
        Map<Integer, Map<String, Map<String, Double>>> frozen = new LinkedHashMap<>();
        result.forEach((k, byAlgo) -> {
            Map<String, Map<String, Double>> inner = new LinkedHashMap<>();
            byAlgo.forEach((a1, row) -> inner.put(a1, Collections.unmodifiableMap(row)));
            frozen.put(k, Collections.unmodifiableMap(inner));
        });
        return Collections.unmodifiableMap(frozen);
    }
}
