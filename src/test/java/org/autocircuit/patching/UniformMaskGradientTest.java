package org.autocircuit.patching;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * {@link PatchableModel#patchModeAtUniformMasks} (integrated gradients' points: every mask at one value) skips the
 * per-source gradient through the patch differences and carries it as one term per destination; its mask gradients
 * must equal those of plain {@link PatchableModel#patchMode}, which sends that gradient through the kernels per
 * source. Checked on every graph layout a mask gradient can meet (Q/K/V split or not, token positions, grouped and
 * ungrouped grouped-query attention, parallel attention, every output position, the non-transformer micro model,
 * factorized and not), under every ablation type (four of them only in the slow run), both resample sides, on both
 * kernel paths, at mask values 0.3, 0.6 and 1; and with one mask off the uniform value, where the mode must fall back
 * to the plain path. Each pass also counts whether the shortcut ran, so a fallback cannot pass for it.
 */
class UniformMaskGradientTest {

    /**
     * @param sharedHeads whether uniform-mask passes under autograd give the Q/K/V heads one shared input
     *                    ({@code PatchMode.backward} then computes their mask gradients): separate Q/K/V inputs, one
     *                    mask row per head, no grouped-query attention
     */
    record Layout(String name, Supplier<PatchableModel> model, boolean sharedHeads) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<Layout> layouts(String kernels) {
        Kernels k = Fixtures.kernels(kernels);
        List<Layout> out = new ArrayList<>();
        out.add(new Layout("gpt2 qkv split", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, k), true));
        out.add(new Layout("gpt2 qkv joint", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, false, k), false));
        out.add(new Layout("gpt2 token graph", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, 15, true, k), false));
        out.add(new Layout("gpt2 all positions", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.ALL, null, true, k), true));
        // the node graph has no Q/K/V destinations (edges through the residual checkpoints only)
        out.add(new Layout("gpt2 node graph", () -> PatchableModel.of(Fixtures.model(), false, OutputSlice.LAST_SEQ, null, true, k), false));
        out.add(new Layout("llama gqa ungrouped", () -> PatchableModel.of(FamilyFixtures.model("llama"), true,
            OutputSlice.LAST_SEQ, null, true, GqaLayout.UNGROUPED, k), false));
        out.add(new Layout("llama gqa grouped", () -> PatchableModel.of(FamilyFixtures.model("llama"), true,
            OutputSlice.LAST_SEQ, null, true, GqaLayout.GROUPED, k), false));
        out.add(new Layout("neox parallel attention", () -> PatchableModel.of(FamilyFixtures.model("neox"), true,
            OutputSlice.LAST_SEQ, null, true, k), true));
        // RMSNorm and rotary positions (and Gemma-2's post-norms and soft caps), float32, one key/value head per query head
        out.add(new Layout("llama rmsnorm ungrouped float32", () -> PatchableModel.of(ungroupedFloat("llama"), true,
            OutputSlice.LAST_SEQ, null, true, k), true));
        out.add(new Layout("gemma2 rmsnorm ungrouped float32", () -> PatchableModel.of(ungroupedFloat("gemma2"), true,
            OutputSlice.LAST_SEQ, null, true, k), true));
        return out;
    }

    /**
     * A random float32 model of a family fixture's config with as many key/value heads as query heads, and a vocabulary
     * that holds the IOI fixture's GPT-2 token ids.
     */
    static org.autocircuit.model.HookedTransformer ungroupedFloat(String family) {
        org.autocircuit.model.ModelConfig c;
        try (org.autocircuit.model.HookedTransformer m = FamilyFixtures.model(family)) {
            c = m.config();
        }
        org.autocircuit.model.ModelConfig u = new org.autocircuit.model.ModelConfig(c.architecture(), c.nLayers(),
            c.dModel(), c.nHeads(), c.nHeads(), c.dHead(), c.dMlp(), Math.max(c.dVocab(), 50257), c.nCtx(), c.lnEps(), c.norm(), c.actFn(),
            c.attnOnly(), c.parallelAttnMlp(), c.gatedMlp(), c.tiedUnembed(), c.bosTokenId(), c.positions(), c.biases(),
            c.extras());
        return org.autocircuit.model.HookedTransformer.randomInit(u, 7, 0.05);
    }

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String kernels : new String[] {"reference", "native"}) {
            for (Layout layout : layouts(kernels)) out.add(Arguments.of(layout, kernels));
        }
        return out.stream();
    }

    /** Three kinds of patch values in the default run: another prompt's, zeros, and a dataset mean. */
    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("cases")
    void maskGradientsEqualThePlainPath(Layout layout, String kernels) {
        check(layout, List.of(AblationType.RESAMPLE, AblationType.ZERO, AblationType.TOKENWISE_MEAN_CLEAN_AND_CORRUPT));
    }

    /** Every other ablation type. */
    @Tag("slow")
    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("cases")
    void maskGradientsEqualThePlainPathUnderEveryAblation(Layout layout, String kernels) {
        check(layout, List.of(AblationType.TOKENWISE_MEAN_CLEAN, AblationType.TOKENWISE_MEAN_CORRUPT,
            AblationType.BATCH_TOKENWISE_MEAN, AblationType.BATCH_ALL_TOK_MEAN));
    }

    private static void check(Layout layout, List<AblationType> types) {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        PromptPairBatch batch = batches.get(0);
        try (PointerScope scope = new PointerScope(); PatchableModel model = layout.model().get()) {
            long sharedBefore = model.sharedHeadInputCount();
            for (AblationType type : types) {
                Ablations.CleanCorrupt side = type.needsCleanCorrupt() ? Ablations.CleanCorrupt.CORRUPT : null;
                Map<Long, Tensor> patches = Ablations.batchSrcAblations(model, batches, type, side);
                Tensor patch = patches.get(batch.key());
                for (double alpha : new double[] {0.0, 0.3, 1.0}) {
                    String where = layout + " " + type + " at mask " + alpha;
                    float[] plain = gradients(model, batch, patch, alpha, false);
                    float[] uniform = gradients(model, batch, patch, alpha, true);
                    assertTrue(maxAbs(plain) > 0, where + ": no gradient at all");
                    assertClose(plain, uniform, 1e-6, 1e-4, where);
                }
            }
            assertTrue((model.sharedHeadInputCount() > sharedBefore) == layout.sharedHeads(),
                layout + ": shared Q/K/V inputs expected " + layout.sharedHeads());
        }
    }

    /**
     * A caller's scratch current-output buffer (what integrated gradients hand every point of a batch) changes no
     * gradient: the deferred mask gradients form {@code curr − patch} in it and flip the products' signs, which gives
     * the same bits as {@code patch − curr} in a new buffer. The buffer then holds {@code curr − patch}, checked
     * against the current outputs of the same pass without one (so the in-place path is known to have run).
     */
    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("cases")
    void scratchBufferGivesTheSameGradients(Layout layout, String kernels) {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        PromptPairBatch batch = batches.get(0);
        try (PointerScope scope = new PointerScope(); PatchableModel model = layout.model().get()) {
            Tensor patch = Ablations.batchSrcAblations(model, batches, AblationType.RESAMPLE,
                Ablations.CleanCorrupt.CORRUPT).get(batch.key());
            for (double alpha : new double[] {0.0, 0.3}) {
                String where = layout + " at mask " + alpha;
                float[][] currLessPatch = new float[1][];
                float[] own = gradients(model, batch, patch, uniformMasks(model, alpha), true, alpha, null, currLessPatch);
                Tensor scratch = org.bytedeco.pytorch.global.torch.empty_like(patch);
                float[] withScratch = gradients(model, batch, patch, uniformMasks(model, alpha), true, alpha, scratch, null);
                assertTrue(maxAbs(own) > 0, where + ": no gradient at all");
                assertTrue(java.util.Arrays.equals(own, withScratch), where + ": the scratch buffer changed the gradients");
                boolean deferred = model.sharedHeadInputCount() > 0 || model.rowSumInputCount() > 0;
                if (deferred) {
                    // every source row the pass wrote: curr − patch (rows it never wrote are unspecified in both)
                    float[] expected = currLessPatch[0];
                    float[] actual = org.autocircuit.util.HostTensor.of(scratch.contiguous()).floats();
                    assertClose(expected, actual, 0, 0, where + ": the scratch buffer should hold curr − patch");
                }
            }
        }
    }

    /**
     * With shared Q/K/V inputs the mask gradients of those destinations come from {@code PatchMode.backward}: a plain
     * {@code loss.backward()} must not leave them out silently, and a second pass must not overwrite the source
     * values the first one's gradients still need.
     */
    @Test
    void sharedHeadsNeedThePatchModesBackward() {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        PromptPairBatch batch = batches.get(0);
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Kernels.reference())) {
            Tensor patch = Ablations.batchSrcAblations(model, batches, AblationType.RESAMPLE,
                Ablations.CleanCorrupt.CORRUPT).get(batch.key());
            model.setAllMasks(0.5);
            Tensor input = Inputs.clean(batch), padding = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
            try (PatchableModel.MaskTraining training = model.trainMaskMode()) {
                PatchableModel.PatchMode mode = model.patchModeAtUniformMasks(patch, 0.5);
                Tensor loss = TensorOps.batchAvgAnswerDiff(model.forward(input, padding), batch).neg();
                IllegalStateException twice = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                    () -> model.forward(input, padding));
                assertTrue(twice.getMessage().contains("PatchMode.backward"), twice.getMessage());
                loss.backward();
                IllegalStateException closing = org.junit.jupiter.api.Assertions.assertThrows(IllegalStateException.class,
                    mode::close);
                assertTrue(closing.getMessage().contains("mode.backward(loss)"), closing.getMessage());
                assertTrue(!model.inPatchMode(), "the mode was left although close() threw");
            }
        }
    }

    /** The same with a resample ablation from the clean side (the other side of each pair patched in). */
    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("cases")
    void cleanResampleAndNonUniformMasksEqualThePlainPath(Layout layout, String kernels) {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        PromptPairBatch batch = batches.get(0);
        try (PointerScope scope = new PointerScope(); PatchableModel model = layout.model().get()) {
            Tensor patch = Ablations.batchSrcAblations(model, batches, AblationType.RESAMPLE, Ablations.CleanCorrupt.CLEAN)
                .get(batch.key());
            float[] plain = gradients(model, batch, patch, 0.6, false);
            float[] uniform = gradients(model, batch, patch, 0.6, true);
            assertClose(plain, uniform, 1e-6, 1e-4, layout + " clean resample");
            // one mask value off the uniform one: the mode must notice and take the plain path
            int nEdges = model.graph().nEdges();
            float[] m = new float[nEdges];
            java.util.Arrays.fill(m, 0.6f);
            m[new Random(3).nextInt(nEdges)] = 0.2f;
            PruneScores masks = PruneScores.ofFlat(model.graph(), m);
            float[] plainOff = gradients(model, batch, patch, masks, false, 0.6);
            float[] uniformOff = gradients(model, batch, patch, masks, true, 0.6);
            assertClose(plainOff, uniformOff, 1e-6, 1e-4, layout + " one mask off the uniform value");
        }
    }

    @Test
    void microModelGradientsEqualThePlainPath() {
        PromptPairBatch batch = MicroPatchingTest.microBatch();
        for (boolean factorized : new boolean[] {true, false}) {
            for (Integer seqLen : new Integer[] {null, 3}) {
                try (PointerScope scope = new PointerScope();
                     PatchableModel model = PatchableModel.of(new MicroModel(2), factorized, OutputSlice.LAST_SEQ, seqLen,
                         true, Kernels.reference())) {
                    for (AblationType type : new AblationType[] {AblationType.RESAMPLE, AblationType.ZERO}) {
                        Ablations.CleanCorrupt side = type.needsCleanCorrupt() ? Ablations.CleanCorrupt.CORRUPT : null;
                        Tensor patch = Ablations.batchSrcAblations(model, List.of(batch), type, side).get(batch.key());
                        String where = "micro factorized=" + factorized + " seqLen=" + seqLen + " " + type;
                        float[] plain = gradients(model, batch, patch, 0.5, false);
                        float[] uniform = gradients(model, batch, patch, 0.5, true);
                        assertTrue(maxAbs(plain) > 0, where + ": no gradient at all");
                        assertClose(plain, uniform, 1e-6, 1e-4, where);
                    }
                }
            }
        }
    }

    private static float[] gradients(PatchableModel model, PromptPairBatch batch, Tensor patch, double alpha, boolean uniform) {
        return gradients(model, batch, patch, uniformMasks(model, alpha), uniform, alpha);
    }

    /** Every mask at {@code alpha}. */
    private static PruneScores uniformMasks(PatchableModel model, double alpha) {
        float[] m = new float[model.graph().nEdges()];
        java.util.Arrays.fill(m, (float) alpha);
        return PruneScores.ofFlat(model.graph(), m);
    }

    /** The mask gradients of the average logit difference of one patched pass with these masks. */
    private static float[] gradients(PatchableModel model, PromptPairBatch batch, Tensor patch, PruneScores masks,
                                     boolean uniform, double alpha) {
        return gradients(model, batch, patch, masks, uniform, alpha, null, null);
    }

    /**
     * {@link #gradients(PatchableModel, PromptPairBatch, Tensor, PruneScores, boolean, double)} with the uniform modes
     * given {@code scratch} as their current-output buffer (null: a buffer of their own); {@code currLessPatch}, if
     * given, receives the pass's {@code curr − patch} (read before the mode closes).
     */
    private static float[] gradients(PatchableModel model, PromptPairBatch batch, Tensor patch, PruneScores masks,
                                     boolean uniform, double alpha, Tensor scratch, float[][] currLessPatch) {
        model.setMasks(masks);
        try (PatchableModel.MaskTraining training = model.trainMaskMode();
             PointerScope step = new PointerScope();
             PatchableModel.PatchMode mode = !uniform ? model.patchMode(patch)
                 : alpha == 0 ? model.patchModeAtZeroMasks(patch, scratch)
                 : model.patchModeAtUniformMasks(patch, alpha, scratch)) {
            long termsBefore = model.uniformMaskTermCount(), sharedBefore = model.sharedHeadInputCount();
            long rowsBefore = model.rowSumInputCount();
            Tensor logits = model.forward(Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN));
            if (logits.dim() == 3) logits = logits.select(1, -1);   // OutputSlice.ALL: the answer is read at the last position
            mode.backward(TensorOps.batchAvgAnswerDiff(logits, batch).neg());
            boolean allAlpha = true;
            for (float v : masks.flat()) allAlpha &= v == (float) alpha;
            long terms = model.uniformMaskTermCount() - termsBefore;
            long shared = model.sharedHeadInputCount() - sharedBefore;
            // the shortcuts ran exactly where they may: uniform masks asked for and present
            if (uniform && allAlpha && alpha != 0) assertTrue(terms > 0, "the uniform-mask pass did not take the shortcut");
            else assertTrue(terms == 0, "the shortcut ran on a pass that may not take it");
            boolean sharedExpected = uniform && allAlpha && !(model.model() instanceof org.autocircuit.model.MicroModel)
                && model.graph().seqLen().isEmpty() && model.model().supportsHeadInputGradients()
                && model.graph().destModules().stream().anyMatch(d -> d.moduleName().endsWith("hook_q_input"));
            if (sharedExpected) assertTrue(shared > 0, "the Q/K/V heads did not share their input");
            else assertTrue(shared == 0, "the Q/K/V heads shared their input on a pass that may not");
            // one-row destinations (MLP inputs, the final residual) read the running difference sum exactly when every
            // mask was verified to hold the mode's value, in a float32 model
            long rows = model.rowSumInputCount() - rowsBefore;
            boolean float32 = model.model().dtype() == org.bytedeco.pytorch.global.torch.ScalarType.Float;
            if (!(uniform && allAlpha && float32)) assertTrue(rows == 0, "the running-sum inputs ran on a pass that may not");
            else if (model.graph().factorized() && model.graph().seqLen().isEmpty()) {
                assertTrue(rows > 0, "the one-row destinations did not read the running difference sum");
            }
            if (currLessPatch != null) {
                currLessPatch[0] = org.autocircuit.util.HostTensor.of(model.currSrcOuts().detach().sub(patch).contiguous()).floats();
            }
            return model.maskGradients().flat();
        }
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }
}
