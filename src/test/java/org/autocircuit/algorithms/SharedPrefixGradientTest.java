package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
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
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.Progress;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Mask-gradient runs skip the tokens a batch's clean and corrupt prompts share (under RESAMPLE ablation, over a
 * key/value cache of them); the scores must equal those of runs over the whole prompts, at mask 0 (EAP) and along
 * integrated gradients, with the ablation values from either side, on every graph layout where the prefix is used
 * (Q/K/V split or joint, grouped and ungrouped grouped-query attention, parallel attention), on both kernel paths.
 * Where it is not used (token graphs, every output position) the run is the plain one by construction.
 */
class SharedPrefixGradientTest {

    record Layout(String name, Supplier<PatchableModel> model) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String kernels : new String[] {"reference", "native"}) {
            Kernels k = Fixtures.kernels(kernels);
            out.add(Arguments.of(new Layout("gpt2 qkv split",
                () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, k)), kernels));
            out.add(Arguments.of(new Layout("gpt2 qkv joint",
                () -> PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, false, k)), kernels));
            out.add(Arguments.of(new Layout("llama gqa grouped", () -> PatchableModel.of(FamilyFixtures.model("llama"),
                true, OutputSlice.LAST_SEQ, null, true, GqaLayout.GROUPED, k)), kernels));
            out.add(Arguments.of(new Layout("llama gqa ungrouped", () -> PatchableModel.of(FamilyFixtures.model("llama"),
                true, OutputSlice.LAST_SEQ, null, true, GqaLayout.UNGROUPED, k)), kernels));
            out.add(Arguments.of(new Layout("neox parallel attention", () -> PatchableModel.of(FamilyFixtures.model("neox"),
                true, OutputSlice.LAST_SEQ, null, true, k)), kernels));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0}, {1} kernels")
    @MethodSource("cases")
    void scoresEqualRunsOverWholePrompts(Layout layout, String kernels) {
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        try (PatchableModel model = layout.model().get()) {
            for (PromptPairBatch b : batches) {
                assertTrue(RunCircuits.sharedPrefixLength(model, b) > 0, layout + ": the fixture batches share no prefix");
            }
            for (Ablations.CleanCorrupt side : Ablations.CleanCorrupt.values()) {
                for (MaskGradient.Options options : new MaskGradient.Options[] {
                    new MaskGradient.Options(MaskGradient.GradFunction.LOGIT, MaskGradient.AnswerFunction.AVG_DIFF, 0.0, null,
                        AblationType.RESAMPLE, side),
                    new MaskGradient.Options(MaskGradient.GradFunction.LOGPROB, MaskGradient.AnswerFunction.AVG_DIFF, null, 3,
                        AblationType.RESAMPLE, side)}) {
                    float[] whole = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, false).flat();
                    float[] skipped = MaskGradient.scoresOf(model, batches, batches, options, Progress.NONE, true).flat();
                    double max = 0;
                    for (float v : whole) max = Math.max(max, Math.abs(v));
                    if (side == Ablations.CleanCorrupt.CORRUPT) {
                        assertTrue(max > 1e-4, layout + " " + options + ": no scores at all");
                        assertClose(whole, skipped, 1e-6 * Math.max(1, max), 1e-4, layout + " " + side + " " + options);
                    } else {
                        // patch values from the clean side: every difference is 0, the scores are float noise on both
                        assertClose(whole, skipped, 1e-5, 0, layout + " " + side + " " + options);
                    }
                }
            }
        }
    }
}
