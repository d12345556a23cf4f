package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import org.junit.jupiter.api.Test;

/** Names, layers, module layout, edge order and lookups of the graph factories. */
class GraphStructureTest {

    private static final Graph TINY = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);

    @Test
    void edgesFollowMaskFlatteningOrder() {
        for (Graph g : List.of(TINY, Graph.transformerFactorized(TransformerShape.parallel(3, 2), false, 4),
                Graph.transformerUnfactorized(TransformerShape.sequential(2, 3), 5), Graph.microModel(3, true, 2))) {
            int i = 0;
            for (DestModule dm : g.destModules()) {
                long[] shape = dm.maskShape();
                int nSeq = g.seqLen().orElse(1);
                for (int s = 0; s < nSeq; s++) {
                    for (int row = 0; row < dm.nodes().size(); row++) {
                        for (int col = 0; col < dm.nIn(); col++) {
                            Edge e = g.edges().get(i);
                            assertEquals(dm.nodes().get(row), e.dest(), g + " edge " + i);
                            assertEquals(dm.inSrcStart() + col, e.src().srcIdx(), g + " edge " + i);
                            assertEquals(g.seqLen().isPresent() ? OptionalInt.of(s) : OptionalInt.empty(),
                                    e.seqIdx());
                            // Row-major offset of patchIdx within the module's mask equals i - module start.
                            int[] p = e.patchIdx();
                            assertEquals(shape.length, p.length);
                            long flat = 0;
                            for (int d = 0; d < p.length; d++) {
                                flat = flat * shape[d] + p[d];
                            }
                            assertEquals(i - flatStart(g, dm), flat);
                            assertEquals(i, g.edgeIndex(e));
                            i++;
                        }
                    }
                }
            }
            assertEquals(g.nEdges(), i);
        }
    }

    private static int flatStart(Graph g, DestModule dm) {
        int start = 0;
        for (DestModule m : g.destModules()) {
            if (m == dm) {
                return start;
            }
            start += m.maskNumel();
        }
        throw new AssertionError(dm);
    }

    @Test
    void factorizedEdgeRuleIsEarlierLayer() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(3, 2), false, null);
        int expected = 0;
        for (SrcNode s : g.srcs()) {
            for (DestNode d : g.dests()) {
                if (s.layer() < d.layer()) {
                    expected++;
                    assertTrue(g.containsEdgeNamed(s.name() + "->" + d.name()));
                } else {
                    assertFalse(g.containsEdgeNamed(s.name() + "->" + d.name()), s + "->" + d);
                }
            }
        }
        assertEquals(expected, g.nEdges());
    }

    @Test
    void unfactorizedEdgeRuleIsNextLayer() {
        Graph g = Graph.transformerUnfactorized(TransformerShape.sequential(3, 2), null);
        int expected = 0;
        for (SrcNode s : g.srcs()) {
            for (DestNode d : g.dests()) {
                boolean edge = s.layer() + 1 == d.layer();
                expected += edge ? 1 : 0;
                assertEquals(edge, g.containsEdgeNamed(s.name() + "->" + d.name()), s + "->" + d);
            }
        }
        assertEquals(expected, g.nEdges());
    }

    @Test
    void gpt2SeparateQkvMaskShapesMatchSpec41() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, null);
        for (int b = 0; b < 12; b++) {
            assertArrayEquals(new long[] {12, 1 + 13 * b}, g.destModule("blocks." + b + ".hook_q_input").maskShape());
            assertArrayEquals(new long[] {13 + 13 * b}, g.destModule("blocks." + b + ".hook_mlp_in").maskShape());
        }
        assertArrayEquals(new long[] {157}, g.destModule("blocks.11.hook_resid_post").maskShape());
        Graph t = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, 13);
        assertArrayEquals(new long[] {13, 12, 27}, t.destModule("blocks.2.hook_k_input").maskShape());
        assertEquals(13 * 12 * 27, t.destModule("blocks.2.hook_k_input").maskNumel());
    }

    @Test
    void canonicalModuleOrderAndNames() {
        Graph combined = Graph.transformerFactorized(TransformerShape.sequential(2, 2), false, null);
        assertEquals(List.of("blocks.0.hook_attn_in", "blocks.0.hook_mlp_in", "blocks.1.hook_attn_in",
                "blocks.1.hook_mlp_in", "blocks.1.hook_resid_post"), combined.destModuleNames());
        assertEquals("A1.1", combined.destModule("blocks.1.hook_attn_in").nodes().get(1).name());

        Graph parallel = Graph.transformerFactorized(TransformerShape.parallel(2, 2), true, null);
        assertEquals(List.of("blocks.0.hook_q_input", "blocks.0.hook_k_input", "blocks.0.hook_v_input",
                "blocks.0.hook_mlp_in", "blocks.1.hook_q_input", "blocks.1.hook_k_input", "blocks.1.hook_v_input",
                "blocks.1.hook_mlp_in", "blocks.1.hook_resid_post"), parallel.destModuleNames());
        // Parallel: attention and MLP share layer b+1; Resid End at L+1.
        assertEquals(1, parallel.src("MLP 0").layer());
        assertEquals(1, parallel.src("A0.1").layer());
        assertEquals(1, parallel.dest("MLP 0").layer());
        assertEquals(3, parallel.dest("Resid End").layer());
        // ...so a parallel MLP cannot read its own block's heads: only Resid Start.
        assertEquals(1, parallel.destModule("blocks.0.hook_mlp_in").nIn());

        Graph attnOnly = Graph.transformerFactorized(TransformerShape.attnOnly(2, 2), true, null);
        assertEquals(3, attnOnly.dest("Resid End").layer());
        assertTrue(attnOnly.srcModuleOrEmpty("blocks.0.hook_mlp_out").isEmpty());
        assertEquals(5, attnOnly.destModule("blocks.1.hook_resid_post").nIn());

        Graph unf = Graph.transformerUnfactorized(TransformerShape.sequential(2, 2), null);
        assertEquals(List.of("blocks.0.hook_resid_mid", "blocks.0.hook_resid_post", "blocks.1.hook_resid_mid",
                "blocks.1.hook_resid_post"), unf.destModuleNames());
        List<String> srcNames = new ArrayList<>();
        unf.srcs().forEach(s -> srcNames.add(s.name()));
        assertEquals(List.of("Resid Start", "A0.0", "A0.1", "Resid Mid 0", "MLP 0", "Resid Post 0", "A1.0", "A1.1",
                "Resid Mid 1", "MLP 1"), srcNames);
        List<String> destNames = new ArrayList<>();
        unf.dests().forEach(d -> destNames.add(d.name()));
        assertEquals(List.of("Resid Mid 0", "Resid Post 0", "Resid Mid 1", "Resid End"), destNames);
        assertEquals(new DestNode("Resid Post 0", "blocks.0.hook_resid_post", 2, OptionalInt.empty(), 3),
                unf.dest("Resid Post 0"));
        assertEquals(new DestNode("Resid Mid 1", "blocks.1.hook_resid_mid", 3, OptionalInt.empty(), 5),
                unf.dest("Resid Mid 1"));
        assertEquals(new SrcNode("Resid Post 0", "blocks.0.hook_resid_post", 2, 5), unf.src("Resid Post 0"));
        DestModule mid1 = unf.destModule("blocks.1.hook_resid_mid");
        assertEquals(5, mid1.inSrcStart());
        assertEquals(3, mid1.nIn());
        assertArrayEquals(new long[] {3}, mid1.maskShape());
        Edge e = unf.edge("A1.1->Resid Mid 1");
        assertArrayEquals(new int[] {2}, e.patchIdx());
        assertEquals(new SrcModule("blocks.0.hook_resid_post", 2, 5, 1, false),
                unf.srcModule("blocks.0.hook_resid_post"));
        // hook_resid_mid is both a dest and a src module.
        assertTrue(unf.srcModuleOrEmpty("blocks.0.hook_resid_mid").isPresent());
        assertTrue(unf.destModuleOrEmpty("blocks.0.hook_resid_mid").isPresent());

        Graph microUnf = Graph.microModel(2, false, null);
        assertEquals(List.of("resids.0", "output"), microUnf.destModuleNames());
        assertEquals(3, microUnf.destModule("output").inSrcStart());
    }

    @Test
    void srcModulesAreContiguousSlices() {
        List<SrcModule> expected = List.of(
                new SrcModule("blocks.0.hook_resid_pre", 0, 0, 1, false),
                new SrcModule("blocks.0.attn.hook_result", 1, 1, 4, true),
                new SrcModule("blocks.0.hook_mlp_out", 2, 5, 1, false),
                new SrcModule("blocks.1.attn.hook_result", 3, 6, 4, true),
                new SrcModule("blocks.1.hook_mlp_out", 4, 10, 1, false));
        assertEquals(expected, TINY.srcModules());
        assertEquals(10, TINY.srcModule("blocks.1.attn.hook_result").srcEnd());
    }

    @Test
    void lookupsAndErrors() {
        Edge e = TINY.edge("A0.2->A1.3.V", OptionalInt.empty());
        assertArrayEquals(new int[] {3, 3}, e.patchIdx());
        assertEquals(List.of(e), TINY.edgesNamed("A0.2->A1.3.V"));
        assertEquals(e, TINY.edge("A0.2->A1.3.V"));

        IllegalArgumentException noEdge = assertThrows(IllegalArgumentException.class,
                () -> TINY.edge("A1.0->A0.0.Q", OptionalInt.empty()));
        assertTrue(noEdge.getMessage().contains("A1.0->A0.0.Q"), noEdge.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TINY.edge("A0.0->A1.0.Q", OptionalInt.of(0)));
        assertThrows(IllegalArgumentException.class, () -> TINY.edgesNamed("nope"));

        IllegalArgumentException noModule = assertThrows(IllegalArgumentException.class,
                () -> TINY.destModule("blocks.9.hook_q_input"));
        assertTrue(noModule.getMessage().contains("blocks.9.hook_q_input"), noModule.getMessage());
        assertTrue(noModule.getMessage().contains("blocks.1.hook_resid_post"), noModule.getMessage());
        assertThrows(IllegalArgumentException.class, () -> TINY.srcModule("blocks.0.hook_q_input"));
        assertEquals(Optional.empty(), TINY.destModuleOrEmpty("blocks.0.attn.hook_result"));

        Graph token = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, 15);
        List<Edge> all = token.edgesNamed("MLP 0->Resid End");
        assertEquals(15, all.size());
        for (int s = 0; s < 15; s++) {
            assertEquals(OptionalInt.of(s), all.get(s).seqIdx());
            assertArrayEquals(new int[] {s, 5}, all.get(s).patchIdx());
            assertEquals(all.get(s), token.edge("MLP 0->Resid End", OptionalInt.of(s)));
        }
        assertThrows(IllegalArgumentException.class, () -> token.edge("MLP 0->Resid End", OptionalInt.of(15)));
        assertThrows(IllegalArgumentException.class, () -> token.edge("MLP 0->Resid End", OptionalInt.empty()));

        // An edge of another graph is rejected, even with the same name.
        Edge foreign = token.edgesNamed("MLP 0->Resid End").get(0);
        assertThrows(IllegalArgumentException.class, () -> TINY.edgeIndex(foreign));
        Edge wrongPair = new Edge(TINY.src("MLP 1"), TINY.dest("MLP 0"));
        assertThrows(IllegalArgumentException.class, () -> TINY.edgeIndex(wrongPair));
    }

    @Test
    void factoryValidation() {
        assertThrows(IllegalArgumentException.class, () -> new TransformerShape(0, 4, true, false));
        assertThrows(IllegalArgumentException.class, () -> new TransformerShape(2, 0, true, false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new TransformerShape(2, 2, false, true));
        assertTrue(e.getMessage().contains("parallelAttnMlp"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> Graph.transformerFactorized(TransformerShape.sequential(2, 2), true, 0));
        assertThrows(IllegalArgumentException.class, () -> Graph.microModel(0, true, null));
    }

    @Test
    void valueSemantics() {
        Graph a = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        assertEquals(TINY, a);
        assertEquals(TINY.hashCode(), a.hashCode());
        assertNotEquals(TINY, Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, 3));
        assertNotEquals(TINY, Graph.transformerFactorized(TransformerShape.sequential(2, 4), false, null));
        assertEquals("Graph[factorized, srcs=11, dests=27, destModules=9, edges=110]", TINY.toString());
        assertThrows(UnsupportedOperationException.class, () -> TINY.srcs().clear());
        assertThrows(UnsupportedOperationException.class, () -> TINY.edges().remove(0));
        long[] shape = TINY.destModule("blocks.1.hook_q_input").maskShape();
        shape[0] = 99;
        assertArrayEquals(new long[] {4, 6}, TINY.destModule("blocks.1.hook_q_input").maskShape());
    }

    @Test
    void largeGraphBuildsQuicklyAndIndexesConsistently() {
        Graph g = Graph.transformerFactorized(TransformerShape.parallel(32, 32), false, null);
        assertEquals(542_257, g.nEdges());
        for (int i = 0; i < g.nEdges(); i += 9_973) {
            assertEquals(i, g.edgeIndex(g.edges().get(i)));
        }
        Edge last = g.edges().get(g.nEdges() - 1);
        assertEquals("MLP 31->Resid End", last.name());
        assertEquals(g.nEdges() - 1, g.edgeIndex(g.edge("MLP 31->Resid End")));
    }
}
