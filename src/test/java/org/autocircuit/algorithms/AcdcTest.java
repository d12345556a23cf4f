package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicInteger;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class AcdcTest {
    static Datasets.LoadedDatasets data;

    @BeforeAll
    static void load() {
        data = Fixtures.ioi();
    }

    static PatchableModel fixtureModel(Integer seqLen) {
        return PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, seqLen, true, Kernels.reference());
    }

    // ---- options ----

    @Test
    void presetsFollowTheRegistry() {
        assertEquals(List.of(1e-6, 1e-5, 1e-4, 1e-3), Acdc.Options.acdc().taus());
        assertEquals(Acdc.Faithfulness.KL_DIV, Acdc.Options.acdc().faithfulness());
        List<Double> mse = Acdc.Options.mseAcdc().taus();
        assertEquals(10, mse.size());
        assertEquals(1e-10, mse.get(0), 1e-25);
        assertEquals(1e-1, mse.get(9), 1e-16);
        assertEquals(Acdc.Faithfulness.MSE, Acdc.Options.mseAcdc().faithfulness());
    }

    @Test
    void basesAreTheOuterLoop() {
        List<Double> taus = Acdc.Options.ofBasesExps(List.of(1.0, 3.0), List.of(-2, -1), Acdc.Faithfulness.KL_DIV).taus();
        assertEquals(4, taus.size());
        assertEquals(0.01, taus.get(0), 1e-15);
        assertEquals(0.1, taus.get(1), 1e-15);
        assertEquals(0.03, taus.get(2), 1e-15);
        assertEquals(0.3, taus.get(3), 1e-15);
    }

    @Test
    void badTausNameTheValue() {
        IllegalArgumentException empty = assertThrows(IllegalArgumentException.class,
            () -> Acdc.Options.of(List.of(), Acdc.Faithfulness.KL_DIV));
        assertTrue(empty.getMessage().contains("taus"), empty.getMessage());
        for (double bad : new double[] {0.0, -1e-3, Double.NaN, Double.POSITIVE_INFINITY}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Acdc.Options.of(List.of(1e-3, bad), Acdc.Faithfulness.KL_DIV));
            assertTrue(e.getMessage().contains(String.valueOf(bad)), e.getMessage());
        }
        assertThrows(IllegalArgumentException.class,
            () -> Acdc.Options.ofBasesExps(List.of(-1.0), List.of(-3), Acdc.Faithfulness.MSE));
        assertThrows(IllegalArgumentException.class,
            () -> Acdc.Options.ofBasesExps(List.of(), List.of(-3), Acdc.Faithfulness.MSE));
    }

    // ---- visit order ----

    @Test
    void defaultOrderDescendsByLayerAndKeepsGraphOrderWithin() {
        Graph g = Graph.transformerFactorized(Fixtures.model().config().shape(), true, null);
        int[] order = Acdc.defaultVisitOrder(g);
        assertEquals(g.nEdges(), order.length);
        for (int p = 1; p < order.length; p++) {
            int prev = g.edges().get(order[p - 1]).dest().layer(), cur = g.edges().get(order[p]).dest().layer();
            assertTrue(prev > cur || (prev == cur && order[p - 1] < order[p]), "position " + p);
        }
        assertEquals("Resid End", g.edges().get(order[0]).dest().name());
    }

    @Test
    void explicitOrderIsChecked() {
        Graph g = Graph.transformerFactorized(Fixtures.model().config().shape(), true, null);
        List<String> names = new ArrayList<>();
        for (int i : Acdc.defaultVisitOrder(g)) names.add(g.edges().get(i).toString());
        assertArrayEquals(Acdc.defaultVisitOrder(g), Acdc.visitOrder(g, names));
        List<String> missing = new ArrayList<>(names.subList(1, names.size()));
        assertThrows(IllegalArgumentException.class, () -> Acdc.visitOrder(g, missing));
        List<String> unknown = new ArrayList<>(names);
        unknown.set(3, "A9.9->Nowhere");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Acdc.visitOrder(g, unknown));
        assertTrue(e.getMessage().contains("A9.9->Nowhere"), e.getMessage());
        List<String> ascending = new ArrayList<>(names);
        java.util.Collections.reverse(ascending);
        assertThrows(IllegalArgumentException.class, () -> Acdc.visitOrder(g, ascending));
    }

    // ---- the speed-ups change nothing ----

    @ParameterizedTest(name = "seqLen={0}")
    @ValueSource(ints = {0, 15})
    void batchedAndSkippedTrialsGiveTheSequentialResult(int seqLenOrZero) {
        Integer seqLen = seqLenOrZero == 0 ? null : seqLenOrZero;
        Acdc.Options options = Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV);
        try (PatchableModel model = fixtureModel(seqLen)) {
            PruneRun run = PruneRun.of(model, data.train().batches());
            PruneScores fast = Acdc.scores(run, options);
            // the token graph's strictly sequential run without skipping takes 1,650 passes: check skipping there
            // with single trials, and everything off on the component graph
            PruneScores slow = Acdc.scores(run, options, null, 1, seqLen != null);
            assertArrayEquals(slow.flat(), fast.flat());
            if (seqLen != null) {
                PruneScores batchedNoSkip = Acdc.scores(run, options, null, AcdcSearch.DEFAULT_WINDOW, false);
                assertArrayEquals(slow.flat(), batchedNoSkip.flat());
            }
        }
    }

    /**
     * Trial passes that compute the last block for the last position only (the component graph with LAST_SEQ) give
     * every trial the output of the full passes up to float rounding (the products run over 1 instead of 15 positions
     * per prompt, which changes the last bits), and the same decisions, on both kernel paths (the native one with the
     * fused KL).
     */
    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void trimmedLastBlockGivesTheFullPassesTrials(String kernels) {
        Acdc.Options options = Acdc.Options.of(List.of(1e-4, 1e-3), Acdc.Faithfulness.KL_DIV);
        try (PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernels))) {
            PruneRun run = PruneRun.of(model, data.train().batches());
            int[] order = Acdc.visitOrder(model.graph(), options.visitOrder());
            List<float[]> full = new ArrayList<>();
            List<float[]> trimmed = new ArrayList<>();
            PruneScores fullScores;
            PruneScores trimmedScores;
            try (AcdcSearch s = new AcdcSearch(run, options, order, (t, e, out, m) -> full.add(out.floats()),
                    AcdcSearch.DEFAULT_WINDOW, true, true, false)) {
                fullScores = s.run();
            }
            try (AcdcSearch s = new AcdcSearch(run, options, order, (t, e, out, m) -> trimmed.add(out.floats()),
                    AcdcSearch.DEFAULT_WINDOW, true, true, true)) {
                trimmedScores = s.run();
            }
            assertArrayEquals(fullScores.flat(), trimmedScores.flat());
            assertEquals(full.size(), trimmed.size());
            assertTrue(full.size() > 100, "only " + full.size() + " trials");
            double worst = 0;
            for (int i = 0; i < full.size(); i++) {
                assertClose(full.get(i), trimmed.get(i), 1e-5, 0, "trial " + i);
                for (int j = 0; j < full.get(i).length; j++) worst = Math.max(worst, Math.abs(full.get(i)[j] - trimmed.get(i)[j]));
            }
            System.out.printf("ACDC trimmed last block (%s kernels): %d trials, largest logit difference %.2e%n", kernels,
                full.size(), worst);
        }
    }

    @Test
    void mseCriterionRunsAndKeepsFewerEdgesAtLargerTau() {
        try (PatchableModel model = fixtureModel(null)) {
            PruneRun run = PruneRun.of(model, data.train().batches());
            PruneScores s = Acdc.scores(run, Acdc.Options.of(List.of(1e-4, 1e-1), Acdc.Faithfulness.MSE));
            PruneScores one = Acdc.scores(run, Acdc.Options.of(List.of(1e-4), Acdc.Faithfulness.MSE));
            PruneScores seq = Acdc.scores(run, Acdc.Options.of(List.of(1e-4, 1e-1), Acdc.Faithfulness.MSE), null, 1, false);
            assertArrayEquals(seq.flat(), s.flat());
            assertTrue(Acdc.keptEdges(s).size() <= Acdc.keptEdges(one).size());
            for (float v : s.flat()) assertTrue(v == Float.POSITIVE_INFINITY || v == 1e-4f || v == 1e-1f, "score " + v);
        }
    }

    // ---- AutoCircuit's test mode: a trial's output equals run_circuits TREE_PATCH of the current circuit ----

    @ParameterizedTest(name = "seqLen={0}")
    @ValueSource(ints = {0, 15})
    void trialOutputsEqualTreePatchedCircuits(int seqLenOrZero) {
        Integer seqLen = seqLenOrZero == 0 ? null : seqLenOrZero;
        PromptPairBatch first = data.train().batches().get(0);
        AtomicInteger checked = new AtomicInteger();
        try (PatchableModel model = fixtureModel(seqLen); PatchableModel testModel = fixtureModel(seqLen)) {
            int[] seen = new int[1];
            Acdc.TrialObserver check = (tauIndex, edge, output, masks) -> {
                // every 7th trial (the first few of every block's destinations come early in each stretch)
                if (seen[0]++ % 7 != 0 || checked.get() >= 12) return;
                assertTreePatchEquals(testModel, first, masks.get(), output, edge);
                checked.incrementAndGet();
            };
            Acdc.scores(PruneRun.of(model, data.train().batches()), Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV),
                check);
        }
        assertTrue(checked.get() >= 5, "checked only " + checked.get() + " trials");
    }

    @Test
    void microModelTrialsEqualTreePatchedCircuits() {
        // AutoCircuit's test_acdc[micro_model]: batch 1, untokenized inputs, so token edges (seq_len 3)
        float[] clean = {3, 3, 2, 2, 1, 1};
        float[] corrupt = {-3, -3, -2, -2, -1, -1};
        PromptPairBatch batch = new PromptPairBatch(1L, 0, HostTensor.ofFloats(clean, 1, 3, 2),
            HostTensor.ofFloats(corrupt, 1, 3, 2), null, null, Answers.of(List.of(HostTensor.ofLongs(new long[] {1}, 1))),
            Answers.of(List.of(HostTensor.ofLongs(new long[] {0}, 1))));
        AtomicInteger checked = new AtomicInteger();
        try (PatchableModel model = PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, 3, true, Kernels.reference());
             PatchableModel testModel = PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, 3, true, Kernels.reference())) {
            assertEquals(39, model.graph().nEdges());
            PruneScores s = Acdc.scores(PruneRun.of(model, List.of(batch)), Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV),
                (tauIndex, edge, output, masks) -> {
                    assertTreePatchEquals(testModel, batch, masks.get(), output, edge);
                    checked.incrementAndGet();
                });
            assertFalse(Acdc.keptEdges(s).isEmpty());
        }
        assertTrue(checked.get() > 0);
    }

    /** run_circuits(TREE_PATCH) with the edges not ablated as the circuit must reproduce the trial's output. */
    static void assertTreePatchEquals(PatchableModel testModel, PromptPairBatch batch, PruneScores masks, HostTensor output,
                                      Edge edge) {
        PruneScores circuit = masks.map(m -> 1f - m);
        int k = circuit.countAtLeast(1f);
        CircuitOutputs outs = RunCircuits.run(testModel, List.of(batch), List.of(k), circuit, PatchType.TREE_PATCH,
            AblationType.RESAMPLE, false);
        assertClose(outs.output(k, batch.key()).floats(), output.floats(), 1e-3, 0, "trial of " + edge);
    }

    // ---- checkpoints ----

    @Test
    void interruptedRunResumesToTheSameScores(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("acdc.json");
        Acdc.Options options = Acdc.Options.of(List.of(1e-4, 1e-3), Acdc.Faithfulness.KL_DIV)
            .withCheckpointEvery(10, Duration.ofHours(1));
        try (PatchableModel model = fixtureModel(null)) {
            PruneRun plain = PruneRun.of(model, data.train().batches());
            PruneScores expected = Acdc.scores(plain, options);

            AtomicInteger updates = new AtomicInteger();
            PruneRun cancelled = plain.withCheckpoint(file).withProgress((task, done, total) -> {
                if (updates.incrementAndGet() == 137) throw new CancellationException("stop at 137");
            });
            assertThrows(CancellationException.class, () -> Acdc.scores(cancelled, options));
            assertTrue(Files.exists(file));
            AcdcCheckpoint c = AcdcCheckpoint.read(file);
            assertEquals(1, c.tauIndex());
            assertEquals(137 - 110, c.position());   // every finished decision is in it, the 137th included

            long[] lastDone = {-1};
            PruneRun resumed = plain.withCheckpoint(file).withProgress((task, done, total) -> {
                if (lastDone[0] < 0) lastDone[0] = done;
            });
            assertArrayEquals(expected.flat(), Acdc.scores(resumed, options).flat());
            assertEquals(138, lastDone[0], "the resumed run starts after the checkpointed decisions");
            // a finished checkpoint returns its scores straight away
            AtomicInteger after = new AtomicInteger();
            assertArrayEquals(expected.flat(), Acdc.scores(plain.withCheckpoint(file)
                .withProgress((t, d, n) -> after.incrementAndGet()), options).flat());
            assertEquals(0, after.get());
        }
    }

    @Test
    void threadInterruptCancelsAndLeavesACheckpoint(@TempDir Path dir) {
        Path file = dir.resolve("acdc.json");
        try (PatchableModel model = fixtureModel(null)) {
            PruneRun run = PruneRun.of(model, data.train().batches()).withCheckpoint(file).withProgress((t, d, n) -> {
                if (d == 20) Thread.currentThread().interrupt();
            });
            try {
                assertThrows(CancellationException.class,
                    () -> Acdc.scores(run, Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV)));
            } finally {
                Thread.interrupted();
            }
            AcdcCheckpoint c = AcdcCheckpoint.read(file);
            assertEquals(0, c.tauIndex());
            assertTrue(c.position() >= 20, "position " + c.position());
        }
    }

    @Test
    void checkpointOfAnotherRunIsRejectedByField(@TempDir Path dir) {
        Path file = dir.resolve("acdc.json");
        try (PatchableModel model = fixtureModel(null)) {
            PruneRun run = PruneRun.of(model, data.train().batches()).withCheckpoint(file);
            Acdc.scores(run, Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV));
            IllegalArgumentException taus = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run, Acdc.Options.of(List.of(1e-4), Acdc.Faithfulness.KL_DIV)));
            assertTrue(taus.getMessage().contains("taus"), taus.getMessage());
            IllegalArgumentException criterion = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run, Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.MSE)));
            assertTrue(criterion.getMessage().contains("criterion"), criterion.getMessage());
            PruneRun otherBatch = PruneRun.of(model, data.train().batches().subList(1, 2)).withCheckpoint(file);
            IllegalArgumentException batch = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(otherBatch, Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV)));
            assertTrue(batch.getMessage().contains("firstBatch"), batch.getMessage());
        }
        try (PatchableModel token = fixtureModel(15)) {
            PruneRun run = PruneRun.of(token, data.train().batches()).withCheckpoint(file);
            IllegalArgumentException graph = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run, Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV)));
            assertTrue(graph.getMessage().contains("graph"), graph.getMessage());
        }
    }

    @Test
    void garbageCheckpointIsAClearError(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("acdc.json");
        Files.writeString(file, "{not json");
        try (PatchableModel model = fixtureModel(null)) {
            PruneRun run = PruneRun.of(model, data.train().batches()).withCheckpoint(file);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run, Acdc.Options.acdc()));
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        }
    }
}
