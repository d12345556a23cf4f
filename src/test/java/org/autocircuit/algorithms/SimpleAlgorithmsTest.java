package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Stream;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** Random scores, ground truth and activation magnitude. */
class SimpleAlgorithmsTest {

    static Graph componentGraph() {
        try (PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference())) {
            return model.graph();
        }
    }

    // ---- random ----

    /**
     * AutoCircuit drew {@code torch.rand_like} per mask from the global generator after {@code torch.manual_seed(0)},
     * in an order the golden file records. A fresh libtorch CPU generator seeded with 0, drawing in that order,
     * gives the same numbers bit for bit.
     */
    static Stream<Arguments> randomCases() {
        return GoldenFixture.cases("prune_scores_random_{graph}.json");
    }

    @Tag("golden")
    @ParameterizedTest(name = "{0} {1} graph")
    @MethodSource("randomCases")
    void randomReproducesAutoCircuitGivenItsDrawOrder(GoldenFixture fixture, String kind) {
        Graph g = fixture.buildGraph(kind);
        JsonNode golden = fixture.golden("prune_scores_random_" + kind + ".json");
        List<String> order = new ArrayList<>();
        golden.get("rng_draw_order_this_run").forEach(n -> order.add(n.asText()));
        PruneScores expected = Fixtures.pruneScores(g, golden.get("prune_scores"));
        PruneScores actual = RandomScores.scores(g, 0L, order);
        assertArrayEquals(expected.flat(), actual.flat(), fixture + ": random scores with seed 0 in AutoCircuit's draw order");
    }

    @Test
    void randomIsReproduciblePerSeedAndInRange() {
        Graph g = componentGraph();
        PruneScores a = RandomScores.scores(g, 7L), b = RandomScores.scores(g, 7L), c = RandomScores.scores(g, 8L);
        assertArrayEquals(a.flat(), b.flat(), "same seed, same scores");
        assertFalse(java.util.Arrays.equals(a.flat(), c.flat()), "another seed gives other scores");
        for (float v : a.flat()) assertTrue(v >= 0f && v < 1f, "U[0,1) value " + v);
        assertEquals(g.nEdges(), a.descAbs().length);
    }

    @Test
    void randomRunUsesTheRunSeed() {
        try (PatchableModel model = PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference())) {
            PruneRun run = PruneRun.of(model, List.of(microBatch(1))).withSeed(42);
            PruneAlgorithm algo = RandomScores::scores;
            assertArrayEquals(RandomScores.scores(model.graph(), 42).flat(), algo.scores(run).flat());
        }
    }

    // ---- ground truth ----

    @ParameterizedTest(name = "seqLen={0}")
    @ValueSource(ints = {0, 3})
    void groundTruthMarksOfficialEdges(int seqLenOrZero) {
        Graph g = Graph.microModel(2, true, seqLenOrZero == 0 ? null : seqLenOrZero);
        OptionalInt pos = seqLenOrZero == 0 ? OptionalInt.empty() : OptionalInt.of(2);
        Edge a = g.edge("B0.1->Resid End", pos), b = g.edge("Resid Start->B1.0", pos);
        PruneScores ps = GroundTruth.scores(g, Set.of(a, b));
        assertEquals(2, ps.countNonZero());
        assertEquals(1f, ps.score(a));
        assertEquals(1f, ps.score(b));
        assertEquals(0f, ps.score(g.edge("B0.0->B1.1", pos)));
    }

    @Test
    void groundTruthRejectsMissingOrForeignEdges() {
        Graph g = Graph.microModel(2, true, null);
        IllegalArgumentException none = assertThrows(IllegalArgumentException.class, () -> GroundTruth.scores(g, null));
        assertTrue(none.getMessage().contains("official edges"), none.getMessage());
        try (PatchableModel model = PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference())) {
            PruneRun run = PruneRun.of(model, List.of(microBatch(1)));
            assertThrows(IllegalArgumentException.class, () -> GroundTruth.scores(run));
        }
        // an edge of the token graph is not an edge of the component graph
        Edge foreign = Graph.microModel(2, true, 3).edge("B0.1->Resid End", OptionalInt.of(1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> GroundTruth.scores(g, Set.of(foreign)));
        assertTrue(e.getMessage().contains("B0.1->Resid End") && e.getMessage().contains("position 1"), e.getMessage());
        // an edge of a transformer graph is not an edge of the micro graph
        Edge other = Graph.transformerFactorized(new TransformerShape(2, 4, true, false), true, null).edges().get(0);
        IllegalArgumentException e2 = assertThrows(IllegalArgumentException.class, () -> GroundTruth.scores(g, Set.of(other)));
        assertTrue(e2.getMessage().contains(other.name()), e2.getMessage());
    }

    // ---- activation magnitude ----

    /**
     * Micro model: with clean input x (columns summing to s), the sources are x, [1,2]⊙x, [3,4]⊙x, [1,2]⊙y, [3,4]⊙y
     * with y = [5,7]⊙x, so the mean of source [a,b]⊙x is (a+b)·s/6 for a [1,3,2] input: 2, 3, 7, 19, 43 for
     * x = [[3,3],[2,2],[1,1]]. A batch with the input scaled by c gives c times that; the absolute value is taken
     * of the signed mean; batches are averaged.
     */
    @ParameterizedTest(name = "factorized={0}")
    @ValueSource(booleans = {true, false})
    void activationMagnitudeOnTheMicroModel(boolean factorized) {
        try (PatchableModel model = PatchableModel.of(new MicroModel(2), factorized, OutputSlice.LAST_SEQ, null, true, Kernels.reference())) {
            List<PromptPairBatch> batches = List.of(microBatch(1), microBatch(-2));   // |1| and |−2|: mean factor 1.5
            PruneScores ps = ActivationMagnitude.scores(PruneRun.of(model, batches));
            // the unfactorized graph adds Resid Post 0 = y (mean 12), and its destinations read from source 3 on
            java.util.Map<String, Double> srcMean = java.util.Map.of("Resid Start", 2.0, "B0.0", 3.0, "B0.1", 7.0,
                "Resid Post 0", 12.0, "B1.0", 19.0, "B1.1", 43.0);
            for (Edge e : model.graph().edges()) {
                assertEquals(1.5 * srcMean.get(e.src().name()), ps.score(e), 1e-4, e.name());
            }
        }
    }

    static PromptPairBatch microBatch(float scale) {
        float[] clean = {3, 3, 2, 2, 1, 1};
        float[] corrupt = new float[6];
        for (int i = 0; i < 6; i++) {
            corrupt[i] = -clean[i] * scale;
            clean[i] *= scale;
        }
        return new PromptPairBatch((long) Float.floatToIntBits(scale), 0, HostTensor.ofFloats(clean, 1, 3, 2),
            HostTensor.ofFloats(corrupt, 1, 3, 2), null, null, Answers.of(List.of(HostTensor.ofLongs(new long[] {1}, 1))),
            Answers.of(List.of(HostTensor.ofLongs(new long[] {0}, 1))));
    }
}
