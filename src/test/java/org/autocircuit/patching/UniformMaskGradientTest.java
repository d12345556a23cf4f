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

    record Layout(String name, Supplier<PatchableModel> model) {
        @Override
        public String toString() {
            return name;
        }
    }

    static List<Layout> layouts(String kernels) {
        Kernels k = Fixtures.kernels(kernels);
        List<Layout> out = new ArrayList<>();
        out.add(new Layout("gpt2 qkv split", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, k)));
        out.add(new Layout("gpt2 qkv joint", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, false, k)));
        out.add(new Layout("gpt2 token graph", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, 15, true, k)));
        out.add(new Layout("gpt2 all positions", () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.ALL, null, true, k)));
        out.add(new Layout("llama gqa ungrouped", () -> PatchableModel.of(FamilyFixtures.model("llama"), true,
            OutputSlice.LAST_SEQ, null, true, GqaLayout.UNGROUPED, k)));
        out.add(new Layout("llama gqa grouped", () -> PatchableModel.of(FamilyFixtures.model("llama"), true,
            OutputSlice.LAST_SEQ, null, true, GqaLayout.GROUPED, k)));
        out.add(new Layout("neox parallel attention", () -> PatchableModel.of(FamilyFixtures.model("neox"), true,
            OutputSlice.LAST_SEQ, null, true, k)));
        return out;
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
            for (AblationType type : types) {
                Ablations.CleanCorrupt side = type.needsCleanCorrupt() ? Ablations.CleanCorrupt.CORRUPT : null;
                Map<Long, Tensor> patches = Ablations.batchSrcAblations(model, batches, type, side);
                Tensor patch = patches.get(batch.key());
                for (double alpha : new double[] {0.3, 1.0}) {
                    String where = layout + " " + type + " at mask " + alpha;
                    float[] plain = gradients(model, batch, patch, alpha, false);
                    float[] uniform = gradients(model, batch, patch, alpha, true);
                    assertTrue(maxAbs(plain) > 0, where + ": no gradient at all");
                    assertClose(plain, uniform, 1e-6, 1e-4, where);
                }
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
        float[] m = new float[model.graph().nEdges()];
        java.util.Arrays.fill(m, (float) alpha);
        return gradients(model, batch, patch, PruneScores.ofFlat(model.graph(), m), uniform, alpha);
    }

    /** The mask gradients of the average logit difference of one patched pass with these masks. */
    private static float[] gradients(PatchableModel model, PromptPairBatch batch, Tensor patch, PruneScores masks,
                                     boolean uniform, double alpha) {
        model.setMasks(masks);
        try (PatchableModel.MaskTraining training = model.trainMaskMode();
             PointerScope step = new PointerScope();
             PatchableModel.PatchMode mode = uniform ? model.patchModeAtUniformMasks(patch, alpha) : model.patchMode(patch)) {
            long termsBefore = model.uniformMaskTermCount();
            Tensor logits = model.forward(Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN));
            if (logits.dim() == 3) logits = logits.select(1, -1);   // OutputSlice.ALL: the answer is read at the last position
            TensorOps.batchAvgAnswerDiff(logits, batch).neg().backward();
            boolean allAlpha = true;
            for (float v : masks.flat()) allAlpha &= v == (float) alpha;
            long terms = model.uniformMaskTermCount() - termsBefore;
            // the shortcut ran exactly where it may: uniform masks asked for and present
            if (uniform && allAlpha) assertTrue(terms > 0, "the uniform-mask pass did not take the shortcut");
            else assertTrue(terms == 0, "the shortcut ran on a pass that may not take it");
            return model.maskGradients().flat();
        }
    }

    private static double maxAbs(float[] a) {
        double m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }
}
