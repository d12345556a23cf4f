package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.PromptDataLoader;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The patched forward pass of every golden fixture's graphs (factorized, node, combined Q/K/V; component and token)
 * on both kernel paths, against clean_logits.json: with the corrupt prompts' source outputs as patch values, masks
 * all 0 must give the clean logits (answer, wrong answer, logsumexp per prompt), and masks all 1 (every edge
 * patched) the corrupt run's logit difference per prompt.
 */
@Tag("golden")
class GoldenPatchedForwardTest {

    static Stream<Arguments> cases() {
        return GoldenFixture.casesWithKernels("clean_logits.json");
    }

    @ParameterizedTest(name = "{0} {1} graph, {2} kernels")
    @MethodSource("cases")
    void patchedForwardMatchesCleanAndCorruptLogits(GoldenFixture fixture, String kind, String kernels) {
        JsonNode golden = fixture.golden("clean_logits.json");
        Datasets.LoadedDatasets data = fixture.data();
        try (PatchableModel model = fixture.patchable(kind, Fixtures.kernels(kernels));
             NoGradGuard noGrad = new NoGradGuard()) {
            for (String split : List.of("train", "test")) {
                PromptDataLoader loader = split.equals("train") ? data.train() : data.test();
                for (int b = 0; b < loader.size(); b++) {
                    PromptPairBatch batch = loader.batches().get(b);
                    JsonNode g = golden.get(split).get("batches").get(b);
                    String at = fixture + " " + kind + " " + kernels + " " + split + " batch " + b;
                    try (PointerScope scope = new PointerScope()) {
                        Tensor clean = Inputs.clean(batch);
                        Tensor cleanPad = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
                        Tensor patch = Ablations.srcAblations(model, Inputs.corrupt(batch),
                            Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
                        model.setAllMasks(0);
                        float[] none;
                        try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                            none = HostTensor.of(model.forward(clean, cleanPad)).floats();
                        }
                        model.setAllMasks(1);
                        float[] all;
                        try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                            all = HostTensor.of(model.forward(clean, cleanPad)).floats();
                        }
                        int vocab = none.length / batch.batchSize();
                        for (int i = 0; i < batch.batchSize(); i++) {
                            int ans = (int) batch.answers().prompt(i).longs()[0];
                            int wrong = (int) batch.wrongAnswers().prompt(i).longs()[0];
                            String p = at + " prompt " + i;
                            assertEquals(g.get("clean_answer_logit").get(i).asDouble(), none[i * vocab + ans], 1e-4,
                                p + ": no edge patched, answer logit");
                            assertEquals(g.get("clean_wrong_answer_logit").get(i).asDouble(), none[i * vocab + wrong], 1e-4,
                                p + ": no edge patched, wrong-answer logit");
                            assertEquals(g.get("clean_logsumexp").get(i).asDouble(), logSumExp(none, i * vocab, vocab), 1e-4,
                                p + ": no edge patched, logsumexp");
                            assertEquals(g.get("corrupt_logit_diff_per_prompt").get(i).asDouble(),
                                all[i * vocab + ans] - all[i * vocab + wrong], 1e-4, p + ": every edge patched, logit diff");
                        }
                    }
                }
            }
        }
    }

    private static double logSumExp(float[] x, int from, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = from; i < from + n; i++) max = Math.max(max, x[i]);
        double s = 0;
        for (int i = from; i < from + n; i++) s += Math.exp(x[i] - max);
        return max + Math.log(s);
    }
}
