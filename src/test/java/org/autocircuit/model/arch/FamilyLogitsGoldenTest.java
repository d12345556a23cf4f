package org.autocircuit.model.arch;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.Inputs;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.PromptDataLoader;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Llama (GQA, RMSNorm, SwiGLU, rotary) and GPT-NeoX (parallel blocks, partial rotary, untied 50,304-row
 * unembedding) fixtures, loaded from their bf16 Hugging Face folders, against TransformerLens's clean logits
 * (families/*&#47;golden/clean_logits.json): every prompt's answer and wrong-answer logits, logsumexp and argmax within
 * 1e-4, the corrupt logit differences, and the mean logit differences of both splits.
 */
@Tag("golden")
class FamilyLogitsGoldenTest {
    static Datasets.LoadedDatasets data;

    @BeforeAll
    static void load() {
        data = Fixtures.ioi();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"llama", "neox"})
    void cleanLogitsMatchTransformerLens(String family) {
        JsonNode golden = FamilyFixtures.golden(family, "clean_logits.json");
        double maxDiff = 0;
        try (HookedTransformer model = FamilyFixtures.model(family)) {
            for (String split : List.of("train", "test")) {
                PromptDataLoader loader = split.equals("train") ? data.train() : data.test();
                JsonNode batches = golden.get(split).get("batches");
                assertEquals(batches.size(), loader.size(), split + " batches");
                double sumCleanDiff = 0, sumCorruptDiff = 0;
                for (int b = 0; b < loader.size(); b++) {
                    PromptPairBatch batch = loader.batches().get(b);
                    JsonNode g = batches.get(b);
                    try (PointerScope scope = new PointerScope()) {
                        Tensor clean = model.forward(Inputs.clean(batch), null, HookPoints.NONE, OutputSlice.LAST_SEQ);
                        Tensor corrupt = model.forward(Inputs.corrupt(batch), null, HookPoints.NONE, OutputSlice.LAST_SEQ);
                        int vocab = (int) clean.shape()[1];
                        assertEquals(model.config().dVocab(), vocab, "logit columns");
                        float[] c = HostTensor.of(clean).floats();
                        float[] k = HostTensor.of(corrupt).floats();
                        float[] lse = HostTensor.of(clean.logsumexp(new long[] {1}, false)).floats();
                        long[] argmax = HostTensor.of(clean.argmax(new org.bytedeco.pytorch.LongOptional(1), false)).longs();
                        double cleanDiff = 0, corruptDiff = 0;
                        for (int i = 0; i < batch.batchSize(); i++) {
                            int ans = (int) batch.answers().prompt(i).longs()[0];
                            int wrong = (int) batch.wrongAnswers().prompt(i).longs()[0];
                            String at = family + " " + split + " batch " + b + " prompt " + i;
                            assertEquals(g.get("answers").get(i).get(0).asInt(), ans, at + " answer token");
                            assertEquals(g.get("clean_answer_logit").get(i).asDouble(), c[i * vocab + ans], 1e-4, at + " answer logit");
                            assertEquals(g.get("clean_wrong_answer_logit").get(i).asDouble(), c[i * vocab + wrong], 1e-4, at + " wrong logit");
                            assertEquals(g.get("clean_logsumexp").get(i).asDouble(), lse[i], 1e-4, at + " logsumexp");
                            assertEquals(g.get("clean_argmax").get(i).asLong(), argmax[i], at + " argmax");
                            assertEquals(g.get("corrupt_logit_diff_per_prompt").get(i).asDouble(),
                                k[i * vocab + ans] - k[i * vocab + wrong], 1e-4, at + " corrupt logit diff");
                            maxDiff = Math.max(maxDiff, Math.max(
                                Math.abs(g.get("clean_answer_logit").get(i).asDouble() - c[i * vocab + ans]),
                                Math.abs(g.get("clean_logsumexp").get(i).asDouble() - lse[i])));
                            cleanDiff += c[i * vocab + ans] - c[i * vocab + wrong];
                            corruptDiff += k[i * vocab + ans] - k[i * vocab + wrong];
                        }
                        sumCleanDiff += cleanDiff / batch.batchSize();
                        sumCorruptDiff += corruptDiff / batch.batchSize();
                    }
                }
                assertEquals(golden.get(split).get("clean_logit_diff").asDouble(), sumCleanDiff / loader.size(), 1e-5,
                    family + " " + split + " clean logit diff");
                assertEquals(golden.get(split).get("corrupt_logit_diff").asDouble(), sumCorruptDiff / loader.size(), 1e-5,
                    family + " " + split + " corrupt logit diff");
            }
        }
        System.out.printf("%s: largest difference from TransformerLens's answer logits and logsumexps: %.2e%n", family, maxDiff);
    }
}
