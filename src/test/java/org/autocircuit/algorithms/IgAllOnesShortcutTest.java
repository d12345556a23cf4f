package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.Progress;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Integrated gradients skip their point at mask 1 where that pass is the patch run itself
 * ({@link MaskGradient#allOnesPassIsThePatchRun}: resample ablation, the same padding on both sides, a factorized
 * transformer graph, masks applied as set): its mask gradients are 0 up to float rounding. The scores must equal those
 * of runs that compute the point, on every graph layout a mask gradient of the logit difference can meet (Q/K/V split and joint, token graph, node graph,
 * grouped and ungrouped grouped-query attention in bf16, parallel attention), from either resample side, on both kernel
 * paths (a few layouts in the default run, all under {@code slow}); and the point must be skipped exactly where allowed
 * (not under zero ablation, not in a node graph).
 */
class IgAllOnesShortcutTest {

    record Layout(String name, Supplier<PatchableModel> model, boolean skips) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** A few layouts in the default run (the skipped point on both kernel paths, a token graph, GQA, the node graph). */
    static Stream<Arguments> quickCases() {
        return allCases().filter(a -> {
            String name = a.get()[0].toString(), kernels = (String) a.get()[1];
            return name.equals("gpt2 qkv split") || (kernels.equals("native")
                ? name.equals("gpt2 token graph") || name.startsWith("llama") : name.equals("gpt2 node graph"));
        });
    }

    static Stream<Arguments> allCases() {
        List<Arguments> out = new ArrayList<>();
        for (String kernels : new String[] {"reference", "native"}) {
            Kernels k = Fixtures.kernels(kernels);
            out.add(Arguments.of(new Layout("gpt2 qkv split",
                () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, k), true), kernels));
            out.add(Arguments.of(new Layout("gpt2 qkv joint",
                () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, false, k), true), kernels));
            out.add(Arguments.of(new Layout("gpt2 token graph",
                () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, 15, true, k), true), kernels));
            out.add(Arguments.of(new Layout("gpt2 node graph",
                () -> PatchableModel.of(Fixtures.model(), false, OutputSlice.LAST_SEQ, null, true, k), false), kernels));
            out.add(Arguments.of(new Layout("llama gqa grouped bf16", () -> PatchableModel.of(FamilyFixtures.model("llama"),
                true, OutputSlice.LAST_SEQ, null, true, GqaLayout.GROUPED, k), true), kernels));
            out.add(Arguments.of(new Layout("neox parallel attention bf16", () -> PatchableModel.of(
                FamilyFixtures.model("neox"), true, OutputSlice.LAST_SEQ, null, true, k), true), kernels));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("quickCases")
    void scoresEqualRunsThatComputeThePoint(Layout layout, String kernels) {
        check(layout, 1);
    }

    /** Every layout on both kernel paths, with a point between 0 and 1 too. */
    @Tag("slow")
    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("allCases")
    void scoresEqualRunsThatComputeThePointOnEveryLayout(Layout layout, String kernels) {
        check(layout, 2);
    }

    /**
     * Gemma-2: the pass at mask 1 norms every head with the clean run's frozen scale, while the patch values carry the
     * patch run's own, so it is not the patch run and its point must run; the scores equal runs that compute it.
     */
    @Test
    void gemma2PointAtMaskOneRuns() throws Exception {
        java.nio.file.Path dir = Fixtures.resource("families/gemma2/model");
        List<PromptPairBatch> batches = org.autocircuit.tasks.Datasets.load(Fixtures.resource("datasets/ioi-32.json"),
            Fixtures.ioiOptions(), org.autocircuit.tasks.Tokenizers.forModel(dir)).train().batches().subList(0, 1);
        try (PatchableModel model = PatchableModel.of(org.autocircuit.model.HookedTransformer.fromPretrained(dir), true,
                OutputSlice.LAST_SEQ, null, true, Fixtures.kernels("native"))) {
            MaskGradient.Options options = new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                MaskGradient.AnswerFunction.AVG_DIFF, null, 1, AblationType.RESAMPLE, Ablations.CleanCorrupt.CORRUPT);
            float[] computed = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, true, false).flat();
            long before = MaskGradient.allOnesPointsSkipped;
            float[] allowed = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, true, true).flat();
            assertEquals(0, MaskGradient.allOnesPointsSkipped - before, "gemma2: point at mask 1 skipped");
            assertClose(computed, allowed, 0, 0, "gemma2 IG-1 scores");
        }
    }

    private static void check(Layout layout, int samples) {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        try (PatchableModel model = layout.model().get()) {
            for (Ablations.CleanCorrupt side : Ablations.CleanCorrupt.values()) {
                MaskGradient.Options options = new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                    MaskGradient.AnswerFunction.AVG_DIFF, null, samples, AblationType.RESAMPLE, side);
                float[] computed = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, true, false).flat();
                long before = MaskGradient.allOnesPointsSkipped;
                float[] skipped = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, true, true).flat();
                long skips = MaskGradient.allOnesPointsSkipped - before;
                assertEquals(layout.skips() ? batches.size() : 0, skips, layout + " " + side + ": points skipped");
                double max = 0;
                for (float v : computed) max = Math.max(max, Math.abs(v));
                if (side == Ablations.CleanCorrupt.CORRUPT) assertTrue(max > 1e-4, layout + ": no scores at all");
                // bf16 models round their activations to 8 bits of mantissa: the skipped point's rounding is larger
                double rtol = layout.name().endsWith("bf16") ? 2e-2 : 1e-4;
                assertClose(computed, skipped, rtol * Math.max(1e-2, max), rtol, layout + " " + side);
            }
            // zero ablation: the pass at mask 1 is not the patch run, and its point must run
            MaskGradient.Options zero = new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                MaskGradient.AnswerFunction.AVG_DIFF, null, 1, AblationType.ZERO, null);
            long before = MaskGradient.allOnesPointsSkipped;
            MaskGradient.scoresOf(model, batches, batches, zero, Progress.NONE, true, true);
            assertEquals(0, MaskGradient.allOnesPointsSkipped - before, layout + ": skipped a point under zero ablation");
        }
    }
}
