package org.autocircuit.algorithms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CancellationException;
import org.autocircuit.algorithms.SubnetworkProbing.FaithfulnessTarget;
import org.autocircuit.algorithms.SubnetworkProbing.Options;
import org.autocircuit.algorithms.SubnetworkProbing.Result;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.MaskFn;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Subnetwork probing. No AutoCircuit golden numbers exist for it (its result depends on torch's RNG
 * stream), so these tests check its defining properties on the MicroModel, where the answer is known, and on the
 * fixture GPT-2.
 */
class SubnetworkProbingTest {
    /** Tree probing on the MicroModel, 100 epochs of one batch: shared by the tests that read a trained run. */
    static Result microTree;
    static float[] microTreeMasks;
    static Graph microGraph;

    @BeforeAll
    static void trainMicroTree() {
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Options o = Options.defaults().withTreeOptimisation(true).withEpochs(100).withRegularizeLambda(0.1);
            microTree = SubnetworkProbing.train(run(model, ProbingFixtures.microBatches(1, 8, 1), 7), o);
            microTreeMasks = model.currentMasks().flat();
            microGraph = model.graph();
        }
    }

    static PruneRun run(PatchableModel model, List<PromptPairBatch> batches, long seed) {
        return new PruneRun(model, batches, null, Progress.NONE, seed, null);
    }

    /**
     * The MicroModel mixes no positions and is read at the last one, so only the 13 edges at position 2 can change the
     * output: tree probing must keep all of them and ablate every edge at positions 0 and 1.
     */
    @Test
    void treeProbingKeepsExactlyTheEdgesThatCanMatter() {
        float[] s = microTree.scores().flat();
        float minRelevant = Float.MAX_VALUE, maxIrrelevant = -Float.MAX_VALUE;
        for (int i = 0; i < s.length; i++) {
            Edge e = microGraph.edges().get(i);
            if (e.seqIdx().getAsInt() == 2) {
                minRelevant = Math.min(minRelevant, s[i]);
                assertTrue(microTreeMasks[i] < 0, e + " matters and should be kept (mask < 0), mask " + microTreeMasks[i]);
            } else {
                maxIrrelevant = Math.max(maxIrrelevant, s[i]);
                assertTrue(microTreeMasks[i] > 0, e + " cannot matter and should be ablated, mask " + microTreeMasks[i]);
            }
        }
        assertTrue(minRelevant > maxIrrelevant + 3, "every position-2 edge outscores every other edge by a margin: "
            + minRelevant + " vs " + maxIrrelevant);
        PruneScores top = microTree.scores();
        assertTrue(top.score(microGraph.edge("B1.1->Resid End", java.util.OptionalInt.of(2))) >= top.threshold(13));
    }

    @Test
    void faithfulnessDecreasesOverTraining() {
        List<Double> f = microTree.faithfulness();
        assertEquals(100, f.size(), "one entry per optimiser step");
        double first = f.subList(0, 5).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        double last = f.subList(95, 100).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
        assertTrue(last < first / 10, "KL to the clean model falls from " + first + " to " + last);
        assertEquals(f.size(), microTree.losses().size());
        assertEquals(f.size(), microTree.regularization().size());
        assertTrue(microTree.validationMean().isEmpty(), "no validation batches, no validation curve");
    }

    @ParameterizedTest(name = "tree={0}")
    @ValueSource(booleans = {true, false})
    void scoresAreNonNegativeWithTheSpecSignConvention(boolean tree) {
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Options o = Options.defaults().withTreeOptimisation(tree).withEpochs(5).withRegularizeLambda(0.5);
            float[] scores = SubnetworkProbing.scores(run(model, ProbingFixtures.microBatches(1, 4, 2), 3), o).flat();
            float[] masks = model.currentMasks().flat();
            float xtreme = masks[0];
            for (float m : masks) xtreme = tree ? Math.max(xtreme, m) : Math.min(xtreme, m);
            xtreme = Math.abs(xtreme);
            float min = Float.MAX_VALUE;
            for (int i = 0; i < scores.length; i++) {
                assertTrue(scores[i] >= 0, "score " + scores[i] + " of edge " + i + " is negative");
                assertEquals(tree ? xtreme - masks[i] : xtreme + masks[i], scores[i], 0f, "edge " + i);
                min = Math.min(min, scores[i]);
            }
            // Masks start at +ln 5 (tree) or −ln 5, so the extreme mask keeps that sign and itself scores 0.
            assertEquals(0f, min, 0f);
            // The circuit is what scores high: low masks (kept) for tree probing, high masks (patched) otherwise.
            int best = argmax(scores);
            assertEquals(tree ? minOf(masks) : max(masks), masks[best], 0f);
        }
    }

    /**
     * With {@code circuitSize} the regulariser is relu(sampled count − size): it shrinks the circuit until a hard-concrete
     * sample rarely exceeds the size, so the expected size ends at or somewhat below it, and no further. The
     * faithfulness term here has no gradient (correct_percent), so the regulariser acts alone.
     */
    @ParameterizedTest(name = "tree={0}")
    @ValueSource(booleans = {true, false})
    void regulariserPullsTheCircuitTowardCircuitSize(boolean tree) {
        // Start with nearly every edge in the circuit (kept for tree probing, patched otherwise).
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 8, 3);
        Options o = Options.defaults().withTreeOptimisation(tree).withInitVal(-2).withEpochs(100).withRegularizeLambda(1)
            .withFaithfulnessTarget(FaithfulnessTarget.CORRECT_PERCENT);
        double start = expectedCircuitSize(filled(39, tree ? -2f : 2f), tree);
        double size8 = trainedCircuitSize(batches, o.withCircuitSize(8), tree);
        double size20 = trainedCircuitSize(batches, o.withCircuitSize(20), tree);
        double minimise = trainedCircuitSize(batches, o, tree);
        String sizes = "expected circuit sizes: start " + start + ", size 8 -> " + size8 + ", size 20 -> " + size20
            + ", no size -> " + minimise;
        assertTrue(start > 30, sizes);
        assertTrue(size8 <= 8 && size8 > 2, "size 8 ends at or somewhat below 8: " + sizes);
        assertTrue(size20 <= 20 && size20 > 8, "size 20 ends at or somewhat below 20: " + sizes);
        assertTrue(minimise < size8, "without a size the circuit shrinks further: " + sizes);
    }

    private static double trainedCircuitSize(List<PromptPairBatch> batches, Options o, boolean tree) {
        try (PatchableModel model = ProbingFixtures.microModel()) {
            SubnetworkProbing.train(run(model, batches, 1), o);
            return expectedCircuitSize(model.currentMasks().flat(), tree);
        }
    }

    /** The expected number of circuit edges under hard-concrete sampling: kept edges (tree) or patched ones. */
    static double expectedCircuitSize(float[] masks, boolean tree) {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(0);
            Tensor z = MaskFn.sampleHardConcrete(HostTensor.ofFloats(masks, masks.length).toTensor(), 4000, false);
            double patched = z.sum().item_double() / 4000;
            return tree ? masks.length - patched : patched;
        }
    }

    @Test
    void sameSeedGivesIdenticalScoresOnTheFixtureModel() {
        List<PromptPairBatch> one = ProbingFixtures.ioiTrain().subList(0, 1);
        Options o = Options.defaults().withEpochs(2);
        PruneScores a, b, c;
        try (PatchableModel model = ProbingFixtures.fixtureModel()) {
            a = SubnetworkProbing.scores(run(model, one, 5), o);
            b = SubnetworkProbing.scores(run(model, one, 5), o);
            c = SubnetworkProbing.scores(run(model, one, 6), o);
        }
        assertEquals(a, b, "seed 5 twice gives bit-identical scores");
        assertNotEquals(a, c, "another seed draws other hard-concrete samples");
        for (float v : a.flat()) assertTrue(v >= 0, "score " + v + " is negative");
    }

    @Test
    void checkpointResumeOnTheFixtureModelEqualsAnUninterruptedRun(@TempDir Path dir) {
        List<PromptPairBatch> one = ProbingFixtures.ioiTrain().subList(0, 1);
        Options o = Options.defaults().withTreeOptimisation(true).withEpochs(3).withRegularizeLambda(0.5);
        try (PatchableModel model = ProbingFixtures.fixtureModel()) {
            Result full = SubnetworkProbing.train(run(model, one, 9), o);
            Path file = dir.resolve("sp.ckpt");
            PruneRun interrupted = new PruneRun(model, one, null, stopAfter(3), 9, file);
            assertThrows(CancellationException.class, () -> SubnetworkProbing.train(interrupted, o));
            assertTrue(Files.exists(file), "two finished epochs were saved");
            Result resumed = SubnetworkProbing.train(interrupted.withProgress(Progress.NONE), o);
            assertEquals(full.scores(), resumed.scores(), "bit-identical scores after resuming");
            assertEquals(full.losses(), resumed.losses(), "the loss curve survives the checkpoint");
        }
    }

    @Test
    void checkpointResumeMidEpochOnTheMicroModel(@TempDir Path dir) {
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(2, 4, 4);
        Options o = Options.defaults().withEpochs(4).withDropoutP(0.1);
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Result full = SubnetworkProbing.train(run(model, batches, 11), o);
            Path file = dir.resolve("nested/sp.ckpt");
            PruneRun interrupted = new PruneRun(model, batches, null, stopAfter(5), 11, file);
            assertThrows(CancellationException.class, () -> SubnetworkProbing.train(interrupted, o));
            int[] calls = {0};
            PruneRun resume = interrupted.withProgress((t, d, n) -> calls[0]++);
            Result resumed = SubnetworkProbing.train(resume, o);
            assertEquals(4, calls[0], "resumes after the two saved epochs: 2 epochs × 2 batches left");
            assertEquals(full.scores(), resumed.scores());
            assertEquals(full.faithfulness(), resumed.faithfulness());
            calls[0] = 0;
            assertEquals(full.scores(), SubnetworkProbing.scores(resume, o), "a finished checkpoint returns its result");
            assertEquals(0, calls[0], "without training again");
            PruneRun other = resume.withSeed(12);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> SubnetworkProbing.train(other, o));
            assertTrue(e.getMessage().contains("belongs to another run") && e.getMessage().contains(file.toString()),
                e.getMessage());
        }
    }

    @Test
    void interruptionKeepsTheMasksLearnedSoFar() {
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 4, 5);
        try (PatchableModel model = ProbingFixtures.microModel()) {
            SubnetworkProbing.train(run(model, batches, 1), Options.defaults().withEpochs(3));
            float[] afterThreeSteps = model.currentMasks().flat();
            PruneRun r = new PruneRun(model, batches, null, stopAfter(3), 1, null);
            assertThrows(CancellationException.class, () -> SubnetworkProbing.train(r, Options.defaults().withEpochs(50)));
            assertArrayEquals(afterThreeSteps, model.currentMasks().flat(), 0f, "the masks of the three steps taken");
            int moved = 0;
            for (float m : afterThreeSteps) if (Math.abs(m + MaskFn.INIT_MASK_VAL) > 1e-3) moved++;
            assertTrue(moved > afterThreeSteps.length / 2, "the steps moved the masks (" + moved + " of 39)");
            assertFalse(model.inPatchMode());
            assertFalse(model.mask(model.maskNames().get(0)).requires_grad(), "mask training mode was closed");
        }
    }

    @ParameterizedTest
    @EnumSource(FaithfulnessTarget.class)
    void everyFaithfulnessTargetTrains(FaithfulnessTarget target) {
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Options o = Options.defaults().withEpochs(3).withTreeOptimisation(true).withFaithfulnessTarget(target);
            Result r = SubnetworkProbing.train(run(model, ProbingFixtures.microBatches(1, 4, 6), 2), o);
            for (double v : r.losses()) assertTrue(Double.isFinite(v), target + " loss " + v);
            for (float v : r.scores().flat()) assertTrue(v >= 0, target + " score " + v);
            if (target == FaithfulnessTarget.CORRECT_PERCENT) {
                for (double v : r.faithfulness()) assertTrue(v >= 0 && v <= 1, "a proportion: " + v);
            }
        }
    }

    @Test
    void avoidedEdgesArePushedOutOfTheCircuit() {
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 8, 1);
        Options o = Options.defaults().withTreeOptimisation(true).withEpochs(40).withRegularizeLambda(0.1);
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Edge avoided = model.graph().edge("B1.1->Resid End", java.util.OptionalInt.of(2));
            float free = SubnetworkProbing.scores(run(model, batches, 3), o).score(avoided);
            float freeMask = model.currentMasks().score(avoided);
            PruneScores constrained = SubnetworkProbing.scores(run(model, batches, 3), o.withAvoidEdges(Set.of(avoided), 30));
            float constrainedMask = model.currentMasks().score(avoided);
            assertTrue(freeMask < 0, "unconstrained, the strongest edge is kept: mask " + freeMask);
            assertTrue(constrainedMask > freeMask + 2, "the penalty ablates it: mask " + freeMask + " -> " + constrainedMask);
            assertTrue(constrained.score(avoided) < free, "and lowers its score");
        }
    }

    @Test
    void validationBatchesGiveACurve() {
        try (PatchableModel model = ProbingFixtures.microModel()) {
            List<PromptPairBatch> train = ProbingFixtures.microBatches(2, 4, 7);
            Options o = Options.defaults().withEpochs(2).withValidation(ProbingFixtures.microBatches(1, 4, 8));
            Result r = SubnetworkProbing.train(run(model, train, 2), o);
            assertEquals(4, r.validationMean().size(), "one validation point per step");
            assertEquals(4, r.validationStd().size());
            for (double v : r.validationMean()) assertTrue(Double.isFinite(v), "validation percent " + v);
        }
    }

    @Test
    void badOptionsAreRejectedWithTheValue() {
        Options d = Options.defaults();
        assertMessage("learningRate must be a positive number, got 0.0", () -> d.withLearningRate(0));
        assertMessage("epochs must be ≥ 0, got -1", () -> d.withEpochs(-1));
        assertMessage("dropoutP must be in [0, 1), got 1.0", () -> d.withDropoutP(1));
        assertMessage("circuitSize must be positive (or null for none), got 0", () -> d.withCircuitSize(0));
        assertMessage("regularizeLambda must be finite, got NaN", () -> d.withRegularizeLambda(Double.NaN));
        assertMessage("unknown faithfulness target 'kl'; valid: [kl_div, mse, answer, wrong_answer, correct_percent,"
            + " logit_diff_percent]", () -> FaithfulnessTarget.parse("kl"));
        assertEquals(FaithfulnessTarget.LOGIT_DIFF_PERCENT, FaithfulnessTarget.parse("logit_diff_percent"));
        try (PatchableModel model = ProbingFixtures.microModel()) {
            Edge foreign = Graph.microModel(1, true, null).edges().get(0);   // no token position
            assertThrows(IllegalArgumentException.class,
                () -> SubnetworkProbing.train(run(model, ProbingFixtures.microBatches(1, 2, 1), 0),
                    d.withAvoidEdges(Set.of(foreign), 1)));
        }
    }

    @Test
    void defaultsAndPresetsMatchAutoCircuit() {
        Options d = Options.defaults();
        assertEquals(List.of(0.1, 20, 10.0, MaskFn.HARD_CONCRETE, 0.0, MaskFn.INIT_MASK_VAL, false, 1.0,
            FaithfulnessTarget.KL_DIV), List.of(d.learningRate(), d.epochs(), d.regularizeLambda(), d.maskFn(),
            d.dropoutP(), d.initVal(), d.treeOptimisation(), d.avoidLambda(), d.faithfulnessTarget()));
        assertEquals(null, d.circuitSize());
        Options sep = Options.subnetworkEdgeProbing();
        assertEquals(List.of(0.1, 200, 0.5, false), List.of(sep.learningRate(), sep.epochs(), sep.regularizeLambda(),
            sep.treeOptimisation()));
        Options stp = Options.subnetworkTreeProbing();
        assertEquals(List.of(0.1, 2000, 0.5, true, FaithfulnessTarget.KL_DIV), List.of(stp.learningRate(), stp.epochs(),
            stp.regularizeLambda(), stp.treeOptimisation(), stp.faithfulnessTarget()));
        Options mse = Options.mseSubnetworkTreeProbing();
        assertEquals(List.of(0.1, 200, 0.5, true, FaithfulnessTarget.MSE), List.of(mse.learningRate(), mse.epochs(),
            mse.regularizeLambda(), mse.treeOptimisation(), mse.faithfulnessTarget()));
        for (Options p : List.of(sep, stp, mse)) assertEquals(MaskFn.HARD_CONCRETE, p.maskFn());
    }

    @Test
    void stepSeedsDifferPerStep() {
        long a = SubnetworkProbing.stepSeed(0, 0, 0, 0);
        assertNotEquals(a, SubnetworkProbing.stepSeed(0, 0, 0, 1));
        assertNotEquals(a, SubnetworkProbing.stepSeed(0, 0, 1, 0));
        assertNotEquals(a, SubnetworkProbing.stepSeed(0, 1, 0, 0));
        assertNotEquals(a, SubnetworkProbing.stepSeed(1, 0, 0, 0));
        assertEquals(a, SubnetworkProbing.stepSeed(0, 0, 0, 0));
    }

    /** SEP's registry setting (200 epochs) on the fixture model's 16 training prompts. */
    @Test
    @Tag("slow")
    void subnetworkEdgeProbingPresetOnTheFixtureModel() {
        try (PatchableModel model = ProbingFixtures.fixtureModel()) {
            Result r = SubnetworkProbing.train(run(model, ProbingFixtures.ioiTrain(), 0), Options.subnetworkEdgeProbing());
            for (float v : r.scores().flat()) assertTrue(v >= 0);
            List<Double> loss = r.losses();
            double first = loss.subList(0, 10).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
            double last = loss.subList(loss.size() - 10, loss.size()).stream().mapToDouble(Double::doubleValue).average().orElseThrow();
            assertTrue(last < first, "the loss falls: " + first + " -> " + last);
        }
    }

    static Progress stopAfter(long steps) {
        return (task, done, total) -> {
            if (done == steps) throw new CancellationException(task + " stopped by the test after " + steps + " steps");
        };
    }

    static void assertMessage(String expected, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertEquals(expected, e.getMessage());
    }

    static float max(float[] v) {
        float m = v[0];
        for (float x : v) m = Math.max(m, x);
        return m;
    }

    static float minOf(float[] v) {
        float m = v[0];
        for (float x : v) m = Math.min(m, x);
        return m;
    }

    static float[] filled(int n, float v) {
        float[] out = new float[n];
        java.util.Arrays.fill(out, v);
        return out;
    }

    static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) if (v[i] > v[best]) best = i;
        return best;
    }
}
