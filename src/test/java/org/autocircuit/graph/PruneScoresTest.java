package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** PruneScores: layout, thresholds, circuit_prune_scores, validation. */
class PruneScoresTest {

    private static final Graph TINY = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
    private static final Graph MICRO_TOKEN = Graph.microModel(2, true, 3);

    /** Scores 0, 1, 2, ... in edge order. */
    private static PruneScores iota(Graph g) {
        float[] v = new float[g.nEdges()];
        for (int i = 0; i < v.length; i++) {
            v[i] = i;
        }
        return PruneScores.ofFlat(g, v);
    }

    @Test
    void flatOrderIsEdgeOrderAndScoreFollowsPatchIdx() {
        for (Graph g : List.of(TINY, MICRO_TOKEN,
                Graph.transformerUnfactorized(TransformerShape.sequential(2, 3), 4))) {
            PruneScores ps = iota(g);
            float[] flat = ps.flat();
            for (int i = 0; i < g.nEdges(); i++) {
                Edge e = g.edges().get(i);
                assertEquals(flat[i], ps.score(e), e.toString());
                // Index the module's row-major mask with patchIdx.
                long[] shape = ps.shape(e.dest().moduleName());
                int[] p = e.patchIdx();
                int off = 0;
                for (int d = 0; d < p.length; d++) {
                    off = off * (int) shape[d] + p[d];
                }
                assertEquals((float) i, ps.module(e.dest().moduleName())[off], e.toString());
            }
        }
    }

