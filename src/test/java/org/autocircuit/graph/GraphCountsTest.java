package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/** Node and edge counts of AutoCircuit's graphs for known models, each also checked against the closed-form formulas. */
class GraphCountsTest {

    /** Edges per position of a factorized TL graph; q = 3 with separate Q/K/V, else 1. */
    static long closedFormEdges(TransformerShape s, boolean separateQkv) {
        long l = s.nLayers();
        long h = s.nHeads();
        long q = separateQkv ? 3 : 1;
        if (!s.hasMlp()) {
            return q * h * l + q * h * h * l * (l - 1) / 2 + 1 + l * h;
        }
        if (s.parallelAttnMlp()) {
            return (q * h + 1) * (l + (h + 1) * l * (l - 1) / 2) + 1 + l * (h + 1);
        }
        return l * (q * h + 1 + h) + (h + 1) * (q * h + 1) * l * (l - 1) / 2 + (1 + l * (h + 1));
    }

    static long closedFormSrcs(TransformerShape s) {
        return 1 + (long) s.nLayers() * (s.nHeads() + (s.hasMlp() ? 1 : 0));
    }

    static long closedFormDests(TransformerShape s, boolean separateQkv) {
        int q = separateQkv ? 3 : 1;
        return 1 + (long) s.nLayers() * (q * s.nHeads() + (s.hasMlp() ? 1 : 0));
    }

    static Stream<Arguments> specTable() {
        return Stream.of(
                Arguments.of("gpt2-small separate", TransformerShape.sequential(12, 12), true, 157, 445, 32_491),
                Arguments.of("gpt2-small combined", TransformerShape.sequential(12, 12), false, 157, 157, 11_611),
                Arguments.of("attn-only-4l", TransformerShape.attnOnly(4, 8), true, 33, 97, 1_281),
                Arguments.of("mini combined", TransformerShape.sequential(2, 2), false, 7, 7, 26),
                Arguments.of("mini separate", TransformerShape.sequential(2, 2), true, 7, 15, 46),
                Arguments.of("pythia-2.8b combined", TransformerShape.parallel(32, 32), false, 1_057, 1_057, 542_257),
                Arguments.of("pythia-70m combined", TransformerShape.parallel(6, 8), false, 55, 55, 1_324),
                Arguments.of("pythia-70m separate", TransformerShape.parallel(6, 8), true, 55, 151, 3_580),
                Arguments.of("tracr-xproportion", TransformerShape.sequential(2, 1), true, 5, 9, 23),
                Arguments.of("tracr-reverse", TransformerShape.sequential(4, 1), true, 9, 17, 77));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("specTable")
    void factorizedCountsMatchSpecTableAndFormula(String label, TransformerShape shape, boolean separateQkv,
                                                  int srcs, int dests, int edges) {
        Graph g = Graph.transformerFactorized(shape, separateQkv, null);
        assertEquals(srcs, g.nSrcs(), label + " srcs");
        assertEquals(srcs, g.srcs().size(), label + " srcs list");
        assertEquals(dests, g.dests().size(), label + " dests");
        assertEquals(edges, g.nEdges(), label + " edges");
        assertEquals(edges, g.edges().size(), label + " edges list");
        assertEquals(closedFormSrcs(shape), srcs, label + " src formula");
        assertEquals(closedFormDests(shape, separateQkv), dests, label + " dest formula");
        assertEquals(closedFormEdges(shape, separateQkv), edges, label + " edge formula");
        assertEquals(edges, g.destModules().stream().mapToInt(DestModule::maskNumel).sum(), label + " mask sizes");
    }

    @Test
    void tokenGraphsMultiplyByPositions() {
        assertEquals(23 * 6, Graph.transformerFactorized(TransformerShape.sequential(2, 1), true, 6).nEdges());
        assertEquals(77 * 6, Graph.transformerFactorized(TransformerShape.sequential(4, 1), true, 6).nEdges());
        // gpt2 IOI token task, S = 13: 422,383 edges in total.
        Graph ioi = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, 13);
        assertEquals(422_383, ioi.nEdges());
        assertEquals(422_383, ioi.edges().size());
        assertEquals(13L * closedFormEdges(TransformerShape.sequential(12, 12), true), ioi.nEdges());
    }

    @Test
    void formulaHoldsOverAGridOfShapes() {
        for (int l = 1; l <= 6; l++) {
            for (int h = 1; h <= 5; h++) {
                for (TransformerShape s : new TransformerShape[] {TransformerShape.sequential(l, h),
                        TransformerShape.attnOnly(l, h), TransformerShape.parallel(l, h)}) {
                    for (boolean sep : new boolean[] {true, false}) {
                        Graph g = Graph.transformerFactorized(s, sep, null);
                        assertEquals(closedFormEdges(s, sep), g.nEdges(), s + " sep=" + sep);
                        assertEquals(closedFormSrcs(s), g.nSrcs(), s + " srcs");
                        assertEquals(closedFormDests(s, sep), g.dests().size(), s + " dests");
                    }
                }
                assertEquals((long) l * (h + 3),
                        Graph.transformerUnfactorized(TransformerShape.sequential(l, h), null).nEdges());
                assertEquals((long) l * (h + 1),
                        Graph.transformerUnfactorized(TransformerShape.attnOnly(l, h), null).nEdges());
            }
        }
    }

    @Test
    void microModelCounts() {
        Graph f = Graph.microModel(2, true, null);
        assertEquals(5, f.nSrcs());
        assertEquals(5, f.dests().size());
        assertEquals(13, f.nEdges());
        assertEquals(39, Graph.microModel(2, true, 3).nEdges());
        Graph u = Graph.microModel(2, false, null);
        assertEquals(6, u.nEdges());
        assertEquals(18, Graph.microModel(2, false, 3).nEdges());
        // Unfactorized micro: 3 srcs per layer, 1 dest per layer, 3 edges per dest.
        assertEquals(6, u.nSrcs());
        assertEquals(2, u.dests().size());
    }

    @Test
    void gpt2UnfactorizedHas180EdgesPerPosition() {
        Graph g = Graph.transformerUnfactorized(TransformerShape.sequential(12, 12), null);
        assertEquals(180, g.nEdges());
        assertEquals(12 * (12 + 3), g.nEdges());
        assertEquals(180 * 15, Graph.transformerUnfactorized(TransformerShape.sequential(12, 12), 15).nEdges());
        // One Resid Start, then per block: the heads, Resid Mid, MLP, and Resid Post (except the last).
        assertEquals(1 + 12 * 14 + 11, g.nSrcs());
        assertEquals(24, g.dests().size());
    }

    @Test
    void unfactorizedRejectsParallel() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Graph.transformerUnfactorized(TransformerShape.parallel(6, 8), null));
        assertEquals(true, e.getMessage().contains("sequential"), e.getMessage());
    }
}
