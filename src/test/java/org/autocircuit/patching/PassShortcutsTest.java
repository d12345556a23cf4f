package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.BlockScores;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The work patched passes skip must not change their results:
 * <ul>
 *   <li>Q/K/V inputs in compact form (heads that share the most common mask row are projected together) equal the
 *       per-head form, which passes with gradients still use, for mask patterns from all-shared to all-different;</li>
 *   <li>run_circuits' all-0 and all-1 circuits, answered by the plain pass and by the pass that computed the
 *       resample values, equal real patched passes, also when the two sides are padded differently;</li>
 *   <li>circuits restarted at their first patched block, and run on the tokens after the prompts' shared prefix
 *       over a cache of it, equal whole passes over whole prompts.</li>
 * </ul>
 * Both on the reference kernels and, when the library is present, the native ones.
 */
class PassShortcutsTest {

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void compactHeadInputsEqualThePerHeadPath(String kernelName) {
        PromptPairBatch batch = Fixtures.ioi().train().batches().get(0);
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernelName))) {
            Tensor input = Inputs.input(batch, Ablations.CleanCorrupt.CORRUPT);
            Tensor padding = Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT);
            Tensor patch = Ablations.srcAblations(model, Inputs.clean(batch),
                Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN), AblationType.RESAMPLE);
            int nEdges = model.graph().nEdges();
            Random random = new Random(11);
            long compactBefore = model.compactHeadInputCount();
            // all 0, all 1, a few edges, a few edges kept, random 0/1 and fractional masks, and (-2) one head of
            // one block with its own Q row while all other heads share the all-0 row
            for (double p1 : new double[] {0, 1, 0.01, 0.99, 0.3, -1, -2}) {
                float[] m = new float[nEdges];
                for (int i = 0; i < nEdges; i++) {
                    m[i] = p1 == -1 ? random.nextFloat() : random.nextDouble() < p1 ? 1f : 0f;
                }
                model.setMasks(PruneScores.ofFlat(model.graph(), m));
                if (p1 == -2) {
                    try (NoGradGuard g = new NoGradGuard()) {
                        model.mask("blocks.1.hook_q_input").select(0, 2).fill_(new org.bytedeco.pytorch.Scalar(1.0));
                    }
                }
                float[] compact;
                float[] perHead;
                try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                    try (NoGradGuard g = new NoGradGuard()) {
                        compact = HostTensor.of(model.forward(input, padding)).floats();
                    }
                    // with gradients on, every mask row stays in the autograd graph: the per-head path
                    perHead = HostTensor.of(model.forward(input, padding).detach()).floats();
                }
                assertClose(perHead, compact, 1e-4, "masks with P(1) = " + p1);
            }
            assertTrue(model.compactHeadInputCount() > compactBefore, "no pass took the compact path");
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void allZeroAndAllOneCircuitsEqualPatchedPasses(String kernelName) {
        List<PromptPairBatch> batches = Fixtures.ioi().test().batches();
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernelName))) {
            int nEdges = model.graph().nEdges();
            PruneScores scores = randomScores(model, 5);
            for (PatchType type : PatchType.values()) {
                CircuitOutputs outs = RunCircuits.run(model, batches, List.of(0, 7, nEdges), scores, type,
                    AblationType.RESAMPLE, false);
                // quirk 2 of docs/quirks.md: the masks end as the last circuit's, although its pass was skipped
                float last = type == PatchType.EDGE_PATCH ? 1f : 0f;
                for (float v : model.currentMasks().flat()) assertEquals(last, v, type + ": masks after the run");
                boolean onClean = type == PatchType.TREE_PATCH;
                for (PromptPairBatch batch : batches) {
                    // EDGE_PATCH: 0 edges = nothing patched, all edges = all ablated; TREE_PATCH the other way round
                    float[] none = patchedPass(model, batch, onClean, 0f);
                    float[] all = patchedPass(model, batch, onClean, 1f);
                    float[] zeroCircuit = outs.output(0, batch.key()).floats();
                    float[] fullCircuit = outs.output(nEdges, batch.key()).floats();
                    String where = type + " batch " + batch.key();
                    assertClose(type == PatchType.EDGE_PATCH ? none : all, zeroCircuit, 1e-4, where + ", 0 edges");
                    assertClose(type == PatchType.EDGE_PATCH ? all : none, fullCircuit, 1e-4, where + ", all edges");
                }
            }
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void allOneCircuitIsThePatchRunEvenWhenThePaddingDiffers(String kernelName) {
        PromptPairBatch original = Fixtures.ioi().test().batches().get(0);
        long[] shape = original.corrupt().shape();
        long[] mask = new long[(int) (shape[0] * shape[1])];
        java.util.Arrays.fill(mask, 1);
        for (int b = 0; b < shape[0]; b += 2) mask[(int) (b * shape[1])] = 0;    // every other prompt: first token padding
        PromptPairBatch batch = new PromptPairBatch(original.key(), original.batchDivergeIdx(), original.clean(),
            original.corrupt(), original.cleanPadding(), HostTensor.ofLongs(mask, shape), original.answers(),
            original.wrongAnswers());
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernelName))) {
            int nEdges = model.graph().nEdges();
            CircuitOutputs outs = RunCircuits.run(model, List.of(batch), List.of(nEdges), randomScores(model, 6),
                PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
            float[] actual = outs.output(nEdges, batch.key()).floats();
            // the real patched pass runs its heads under the corrupt padding, yet its output reads patch values only
            float[] patched = patchedPass(model, batch, false, 1f);
            float[] patchRun;
            try (NoGradGuard g = new NoGradGuard()) {
                patchRun = HostTensor.of(model.forward(Inputs.clean(batch),
                    Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN))).floats();
            }
            assertClose(patched, patchRun, 1e-4, "patched pass with every edge ablated vs the clean run");
            assertClose(patched, actual, 1e-4, "run_circuits with every edge vs a patched pass");
            // and the padding does change the corrupt run itself, so the identity above is not vacuous
            float[] corruptPadded;
            float[] corruptUnpadded;
            try (NoGradGuard g = new NoGradGuard()) {
                corruptPadded = HostTensor.of(model.forward(Inputs.corrupt(batch),
                    Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT))).floats();
                corruptUnpadded = HostTensor.of(model.forward(Inputs.corrupt(batch), null)).floats();
            }
            double max = 0;
            for (int i = 0; i < corruptPadded.length; i++) max = Math.max(max, Math.abs(corruptPadded[i] - corruptUnpadded[i]));
            assertTrue(max > 1e-3, "the padding must change the corrupt run; max diff " + max);
        }
    }

    /**
     * Passes that restart at their first patched block (run_circuits' shared unpatched prefix) equal whole patched
     * passes: scores put the top edges into block 1 of the 2-block model, so the small circuits start there, and the
     * counts come in an order where a later circuit must start earlier than the one before it and then later again.
     */
    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void circuitsRestartedAtTheirFirstPatchedBlockEqualWholePasses(String kernelName) {
        List<PromptPairBatch> batches = Fixtures.ioi().test().batches();
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(kernelName))) {
            BlockScores favoured = BlockScores.favouring(model, 1, 8);
            PruneScores scores = favoured.scores();
            int block1Edges = favoured.blockEdges();
            // 3 edges: records the prefix; block1Edges + 5: starts at block 0 and rewrites its sources; 1 and 25:
            // patched only in block 1, yet must start at block 0 now
            List<Integer> counts = List.of(3, block1Edges + 5, 1, 25);
            // these prompts also share their first tokens (BOS, "When"), so the passes run on the rest only
            for (PromptPairBatch batch : batches) {
                assertTrue(RunCircuits.sharedPrefixLength(model, batch) >= 2, "shared prefix of batch " + batch.key());
            }
            for (PatchType type : new PatchType[] {PatchType.EDGE_PATCH}) {
                CircuitOutputs outs = RunCircuits.run(model, batches, counts, scores, type, AblationType.RESAMPLE, false);
                for (int k : counts) {
                    RunCircuits.MaskSet set = RunCircuits.MaskSet.of(scores, scores.threshold(k), type);
                    assertEquals(k <= 25 ? 1 : 0, set.firstPatchedBlock(), k + " edges: first patched block");
                    for (PromptPairBatch batch : batches) {
                        float[] whole;
                        try (PointerScope step = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                            Tensor patch = Ablations.srcAblations(model, Inputs.clean(batch),
                                Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN), AblationType.RESAMPLE);
                            model.setMasks(set.masks());
                            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                                whole = HostTensor.of(model.forward(Inputs.corrupt(batch),
                                    Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT))).floats();
                            }
                        }
                        assertClose(whole, outs.output(set.edgeCount(), batch.key()).floats(), 1e-4,
                            type + " " + k + " edges, batch " + batch.key());
                    }
                }
            }
        }
    }

    /** A real patched pass with every mask at {@code value}: on the clean prompt (values from corrupt) or the reverse. */
    private static float[] patchedPass(PatchableModel model, PromptPairBatch batch, boolean onClean, float value) {
        Ablations.CleanCorrupt run = onClean ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        Ablations.CleanCorrupt other = onClean ? Ablations.CleanCorrupt.CORRUPT : Ablations.CleanCorrupt.CLEAN;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor patch = Ablations.srcAblations(model, Inputs.input(batch, other), Inputs.padding(batch, other),
                AblationType.RESAMPLE);
            model.setAllMasks(value);
            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                return HostTensor.of(model.forward(Inputs.input(batch, run), Inputs.padding(batch, run))).floats();
            }
        }
    }

    private static PruneScores randomScores(PatchableModel model, long seed) {
        Random random = new Random(seed);
        float[] s = new float[model.graph().nEdges()];
        for (int i = 0; i < s.length; i++) s[i] = random.nextFloat();
        return PruneScores.ofFlat(model.graph(), s);
    }

    private static void assertClose(float[] expected, float[] actual, double tol, String what) {
        assertEquals(expected.length, actual.length, what + ": lengths");
        double max = 0;
        for (int i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i] - actual[i]));
        assertTrue(max <= tol, what + ": max |diff| " + max + " > " + tol);
    }
}
