package org.autocircuit.distributed;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicInteger;
import org.autocircuit.algorithms.Acdc;
import org.autocircuit.algorithms.CircuitProbing;
import org.autocircuit.algorithms.SubnetworkProbing;
import org.autocircuit.algorithms.PruneRun;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tasks;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.Progress;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The searches that split each batch's prompts across ranks (ACDC; subnetwork and circuit probing) against one
 * process, on Gloo ranks that are threads of this JVM, each with its own model: ACDC keeps exactly the same edges
 * (every edge's removal threshold equal), and a run stopped on some ranks resumes on another number of ranks (or in
 * one process) from rank 0's checkpoint to the same scores.
 */
class DataParallelSearchTest {
    static final Duration TIMEOUT = Duration.ofSeconds(120);
    static final Acdc.Options KL = Acdc.Options.of(List.of(1e-4, 1e-3), Acdc.Faithfulness.KL_DIV);
    static final Acdc.Options MSE = Acdc.Options.of(List.of(1e-4, 1e-2), Acdc.Faithfulness.MSE);

    /** The fixture model over the IOI fixture (first batch: 8 prompts), edge graph or one edge per token position. */
    static PatchableModel fixtureModel(boolean tokens) {
        return PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ,
            tokens ? Fixtures.ioi().train().seqLen().orElseThrow() : null, true, Kernels.reference());
    }

    static List<PromptPairBatch> fixtureBatches() {
        return Fixtures.ioi().train().batches();
    }

    static PruneScores acdc(PatchableModel m, List<PromptPairBatch> train, Acdc.Options o, Collective c) {
        return Acdc.scores(PruneRun.of(m, train).withCollective(c), o);
    }

    /** Counts the all-reduces a rank makes: a search that split its batch must have exchanged sums. */
    static final class Counting implements Collective {
        final Collective inner;
        final AtomicInteger allReduces = new AtomicInteger();

        Counting(Collective inner) {
            this.inner = inner;
        }

        @Override public int rank() { return inner.rank(); }

        @Override public int worldSize() { return inner.worldSize(); }

        @Override public void allReduceSumInPlace(org.bytedeco.pytorch.Tensor t) {
            allReduces.incrementAndGet();
            inner.allReduceSumInPlace(t);
        }

        @Override public List<byte[]> allGather(byte[] mine) { return inner.allGather(mine); }

        @Override public byte[] broadcastFromLeader(byte[] bytes) { return inner.broadcastFromLeader(bytes); }

        @Override public void barrier() { inner.barrier(); }

        @Override public void close() {}
    }

    /** The scores of one rank, which must have exchanged sums with the others. */
    static PruneScores acdcSplit(PatchableModel m, List<PromptPairBatch> train, Acdc.Options o, Collective c) {
        Counting counting = new Counting(c);
        PruneScores s = acdc(m, train, o, counting);
        assertTrue(counting.allReduces.get() > 1, "rank " + c.rank() + " split the batch: "
            + counting.allReduces.get() + " all-reduces");
        return s;
    }

    private static void assertAcdcOnFixture(int world, boolean tokens, Acdc.Options o) throws Exception {
        PruneScores single;
        try (PatchableModel m = fixtureModel(tokens)) {
            single = acdc(m, fixtureBatches(), o, Collective.single());
        }
        List<PruneScores> ranks = InProcessRanks.values(InProcessRanks.run(world, TIMEOUT, c -> {
            try (PatchableModel m = fixtureModel(tokens)) {
                return acdcSplit(m, fixtureBatches(), o, c);
            }
        }));
        assertTrue(Acdc.keptEdges(single).size() > 0 && Acdc.keptEdges(single).size() < single.flat().length,
            "a search that both keeps and removes edges: " + Acdc.keptEdges(single).size());
        for (int r = 0; r < world; r++) {
            assertEquals(Acdc.keptEdges(single), Acdc.keptEdges(ranks.get(r)), "kept edges, rank " + r + " of " + world);
            assertArrayEquals(single.flat(), ranks.get(r).flat(), "every edge's threshold, rank " + r + " of " + world);
        }
    }

    @Test
    void acdcOnTwoRanksKeepsTheEdgesOfOneProcess() throws Exception {
        assertAcdcOnFixture(2, false, KL);
    }

    @Test
    @Tag("slow")
    void acdcMoreCasesKeepTheEdgesOfOneProcess() throws Exception {
        assertAcdcOnFixture(2, false, MSE);
        assertAcdcOnFixture(3, false, KL);     // 8 prompts: parts of 3, 3 and 2
        assertAcdcOnFixture(3, false, MSE);
    }

    /** One edge per token position: ~20 times the edges, so slow. */
    @Test
    @Tag("slow")
    void acdcOnTokenGraphsKeepsTheEdgesOfOneProcess() throws Exception {
        assertAcdcOnFixture(2, true, MSE);
        assertAcdcOnFixture(3, true, KL);
    }

    private static void assertAcdcOnBundled(int world) throws Exception {
        TaskPaths paths = TaskPaths.under(Path.of("."));
        PruneScores single;
        try (LoadedTask t = LoadedTask.load(Tasks.byKey("induction-2l"), paths, Kernels.reference())) {
            single = acdc(t.model(), t.train().batches(), Acdc.Options.acdc(), Collective.single());
        }
        List<PruneScores> ranks = InProcessRanks.values(InProcessRanks.run(world, TIMEOUT, c -> {
            try (LoadedTask t = LoadedTask.load(Tasks.byKey("induction-2l"), paths, Kernels.reference())) {
                return acdcSplit(t.model(), t.train().batches(), Acdc.Options.acdc(), c);
            }
        }));
        for (int r = 0; r < world; r++) {
            assertEquals(Acdc.keptEdges(single), Acdc.keptEdges(ranks.get(r)), "induction-2l kept edges, rank " + r);
            assertArrayEquals(single.flat(), ranks.get(r).flat(), "induction-2l thresholds, rank " + r);
        }
    }

    @Test
    void acdcOnTheBundledModelOnTwoRanksKeepsTheEdgesOfOneProcess() throws Exception {
        assertAcdcOnBundled(2);
    }

    @Test
    @Tag("slow")
    void acdcOnTheBundledModelOnThreeRanksKeepsTheEdgesOfOneProcess() throws Exception {
        assertAcdcOnBundled(3);
    }

    /**
     * Stopped on 2 ranks after 137 decisions (every rank at the same decision, as the stop of a launched run reaches
     * them), then resumed from rank 0's checkpoint on 3 ranks and, from a copy, in one process: both end with the
     * uninterrupted single-process scores.
     */
    @Test
    void acdcStoppedOnTwoRanksResumesOnThreeOrOne(@TempDir Path dir) throws Exception {
        Acdc.Options o = KL.withCheckpointEvery(10, Duration.ofHours(1));
        PruneScores expected;
        try (PatchableModel m = fixtureModel(false)) {
            expected = acdc(m, fixtureBatches(), o, Collective.single());
        }
        Path file = dir.resolve("acdc.ckpt");
        List<Object> stopped = InProcessRanks.run(2, TIMEOUT, c -> {
            AtomicInteger updates = new AtomicInteger();
            try (PatchableModel m = fixtureModel(false)) {
                return Acdc.scores(PruneRun.of(m, fixtureBatches()).withCollective(c)
                    .withCheckpoint(DataParallel.checkpointFor(c, file)).withProgress((task, done, total) -> {
                        if (updates.incrementAndGet() == 137) throw new CancellationException("stop at 137");
                    }), o);
            }
        });
        for (Object r : stopped) assertInstanceOf(CancellationException.class, r);
        assertTrue(Files.exists(file), "rank 0 wrote the checkpoint");
        Path copy = Files.copy(file, dir.resolve("copy.ckpt"));

        List<PruneScores> three = InProcessRanks.values(InProcessRanks.run(3, TIMEOUT, c -> {
            AtomicInteger first = new AtomicInteger(-1);
            try (PatchableModel m = fixtureModel(false)) {
                PruneScores s = Acdc.scores(PruneRun.of(m, fixtureBatches()).withCollective(c)
                    .withCheckpoint(DataParallel.checkpointFor(c, file))
                    .withProgress((task, done, total) -> first.compareAndSet(-1, (int) done)), o);
                assertEquals(138, first.get(), "rank " + c.rank() + " resumed after the saved decisions");
                return s;
            }
        }));
        for (int r = 0; r < 3; r++) assertArrayEquals(expected.flat(), three.get(r).flat(), "resumed on 3 ranks, rank " + r);
        try (PatchableModel m = fixtureModel(false)) {
            assertArrayEquals(expected.flat(), Acdc.scores(PruneRun.of(m, fixtureBatches()).withCheckpoint(copy), o).flat(),
                "resumed in one process");
        }
    }

    // ---- probing ----

    /** Probing's masks, scores and loss curve on one rank, and how many all-reduces it made. */
    record Probed(float[] masks, float[] scores, List<Double> losses, int allReduces) {}

    /** Probes the fixture model: 2 batches of 8 prompts, hard-concrete samples with dropout, seed 7. */
    static Probed probe(String which, Collective c) {
        Counting counting = new Counting(c);
        try (PatchableModel m = fixtureModel(false)) {
            PruneRun run = new PruneRun(m, fixtureBatches(), null, Progress.NONE, 7L, null, counting);
            float[] scores;
            List<Double> losses = List.of();
            if (which.equals("subnetwork")) {
                SubnetworkProbing.Result r = SubnetworkProbing.train(run, SubnetworkProbing.Options.defaults()
                    .withEpochs(4).withRegularizeLambda(0.5).withDropoutP(0.1));
                scores = r.scores().flat();
                losses = r.losses();
            } else if (which.equals("tree")) {
                SubnetworkProbing.Result r = SubnetworkProbing.train(run, SubnetworkProbing.Options.defaults()
                    .withEpochs(4).withTreeOptimisation(true).withRegularizeLambda(0.5)
                    .withFaithfulnessTarget(SubnetworkProbing.FaithfulnessTarget.ANSWER));
                scores = r.scores().flat();
                losses = r.losses();
            } else {
                scores = CircuitProbing.scores(run, CircuitProbing.Options.defaults().withEpochs(3)
                    .withCircuitSizes(List.of(CircuitProbing.CircuitSize.of(10), CircuitProbing.CircuitSize.of(40))))
                    .flat();
            }
            return new Probed(m.currentMasks().flat(), scores, losses, counting.allReduces.get());
        }
    }

    /**
     * The same seed on {@code world} launched ranks gives one process's masks up to float rounding (the gradients
     * are summed in another order; 1e-4 absolute on masks of size ~2 after 8 Adam steps of 0.1), circuit probing
     * the same levels, and the loss curve within 1e-4 relative.
     */
    private static void assertProbing(String which, int world, Path dir) throws Exception {
        Probed single = probe(which, Collective.single());
        Path file = dir.resolve(which + "-" + world + ".txt");
        LaunchTest.Run run = LaunchTest.launch(world, 1, TIMEOUT, Duration.ofSeconds(10), ProbingWorker.class.getName(),
            List.of(which, file.toString()));
        assertEquals(0, run.exitCode(), run.stderr());
        List<String> got = Files.readAllLines(file);
        List<String> want = ProbingWorker.lines(single);
        int steps = single.losses().isEmpty() ? 0 : single.losses().size();
        assertTrue(Integer.parseInt(got.get(0).split(" ")[1]) >= 8,
            which + ": rank 0 summed gradients every step: " + got.get(0));
        assertEquals(want.size(), got.size(), which + ": values written");
        double moved = 0;
        for (int i = 1; i < want.size(); i++) {
            String[] w = want.get(i).split(" "), g = got.get(i).split(" ");
            assertEquals(w[0], g[0], "line " + i);
            double a = Double.parseDouble(w[1]), b = Double.parseDouble(g[1]);
            switch (w[0]) {
                case "mask" -> {
                    assertEquals(a, b, 1e-4, which + " " + want.get(i) + " (line " + i + ") on " + world + " ranks");
                    moved = Math.max(moved, Math.abs(Math.abs(a) - Math.log(5)));
                }
                case "score" -> {
                    if (which.equals("circuit")) assertEquals(a, b, 0.0, which + " level, line " + i);
                }
                default -> assertEquals(a, b, 1e-4 * Math.abs(a) + 1e-6, which + " loss, line " + i + " of " + steps);
            }
        }
        assertTrue(moved > 0.05, which + ": the masks trained away from their start (" + moved + ")");
    }

    @Test
    void probingOnTwoLaunchedRanksFollowsOneProcess(@TempDir Path dir) throws Exception {
        assertProbing("subnetwork", 2, dir);
    }

    @Test
    @Tag("slow")
    void probingOnMoreLaunchedRanksFollowsOneProcess(@TempDir Path dir) throws Exception {
        assertProbing("circuit", 2, dir);
        assertProbing("subnetwork", 3, dir);
        assertProbing("tree", 3, dir);
        assertProbing("circuit", 3, dir);
    }
}
