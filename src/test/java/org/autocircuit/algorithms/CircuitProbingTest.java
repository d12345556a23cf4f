package org.autocircuit.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CancellationException;
import org.autocircuit.algorithms.CircuitProbing.CircuitSize;
import org.autocircuit.algorithms.CircuitProbing.Options;
import org.autocircuit.algorithms.SubnetworkProbing.FaithfulnessTarget;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.MaskFn;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.Progress;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Circuit probing: levels per circuit size, size validation, resume. */
class CircuitProbingTest {

    /**
     * Sizes [12, 4] on the MicroModel: circuit probing must equal its definition, subnetwork probing at size 4 and then
     * 12 (ascending, stages 0 and 1), the top-4 edges of the first at level 2, the top-12 of the second not yet
     * levelled at level 1, every other edge 0.
     */
    @Test
    void levelsComeFromOneProbingRunPerSizeSmallestFirst() {
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 8, 1);
        Options o = Options.defaults().withTreeOptimisation(true).withEpochs(20).withRegularizeLambda(0.1)
            .withCircuitSizes(List.of(CircuitSize.of(12), CircuitSize.of(4)));
        try (PatchableModel model = ProbingFixtures.microModel()) {
            PruneRun run = new PruneRun(model, batches, null, Progress.NONE, 4, null);
            float[] levels = CircuitProbing.scores(run, o).flat();

            PruneScores first = probe(run, o, 4, 0);
            PruneScores second = probe(run, o, 12, 1);
            float t4 = first.threshold(4), t12 = second.threshold(12);
            int atTwo = 0, atOne = 0;
            for (int i = 0; i < levels.length; i++) {
                float expected = first.flat()[i] >= t4 ? 2 : second.flat()[i] >= t12 ? 1 : 0;
                assertEquals(expected, levels[i], 0f, "edge " + model.graph().edges().get(i));
                if (levels[i] == 2) atTwo++;
                if (levels[i] == 1) atOne++;
            }
            assertTrue(atTwo >= 4, "the size-4 circuit (ties may add edges): " + atTwo);
            assertTrue(atTwo + atOne >= 12 && atTwo + atOne < 39, "the union of both circuits: " + (atTwo + atOne));
        }
    }

    private static PruneScores probe(PruneRun run, Options o, int size, int stage) {
        SubnetworkProbing.Stage s = new SubnetworkProbing.Stage(stage, "test", 0, 1, "test", null);
        return SubnetworkProbing.train(run, o.probing(size), s, null).scores();
    }

    @Test
    void addCircuitLevelsOnlyUnclaimedEdgesAtOrAboveTheThreshold() {
        Graph g = Graph.microModel(1, true, null);   // 5 edges
        PruneScores s = PruneScores.ofFlat(g, new float[] {0.5f, 3f, 2f, 2f, 1f});
        assertArrayEquals(new float[] {0, 3, 3, 3, 0}, CircuitProbing.addCircuit(new float[5], s, 2, 3), 0f,
            "the top-2 threshold is 2, and the tie joins");
        assertArrayEquals(new float[] {0, 5, 2, 2, 0}, CircuitProbing.addCircuit(new float[] {0, 5, 0, 0, 0}, s, 3, 2), 0f,
            "an edge a smaller circuit claimed keeps its level");
    }

    @Test
    void trueSizeNeedsOfficialEdges() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> CircuitProbing.resolveSizes(List.of(CircuitSize.TRUE_SIZE), null, 39));
        assertTrue(e.getMessage().contains("\"true_size\" needs the task's official edges"), e.getMessage());
        Graph g = Graph.microModel(2, true, 3);
        Set<Edge> official = new HashSet<>(g.edges().subList(0, 6));
        assertEquals(List.of(6, 10), CircuitProbing.resolveSizes(List.of(CircuitSize.TRUE_SIZE, CircuitSize.of(10)), official, 39));
        try (PatchableModel model = ProbingFixtures.microModel()) {
            PruneRun run = PruneRun.of(model, ProbingFixtures.microBatches(1, 2, 1));
            IllegalArgumentException noEdges = assertThrows(IllegalArgumentException.class,
                () -> CircuitProbing.scores(run, Options.defaults()));
            assertTrue(noEdges.getMessage().contains("official edges"), noEdges.getMessage());
        }
    }

    @Test
    void sizesMustBePositiveDistinctAndFitTheGraph() {
        assertEquals("circuit size must be positive, got 0",
            assertThrows(IllegalArgumentException.class, () -> CircuitSize.of(0)).getMessage());
        assertEquals("circuit size must be positive, got -3",
            assertThrows(IllegalArgumentException.class, () -> CircuitSize.parse("-3")).getMessage());
        assertEquals("circuit size must be \"true_size\" or a positive integer, got 'big'",
            assertThrows(IllegalArgumentException.class, () -> CircuitSize.parse("big")).getMessage());
        assertEquals(CircuitSize.TRUE_SIZE, CircuitSize.parse("true_size"));
        assertEquals("circuit sizes must be distinct, but 5 appears twice in [5, 5]",
            assertThrows(IllegalArgumentException.class,
                () -> CircuitProbing.resolveSizes(List.of(CircuitSize.of(5), CircuitSize.of(5)), null, 39)).getMessage());
        Set<Edge> five = new HashSet<>(Graph.microModel(2, true, 3).edges().subList(0, 5));
        assertEquals("circuit sizes must be distinct, but 5 appears twice in [true_size, 5] (true_size = 5)",
            assertThrows(IllegalArgumentException.class,
                () -> CircuitProbing.resolveSizes(List.of(CircuitSize.TRUE_SIZE, CircuitSize.of(5)), five, 39)).getMessage());
        assertEquals("circuit size 40 exceeds the model's 39 edges",
            assertThrows(IllegalArgumentException.class,
                () -> CircuitProbing.resolveSizes(List.of(CircuitSize.of(40)), null, 39)).getMessage());
        assertEquals("circuitSizes must hold at least one size",
            assertThrows(IllegalArgumentException.class, () -> Options.defaults().withCircuitSizes(List.of())).getMessage());
    }

    @Test
    void checkpointResumeInsideTheSecondSizeEqualsAnUninterruptedRun(@TempDir Path dir) {
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(2, 4, 2);
        Options o = Options.defaults().withEpochs(3).withCircuitSizes(List.of(CircuitSize.of(5), CircuitSize.of(15)));
        try (PatchableModel model = ProbingFixtures.microModel()) {
            PruneScores full = CircuitProbing.scores(new PruneRun(model, batches, null, Progress.NONE, 8, null), o);
            Path file = dir.resolve("cp.ckpt");
            // 6 steps per size: stop at step 9, in the second epoch of size 15 (its first epoch is saved).
            PruneRun interrupted = new PruneRun(model, batches, null, SubnetworkProbingTest.stopAfter(9), 8, file);
            assertThrows(CancellationException.class, () -> CircuitProbing.scores(interrupted, o));
            List<Long> resumedSteps = new ArrayList<>();
            PruneScores resumed = CircuitProbing.scores(interrupted.withProgress((t, d, n) -> resumedSteps.add(d)), o);
            assertEquals(List.of(9L, 10L, 11L, 12L), resumedSteps, "resumes after size 5 and one epoch of size 15");
            assertEquals(full, resumed, "bit-identical levels after resuming");
        }
    }

    /** Tree probing with sizes [10, "true_size" = 20, 30] on the fixture GPT-2 (110 edges), two epochs of one batch. */
    @Test
    void treeProbingOnTheFixtureModelGivesThreeLevels() {
        List<PromptPairBatch> one = ProbingFixtures.ioiTrain().subList(0, 1);
        Options o = Options.defaults().withTreeOptimisation(true).withEpochs(2).withRegularizeLambda(0.1)
            .withCircuitSizes(List.of(CircuitSize.of(30), CircuitSize.TRUE_SIZE, CircuitSize.of(10)));
        try (PatchableModel model = ProbingFixtures.fixtureModel()) {
            Set<Edge> official = new HashSet<>(model.graph().edges().subList(40, 60));
            PruneRun run = new PruneRun(model, one, official, Progress.NONE, 1, null);
            float[] levels = CircuitProbing.scores(run, o).flat();
            int[] count = new int[4];
            for (float v : levels) {
                assertTrue(v == 0 || v == 1 || v == 2 || v == 3, "levels are 0..3, got " + v);
                count[(int) v]++;
            }
            assertTrue(count[3] >= 10, "size 10 at level 3: " + count[3]);
            assertTrue(count[3] + count[2] >= 20, "sizes 10 and 20 at levels ≥ 2");
            assertTrue(count[3] + count[2] + count[1] >= 30, "all three circuits at levels ≥ 1");
            assertTrue(count[0] > 0 && count[0] <= 80, "edges in no circuit stay 0: " + count[0]);
        }
    }

    @Test
    void defaultsAndPresetsMatchAutoCircuit() {
        Options d = Options.defaults();
        assertEquals(List.of(0.1, 20, 10.0, MaskFn.HARD_CONCRETE, 0.0, -MaskFn.INIT_MASK_VAL, List.of(CircuitSize.TRUE_SIZE),
            false, 1.0, FaithfulnessTarget.KL_DIV), List.of(d.learningRate(), d.epochs(), d.regularizeLambda(), d.maskFn(),
            d.dropoutP(), d.initVal(), d.circuitSizes(), d.treeOptimisation(), d.avoidLambda(), d.faithfulnessTarget()));
        assertPreset(Options.circuitProbing(), 2000, false, FaithfulnessTarget.KL_DIV, "[true_size, 1000]");
        assertPreset(Options.treeProbing(), 200, true, FaithfulnessTarget.KL_DIV, "[100, true_size, 1000, 10000]");
        assertPreset(Options.mseTreeProbing(), 200, true, FaithfulnessTarget.MSE, "[true_size]");
        assertPreset(Options.oppositeTreeProbing(), 100, true, FaithfulnessTarget.WRONG_ANSWER, "[true_size, 1000, 10000]");
        SubnetworkProbing.Options sp = Options.treeProbing().probing(100);
        assertEquals(100, sp.circuitSize());
        assertEquals(-MaskFn.INIT_MASK_VAL, sp.initVal(), 0, "so tree masks start at −ln 5, as in AutoCircuit");
    }

    private static void assertPreset(Options o, int epochs, boolean tree, FaithfulnessTarget target, String sizes) {
        assertEquals(List.of(0.1, epochs, 0.1, tree, target, MaskFn.HARD_CONCRETE, sizes), List.of(o.learningRate(),
            o.epochs(), o.regularizeLambda(), o.treeOptimisation(), o.faithfulnessTarget(), o.maskFn(),
            o.circuitSizes().toString()));
    }
}
