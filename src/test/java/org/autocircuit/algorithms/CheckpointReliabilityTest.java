package org.autocircuit.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.ChildJvm;
import org.autocircuit.testing.Fuzz;
import org.autocircuit.util.Progress;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Checkpoints carry the run's {@link RunIdentity} (weights, dataset, options, code) and are refused, naming what
 * differs, by a run with another one; and their readers survive seeded mutations with clean errors only.
 */
class CheckpointReliabilityTest {
    @TempDir Path dir;

    private static final RunIdentity A = RunIdentity.of("weights-a", "data", "opts");
    private static final RunIdentity B = RunIdentity.of("weights-b", "data", "opts");

    private static PruneRun run(PatchableModel m, List<PromptPairBatch> batches, Path file, RunIdentity id) {
        return new PruneRun(m, batches, null, Progress.NONE, 3, file, id);
    }

    @Test
    void acdcRefusesACheckpointOfOtherWeights() {
        Path file = dir.resolve("acdc.ckpt");
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 4, 2);
        try (PatchableModel m = ProbingFixtures.microModel()) {
            var first = Acdc.scores(run(m, batches, file, A), Acdc.Options.acdc());
            assertTrue(Files.exists(file));
            assertEquals(first, Acdc.scores(run(m, batches, file, A), Acdc.Options.acdc()), "same identity resumes");
            var e = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run(m, batches, file, B), Acdc.Options.acdc()));
            assertTrue(e.getMessage().contains("model weights (this run weights-b, the checkpoint weights-a)"),
                e.getMessage());
            e = assertThrows(IllegalArgumentException.class,
                () -> Acdc.scores(run(m, batches, file, RunIdentity.of("weights-a", "data", "other")), Acdc.Options.acdc()));
            assertTrue(e.getMessage().contains("options") && !e.getMessage().contains("model weights"), e.getMessage());
        }
    }

    @Test
    void probingRefusesACheckpointOfOtherWeights() {
        Path file = dir.resolve("sp.ckpt");
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 4, 2);
        var o = SubnetworkProbing.Options.defaults().withEpochs(2);
        try (PatchableModel m = ProbingFixtures.microModel()) {
            SubnetworkProbing.scores(run(m, batches, file, A), o);
            var e = assertThrows(IllegalArgumentException.class, () -> SubnetworkProbing.scores(run(m, batches, file, B), o));
            assertTrue(e.getMessage().contains("this run: model: weights-b")
                && e.getMessage().contains("the file: model: weights-a") && !e.getMessage().contains("dataset:"),
                e.getMessage());
        }
    }

    /** A real ACDC checkpoint of the micro model, and the identity it was written with. */
    private byte[] acdcCheckpoint(Path file) throws Exception {
        try (PatchableModel m = ProbingFixtures.microModel()) {
            Acdc.scores(run(m, ProbingFixtures.microBatches(1, 4, 2), file, A), Acdc.Options.acdc());
        }
        return Files.readAllBytes(file);
    }

    private void fuzzAcdc(long seed, int n) throws Exception {
        Path good = dir.resolve("good.ckpt");
        byte[] seedInput = acdcCheckpoint(good);
        AcdcCheckpoint expected = AcdcCheckpoint.read(good);
        Path file = dir.resolve("fuzz.ckpt");
        int rejected = Fuzz.run("ACDC checkpoint", seedInput, seed, n, input -> {
            Files.write(file, input);
            AcdcCheckpoint.read(file).requireSameRun(expected, file, 39);
        }, IllegalArgumentException.class);
        assertTrue(rejected > n / 4, "most mutations should be rejected, got " + rejected + " of " + n);
    }

    @Test
    void acdcCheckpointReader() throws Exception {
        fuzzAcdc(51, Fuzz.defaultCount());
    }

    // ---- the probing checkpoint: a libtorch archive, read by native code, so fuzzed in a child JVM ----

    /** Child: fuzzes the probing checkpoint reader; exit 0 when every input was accepted or cleanly refused. */
    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args[0]);
        long seed = Long.parseLong(args[1]);
        int n = Integer.parseInt(args[2]);
        Path good = dir.resolve("good-sp.ckpt");
        List<PromptPairBatch> batches = ProbingFixtures.microBatches(1, 4, 2);
        var o = SubnetworkProbing.Options.defaults().withEpochs(2);
        try (PatchableModel m = ProbingFixtures.microModel()) {
            PruneRun r = run(m, batches, good, A);
            SubnetworkProbing.scores(r, o);
            String fingerprint = SubnetworkProbing.fingerprint("subnetwork probing", r, o.canonical());
            Path file = dir.resolve("fuzz-sp.ckpt");
            int rejected = Fuzz.run("probing checkpoint", Files.readAllBytes(good), seed, n, input -> {
                Files.write(file, input);
                SubnetworkProbingCheckpoint.loadIfPresent(file, fingerprint, m.graph());
            }, IllegalArgumentException.class);
            System.out.println("FUZZ-DONE rejected " + rejected + " of " + n);
        } catch (Throwable t) {
            t.printStackTrace(System.out);
            System.exit(1);
        }
        System.exit(0);
    }

    private void fuzzProbingInChild(long seed, int n, int timeoutSeconds) throws Exception {
        Path log = dir.resolve("child.log");
        Process p = ChildJvm.start(log, CheckpointReliabilityTest.class, dir.toString(), Long.toString(seed),
            Integer.toString(n));
        assertTrue(p.waitFor(timeoutSeconds, TimeUnit.SECONDS), "child still running: " + ChildJvm.output(log));
        String out = ChildJvm.output(log);
        assertFalse(ChildJvm.diedOfSignal(p.exitValue()), "the JVM died of a signal: " + out);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("FUZZ-DONE"), out);
    }

    @Test
    void probingCheckpointReader() throws Exception {
        fuzzProbingInChild(61, Math.max(100, Fuzz.defaultCount() / 8), 300);
    }

    @Test
    @Tag("slow")
    void manyMoreInputs() throws Exception {
        fuzzAcdc(71, 50_000);
        fuzzProbingInChild(72, 20_000, 3000);
    }
}