    @Test
    void moduleSlicesAndShapes() {
        PruneScores ps = iota(TINY);
        assertEquals(TINY.destModuleNames(), ps.moduleNames());
        assertArrayEquals(new float[] {0, 1, 2, 3}, ps.module("blocks.0.hook_q_input"));
        assertArrayEquals(new float[] {12, 13, 14, 15, 16}, ps.module("blocks.0.hook_mlp_in"));
        assertArrayEquals(new long[] {4, 6}, ps.shape("blocks.1.hook_v_input"));
        float[] end = ps.module("blocks.1.hook_resid_post");
        assertEquals(11, end.length);
        assertEquals(99f, end[0]);
        assertEquals(109f, end[10]);
        assertEquals(109f, ps.score(TINY.edge("MLP 1->Resid End")));
        // Copies, not views.
        ps.module("blocks.0.hook_q_input")[0] = 77;
        ps.flat()[0] = 77;
        assertEquals(0f, ps.score(TINY.edges().get(0)));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ps.module("nope"));
        assertTrue(e.getMessage().contains("nope"), e.getMessage());
        Map<String, float[]> dict = ps.byModule();
        assertEquals(ps, PruneScores.of(TINY, dict));
    }

    @Test
    void thresholdAndTies() {
        PruneScores ps = PruneScores.zeros(TINY)
                .with(TINY.edge("A0.0->MLP 0"), -3f)
                .with(TINY.edge("MLP 0->Resid End"), 2f)
                .with(TINY.edge("A1.1->Resid End"), 2f)
                .with(TINY.edge("Resid Start->A0.3.V"), 1f);
        assertEquals(Float.POSITIVE_INFINITY, ps.threshold(0));
        assertEquals(3f, ps.threshold(1));
        assertEquals(2f, ps.threshold(2));
        assertEquals(2f, ps.threshold(3));
        assertEquals(1f, ps.threshold(4));
        assertEquals(0f, ps.threshold(5));
        assertEquals(0f, ps.threshold(110));
        // Ties admit more edges than asked for: k = 2 patches 3 edges.
        assertEquals(3, ps.countAtLeast(ps.threshold(2)));
        assertEquals(0, ps.countAtLeast(ps.threshold(0)));
        assertEquals(110, ps.countAtLeast(ps.threshold(5)));
        float[] desc = ps.descAbs();
        assertEquals(110, desc.length);
        assertArrayEquals(new float[] {3, 2, 2, 1, 0}, java.util.Arrays.copyOf(desc, 5));
        assertEquals(4, ps.countNonZero());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ps.threshold(111));
        assertTrue(e.getMessage().contains("111"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> ps.threshold(-1));
    }

    @Test
    void circuitByNameSelectsEveryPosition() {
        PruneScores ps = PruneScores.circuit(MICRO_TOKEN, Set.of("B0.1->Resid End", "Resid Start->B0.0"));
        assertEquals(6, ps.countNonZero());
        for (int s = 0; s < 3; s++) {
            assertEquals(1f, ps.score(MICRO_TOKEN.edge("B0.1->Resid End", OptionalInt.of(s))));
            assertEquals(1f, ps.score(MICRO_TOKEN.edge("Resid Start->B0.0", OptionalInt.of(s))));
            assertEquals(0f, ps.score(MICRO_TOKEN.edge("B0.0->B1.1", OptionalInt.of(s))));
        }
        // An Edge selects one position only; names and edges can be mixed.
        Edge at2 = MICRO_TOKEN.edge("B0.0->B1.1", OptionalInt.of(2));
        PruneScores mixed = PruneScores.circuit(MICRO_TOKEN, List.of(at2, "B0.1->Resid End"));
        assertEquals(4, mixed.countNonZero());
        assertEquals(1f, mixed.score(at2));
        assertEquals(0f, mixed.score(MICRO_TOKEN.edge("B0.0->B1.1", OptionalInt.of(1))));
        // output mask at position 2: [Resid Start, B0.0, B0.1, B1.0, B1.1] -> B0.1 is column 2.
        assertArrayEquals(new float[] {0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0}, mixed.module("output"));

        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PruneScores.circuit(MICRO_TOKEN, List.of("B1.1->B0.0")));
        assertTrue(e.getMessage().contains("B1.1->B0.0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> PruneScores.circuit(MICRO_TOKEN, List.of(42)));
        Edge foreign = TINY.edges().get(0);
        assertThrows(IllegalArgumentException.class, () -> PruneScores.circuit(MICRO_TOKEN, List.of(foreign)));
    }

    @Test
    void circuitByNameWithScores() {
        // The run_circuits scores of micro_model.json, by name (the intended quirk 8 of docs/quirks.md behaviour).
        Map<String, Float> scores = new LinkedHashMap<>();
        scores.put("B0.1->Resid End", 3f);
        scores.put("B0.0->B1.1", 2f);
        scores.put("Resid Start->B0.0", 1f);
        Graph micro = Graph.microModel(2, true, null);
        PruneScores ps = PruneScores.circuit(micro, scores);
        assertEquals(3f, ps.score(micro.edge("B0.1->Resid End")));
        assertEquals(2f, ps.score(micro.edge("B0.0->B1.1")));
        assertEquals(3, ps.countNonZero());
        assertEquals(2f, ps.threshold(2));
        PruneScores token = PruneScores.circuit(MICRO_TOKEN, scores);
        assertEquals(9, token.countNonZero());
        assertEquals(3f, token.threshold(3));
        assertEquals(2f, token.threshold(4));
        Map<String, Float> bad = new HashMap<>();
        bad.put("B0.1->Resid End", null);
        assertThrows(IllegalArgumentException.class, () -> PruneScores.circuit(micro, bad));
        assertThrows(IllegalArgumentException.class, () -> PruneScores.circuit(micro, Map.of("x->y", 1f)));
    }

    @Test
    void ofValidatesModulesAndLengths() {
        Map<String, float[]> byModule = new HashMap<>();
        for (DestModule dm : TINY.destModules()) {
            byModule.put(dm.moduleName(), new float[dm.maskNumel()]);
        }
        assertEquals(PruneScores.zeros(TINY), PruneScores.of(TINY, byModule));

        Map<String, float[]> missing = new HashMap<>(byModule);
        missing.remove("blocks.1.hook_mlp_in");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> PruneScores.of(TINY, missing));
        assertTrue(e.getMessage().contains("blocks.1.hook_mlp_in") && e.getMessage().contains("10"), e.getMessage());

        Map<String, float[]> wrongLength = new HashMap<>(byModule);
        wrongLength.put("blocks.1.hook_q_input", new float[23]);
        e = assertThrows(IllegalArgumentException.class, () -> PruneScores.of(TINY, wrongLength));
        assertTrue(e.getMessage().contains("blocks.1.hook_q_input") && e.getMessage().contains("24")
                && e.getMessage().contains("23"), e.getMessage());

        Map<String, float[]> unknown = new HashMap<>(byModule);
        unknown.put("blocks.7.hook_q_input", new float[1]);
        e = assertThrows(IllegalArgumentException.class, () -> PruneScores.of(TINY, unknown));
        assertTrue(e.getMessage().contains("blocks.7.hook_q_input"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class, () -> PruneScores.ofFlat(TINY, new float[109]));
        assertTrue(e.getMessage().contains("110") && e.getMessage().contains("109"), e.getMessage());

        // The input arrays are copied.
        float[] flat = new float[110];
        PruneScores ps = PruneScores.ofFlat(TINY, flat);
        flat[0] = 5;
        assertEquals(0f, ps.score(TINY.edges().get(0)));
    }

    @Test
    void valueSemanticsAndHelpers() {
        PruneScores a = PruneScores.filled(TINY, 0.5f);
        PruneScores b = PruneScores.filled(Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null),
                0.5f);
        assertEquals(a, b);
        assertEquals(a.hashCode(), b.hashCode());
        assertEquals(110, a.countNonZero());
        Edge e = TINY.edges().get(7);
        PruneScores c = a.with(e, 9f);
        assertNotEquals(a, c);
        assertEquals(0.5f, a.score(e));
        assertEquals(9f, c.score(e));
        assertEquals(TINY, c.graph());
        PruneScores neg = c.map(v -> -v);
        assertEquals(-9f, neg.score(e));
        assertEquals(9f, neg.threshold(1));
        assertFalse(neg.hasNaN());
        assertTrue(neg.with(e, Float.NaN).hasNaN());
        assertNotEquals(PruneScores.zeros(TINY), PruneScores.zeros(Graph.microModel(2, true, null)));
        String s = c.toString();
        assertTrue(s.startsWith("PruneScores[edges=110, nonZero=110, top={" + e + "=9.0"), s);
        assertEquals("PruneScores[edges=110, nonZero=0]", PruneScores.zeros(TINY).toString());
    }
}
