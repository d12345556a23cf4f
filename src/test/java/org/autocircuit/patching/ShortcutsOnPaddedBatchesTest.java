package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.testing.BlockScores;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every shortcut run_circuits takes, on left-padded batches that mix two prompt lengths, under every ablation type and
 * both patch types, against the plain path: ablation values computed on whole prompts at every position (outside
 * run_circuits' trimmed passes), masks set, one whole patched forward pass per circuit and batch. The shortcuts:
 * the shared prefix run over a key/value cache (the batches here share three leading positions that are padding in the
 * short rows and BOS, "Then", "," in the long ones, so the pad id and BOS are the same token with different masks),
 * restarting at the first patched block, the all-0 and all-1 circuits, the last block computed at the last position
 * only, and the shared Q/K/V inputs. Both kernel paths.
 */
class ShortcutsOnPaddedBatchesTest {
    @TempDir
    static Path dir;

    /** 16 short and 16 long (the longest) IOI prompts, interleaved: the short rows are left-padded, the long start with BOS. */
    static List<PromptPairBatch> mixedBatches() throws IOException {
        ObjectMapper m = new ObjectMapper();
        var padded = m.readTree(Fixtures.resource("datasets/ioi-32-padded.json").toFile()).get("prompts");
        ObjectNode shortKind = m.createObjectNode();
        shortKind.put("clean", "Then, Jane and Mary left. Jane gave it to");
        shortKind.put("corrupt", "Then, Roman and Ian left. Crew gave it to");
        shortKind.putArray("answers").add(" Mary");
        shortKind.putArray("wrong_answers").add(" Jane");
        ObjectNode root = m.createObjectNode();
        ArrayNode prompts = root.putArray("prompts");
        for (int i = 0; i < 32; i++) prompts.add(i % 2 == 0 ? padded.get(0) : shortKind);
        Path file = dir.resolve("mixed.json");
        m.writeValue(file.toFile(), root);
        return Datasets.load(file, LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(16, 16)
            .returnSeqLength(false).tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build(),
            new Gpt2Tokenizer()).test().batches();
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void everyShortcutEqualsThePlainPath(String kernels) throws IOException {
        List<PromptPairBatch> batches = mixedBatches();
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernels))) {
            for (PromptPairBatch batch : batches) {
                long[] mask = batch.cleanPadding().longs();
                assertEquals(0, mask[batch.seqLen()], "batch " + batch.key() + ": the second row starts with padding");
                assertEquals(1, mask[0], "batch " + batch.key() + ": the first row starts with BOS");
                assertTrue(RunCircuits.sharedPrefixLength(model, batch) >= 3, "shared prefix of batch " + batch.key());
            }
            // scores that put the top edges into block 1, so small circuits start there
            BlockScores favoured = BlockScores.favouring(model, 1, 3);
            PruneScores scores = favoured.scores();
            int block1Edges = favoured.blockEdges();
            int nEdges = model.graph().nEdges();
            // all-0, block-1 only, block 0 too (restart earlier), block-1 only again, and all-1
            List<Integer> counts = List.of(0, 3, block1Edges + 5, 1, nEdges);
            for (AblationType ablation : AblationType.values()) {
                for (PatchType type : PatchType.values()) {
                    String where = ablation + " " + type + " (" + kernels + ")";
                    CircuitOutputs outs = RunCircuits.run(model, batches, counts, scores, type, ablation, false);
                    for (int k : counts) {
                        RunCircuits.MaskSet set = RunCircuits.MaskSet.of(scores, scores.threshold(k), type);
                        for (PromptPairBatch batch : batches) {
                            float[] plain = plainPass(model, batches, batch, set.masks(), type, ablation);
                            assertClose(plain, outs.output(set.edgeCount(), batch.key()).floats(), 1e-4,
                                where + ", " + k + " edges, batch " + batch.key());
                        }
                    }
                }
            }
        }
    }

    /**
     * Tail divergence (the loader's cached common prefix) on mixed lengths: prompts that start with a name diverge at
     * position 1, so position 0 alone would be cached, and it is 50256 in every prompt: BOS in the long ones, padding
     * in the short ones. Comparing token ids only, the cache served each row slot the first batch's prefix, its mask
     * included, so shuffled prompts of the other length silently ran with BOS masked out or padding attended to. The
     * prefix must now stop where the padding differs; the outputs equal those of the same prompts loaded without tail
     * divergence.
     */
    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference"})
    void tailDivergenceOnMixedLengthsKeepsEveryPromptsOwnPrefix(String kernels) throws IOException {
        ObjectMapper m = new ObjectMapper();
        ObjectNode root = m.createObjectNode();
        ArrayNode prompts = root.putArray("prompts");
        for (int i = 0; i < 32; i++) {
            ObjectNode p = prompts.addObject();
            boolean longKind = i % 2 == 0;
            p.put("clean", longKind ? "Mary and John went to the store after a long day at work, and John gave a drink to"
                : "Mary and John left. John gave it to");
            p.put("corrupt", longKind ? "Alice and Bob went to the store after a long day at work, and Bob gave a drink to"
                : "Alice and Bob left. Bob gave it to");
            p.putArray("answers").add(" Mary");
            p.putArray("wrong_answers").add(" John");
        }
        Path file = dir.resolve("mixed-names.json");
        m.writeValue(file.toFile(), root);
        LoaderOptions.Builder options = LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(16, 16)
            .returnSeqLength(false).shuffle(true).randomSeed(42).pad(true);
        Datasets.LoadedDatasets cut = Datasets.load(file, options.tailDivergence(true).build(), new Gpt2Tokenizer());
        Datasets.LoadedDatasets whole = Datasets.load(file, options.tailDivergence(false).build(), new Gpt2Tokenizer());
        assertEquals(0, cut.test().divergeIdx(), "no prefix is common to prompts whose padding differs");
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernels))) {
            // the cache a task builds from the loader's prefix (none when the prefix is empty)
            cut.test().kvPrefix().ifPresent(prefix -> model.addKvCache(
                ((org.autocircuit.model.HookedTransformer) model.model()).buildKvCache(prefix.toTensor(),
                    cut.test().kvPrefixPadding().map(HostTensor::toTensor).orElse(null))));
            int n = model.graph().nEdges();
            PruneScores zeros = PruneScores.zeros(model.graph());
            CircuitOutputs a = RunCircuits.run(model, cut.test().batches(), List.of(0, n), zeros, PatchType.EDGE_PATCH,
                AblationType.RESAMPLE, false);
            CircuitOutputs b = RunCircuits.run(model, whole.test().batches(), List.of(0, n), zeros, PatchType.EDGE_PATCH,
                AblationType.RESAMPLE, false);
            for (int i = 0; i < whole.test().batches().size(); i++) {
                for (int k : List.of(0, n)) {
                    assertClose(b.output(k, whole.test().batches().get(i).key()).floats(),
                        a.output(k, cut.test().batches().get(i).key()).floats(), 1e-4, "batch " + i + ", " + k + " edges");
                }
            }
        }
    }

    /** One whole patched pass with ablation values computed from whole prompts, outside run_circuits. */
    private static float[] plainPass(PatchableModel model, List<PromptPairBatch> batches, PromptPairBatch batch,
                                     PruneScores masks, PatchType type, AblationType ablation) {
        Ablations.CleanCorrupt run = type == PatchType.TREE_PATCH ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        Ablations.CleanCorrupt other = run == Ablations.CleanCorrupt.CLEAN ? Ablations.CleanCorrupt.CORRUPT
            : Ablations.CleanCorrupt.CLEAN;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor patch = ablation.meanOverDataset() ? Ablations.datasetMean(model, batches, ablation)
                : Ablations.srcAblations(model, Inputs.input(batch, other), Inputs.padding(batch, other), ablation);
            model.setMasks(masks);
            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                return HostTensor.of(model.forward(Inputs.input(batch, run), Inputs.padding(batch, run))).floats();
            }
        }
    }

    private static void assertClose(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + ": lengths");
        double max = 0;
        for (int i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i] - actual[i]));
        assertTrue(max <= tol, what + ": max |diff| " + max + " > " + tol);
    }
}
