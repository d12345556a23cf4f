package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.PromptDataLoader;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenCircuits;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Left padding against AutoCircuit (fixtures/golden/padded: 32 IOI prompts of mixed templates, 15–21 tokens with BOS,
 * left-padded with id 50256 = BOS, component graph). AutoCircuit pads the clean prompts and the corrupt prompts each to
 * the longest of the whole set; the loader must give the same token ids, and every computation the same numbers: clean
 * logits (with the attention mask), EAP, exact EAP, IG-10, random scores, run_circuits under its three ablations and
 * both patch types (every metric and, for RESAMPLE, every prompt's logits), and ACDC. Shapes, counts and options come
 * from the golden files. Each numeric test runs on both kernel paths.
 */
@Tag("golden")
class PaddedGoldenTest {
    private static final String DIR = "padded/";
    static Datasets.LoadedDatasets data;
    static JsonNode cleanLogits;

    @BeforeAll
    static void load() {
        cleanLogits = Fixtures.golden(DIR + "clean_logits.json");
        data = Fixtures.ioiPadded();
    }

    private static PatchableModel model(String kernels) {
        JsonNode g = cleanLogits.get("header").get("graphs").get("component");
        Integer seqLen = g.get("seq_len").isNull() ? null : g.get("seq_len").asInt();
        return PatchableModel.of(Fixtures.model(), g.get("factorized").asBoolean(), OutputSlice.LAST_SEQ, seqLen,
            g.get("separate_qkv").asBoolean(), Fixtures.kernels(kernels));
    }

    private static List<PromptPairBatch> split(String name) {
        PromptDataLoader loader = name.equals("train") ? data.train() : data.test();
        return loader.batches();
    }

    /** Token ids, padding included, and answers equal AutoCircuit's: both sides padded to the longest of the set. */
    @Test
    void tokensAndPaddingMatchAutoCircuit() {
        for (String split : List.of("train", "test")) {
            JsonNode golden = cleanLogits.get(split).get("batches");
            List<PromptPairBatch> batches = split(split);
            assertEquals(golden.size(), batches.size(), split + " batches");
            for (int b = 0; b < batches.size(); b++) {
                PromptPairBatch batch = batches.get(b);
                assertArrayEquals(longs(golden.get(b).get("clean")), batch.clean().longs(), split + " " + b + " clean ids");
                assertArrayEquals(longs(golden.get(b).get("corrupt")), batch.corrupt().longs(), split + " " + b + " corrupt ids");
                for (int i = 0; i < batch.batchSize(); i++) {
                    assertArrayEquals(longs(golden.get(b).get("answers").get(i)), batch.answers().prompt(i).longs(),
                        split + " " + b + " answers of prompt " + i);
                    assertArrayEquals(longs(golden.get(b).get("wrong_answers").get(i)), batch.wrongAnswers().prompt(i).longs(),
                        split + " " + b + " wrong answers of prompt " + i);
                }
                assertEquals(golden.get(b).get("clean").get(0).size(), batch.seqLen(), split + " " + b + " padded length");
            }
        }
        // the data really is padded: some prompt starts with two 50256s (padding, then BOS)
        long[] first = split("test").get(0).clean().longs();
        assertTrue(first[0] == 50256 && first[1] == 50256, "the first test prompt is left-padded");
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void cleanLogitsMatchAutoCircuit(String kernels) {
        try (PatchableModel model = model(kernels); PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            for (String split : List.of("train", "test")) {
                JsonNode golden = cleanLogits.get(split).get("batches");
                List<PromptPairBatch> batches = split(split);
                double sum = 0;
                for (int b = 0; b < batches.size(); b++) {
                    PromptPairBatch batch = batches.get(b);
                    JsonNode expected = golden.get(b);
                    float[] logits = HostTensor.of(model.forward(batch.clean().toTensor(),
                        batch.cleanPadding() == null ? null : batch.cleanPadding().toTensor())).floats();
                    int vocab = logits.length / batch.batchSize();
                    double batchDiff = 0;
                    for (int i = 0; i < batch.batchSize(); i++) {
                        int ans = (int) batch.answers().prompt(i).longs()[0];
                        int wrong = (int) batch.wrongAnswers().prompt(i).longs()[0];
                        String at = split + " batch " + b + " prompt " + i;
                        assertEquals(expected.get("clean_answer_logit").get(i).asDouble(), logits[i * vocab + ans], 1e-4, at);
                        assertEquals(expected.get("clean_wrong_answer_logit").get(i).asDouble(), logits[i * vocab + wrong], 1e-4, at);
                        assertEquals(expected.get("clean_logsumexp").get(i).asDouble(),
                            GoldenCircuits.logSumExp(logits, i * vocab, vocab), 1e-4, at + " logsumexp");
                        assertEquals(expected.get("clean_argmax").get(i).asInt(), argmax(logits, i * vocab, vocab), at + " argmax");
                        batchDiff += logits[i * vocab + ans] - logits[i * vocab + wrong];
                    }
                    JsonNode first16 = expected.get("clean_logits_first16_vocab");
                    if (first16 != null) {
                        for (int i = 0; i < first16.size(); i++) {
                            for (int v = 0; v < first16.get(i).size(); v++) {
                                assertEquals(first16.get(i).get(v).asDouble(), logits[i * vocab + v], 1e-4,
                                    split + " batch " + b + " prompt " + i + " vocab " + v);
                            }
                        }
                    }
                    sum += batchDiff / batch.batchSize();
                }
                assertEquals(cleanLogits.get(split).get("clean_logit_diff").asDouble(), sum / batches.size(), 1e-5,
                    split + " full-model logit diff");
            }
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void eapAndIg10MatchAutoCircuit(String kernels) {
        try (PatchableModel model = model(kernels)) {
            for (String algo : List.of("eap_mask_gradient", "mask_gradient_ig10")) {
                PruneScores expected = Fixtures.pruneScores(model.graph(),
                    Fixtures.golden(DIR + "prune_scores_" + algo + "_component.json").get("prune_scores"));
                MaskGradient.Options options = algo.startsWith("eap")
                    ? MaskGradient.Options.eap() : MaskGradient.Options.integratedGradients(10);
                PruneScores actual = MaskGradient.scores(model, split("train"), options);
                assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, "padded " + algo + " scores per edge");
            }
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void exactEapMatchesAutoCircuit(String kernels) {
        try (PatchableModel model = model(kernels)) {
            PruneScores expected = Fixtures.pruneScores(model.graph(),
                Fixtures.golden(DIR + "prune_scores_eap_exact_component.json").get("prune_scores"));
            PruneScores actual = EdgeAttributionPatching.scores(model, split("train"),
                EdgeAttributionPatching.Options.autoCircuit(), org.autocircuit.util.Progress.NONE);
            assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, "padded exact EAP");
            // in parts of 5 prompts: every part keeps the batch's padded length and its own rows of the padding
            PruneScores parts = EdgeAttributionPatching.scores(model, split("train"),
                EdgeAttributionPatching.Options.autoCircuit().withPromptsPerPass(5), org.autocircuit.util.Progress.NONE);
            assertClose(expected.flat(), parts.flat(), 1e-5, 1e-3, "padded exact EAP, 5 prompts per pass");
            assertClose(actual.flat(), parts.flat(), 1e-6, 1e-5, "padded exact EAP, 5 prompts per pass vs whole batches");
        }
    }

    /** Random scores do not read the prompts; the padded run's file records its own draw order. */
    @Test
    void randomMatchesAutoCircuitGivenItsDrawOrder() {
        try (PatchableModel model = model("reference")) {
            JsonNode golden = Fixtures.golden(DIR + "prune_scores_random_component.json");
            List<String> order = new ArrayList<>();
            golden.get("rng_draw_order_this_run").forEach(n -> order.add(n.asText()));
            PruneScores expected = Fixtures.pruneScores(model.graph(), golden.get("prune_scores"));
            assertArrayEquals(expected.flat(), RandomScores.scores(model.graph(), 0L, order).flat(), "random scores");
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void runCircuitsMatchesAutoCircuit(String kernels) {
        JsonNode golden = Fixtures.golden(DIR + "circuit_metrics_component.json");
        List<PromptPairBatch> test = split("test");
        try (PatchableModel model = model(kernels)) {
            PruneScores scores = Fixtures.pruneScores(model.graph(),
                Fixtures.golden(DIR + "prune_scores_eap_mask_gradient_component.json").get("prune_scores"));
            List<Integer> counts = GoldenCircuits.requestedCounts(golden);
            golden.get("measurements").fields().forEachRemaining(byPatch -> {
                PatchType patchType = PatchType.valueOf(byPatch.getKey());
                byPatch.getValue().fields().forEachRemaining(byAblation -> {
                    AblationType ablation = AblationType.valueOf(byAblation.getKey());
                    String where = "padded " + patchType + " " + ablation + " (" + kernels + ")";
                    CircuitOutputs outs = RunCircuits.run(model, test, counts, scores, patchType, ablation, false);
                    GoldenCircuits.checkEveryMetric(byAblation.getValue(), outs, new ModelMetricContext(model, test), where);
                    if (ablation == AblationType.RESAMPLE) {
                        GoldenCircuits.checkPerPrompt(golden.get("run_circuits_resample_detail").get(patchType.name()),
                            outs, test, where);
                    }
                });
            });
        }
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void acdcMatchesAutoCircuit(String kernels) {
        JsonNode golden = lenient("/fixtures/golden/" + DIR + "acdc_component.json");
        List<String> visitOrder = new ArrayList<>();
        for (JsonNode e : golden.get("edge_visit_order")) visitOrder.add(edgeKey(e.get("seq_idx"), e.get("name")));
        try (PatchableModel model = model(kernels)) {
            for (JsonNode run : golden.get("runs")) {
                JsonNode kwargs = run.get("kwargs");
                List<Double> bases = new ArrayList<>();
                kwargs.get("tao_bases").forEach(b -> bases.add(b.asDouble()));
                List<Integer> exps = new ArrayList<>();
                kwargs.get("tao_exps").forEach(e -> exps.add(e.asInt()));
                Acdc.Options options = Acdc.Options.ofBasesExps(bases, exps,
                    Acdc.Faithfulness.parse(kwargs.get("faithfulness_target").asText())).withVisitOrder(visitOrder);
                PruneScores scores = Acdc.scores(PruneRun.of(model, split("train")), options);
                List<String> expectedKept = new ArrayList<>();
                for (JsonNode e : run.get("kept_edges")) expectedKept.add(edgeKey(e.get(0), e.get(1)));
                expectedKept.sort(null);
                assertEquals(expectedKept, Acdc.keptEdges(scores), "padded ACDC kept edges, taus " + run.get("taus"));
                float[] expected = Fixtures.pruneScores(model.graph(), run.get("prune_scores")).flat();
                float[] actual = scores.flat();
                // as in AcdcGoldenTest: scores below 1e-5 sit on float32 noise when τ = 1e-6 is in the grid
                for (int i = 0; i < expected.length; i++) {
                    expected[i] = Math.max(expected[i], 1e-5f);
                    actual[i] = Math.max(actual[i], 1e-5f);
                }
                assertClose(expected, actual, 0, 1e-6, "padded ACDC scores, taus " + run.get("taus"));
            }
        }
    }

    private static String edgeKey(JsonNode seqIdx, JsonNode name) {
        return Acdc.edgeKey(name.asText(), seqIdx.isNull() ? OptionalInt.empty() : OptionalInt.of(seqIdx.asInt()));
    }

    /** The ACDC golden files write +inf as a bare {@code Infinity}, which needs a lenient parser. */
    private static JsonNode lenient(String resource) {
        try (var in = PaddedGoldenTest.class.getResourceAsStream(resource)) {
            if (in == null) throw new IllegalStateException("missing test resource " + resource);
            return new com.fasterxml.jackson.databind.ObjectMapper()
                .enable(com.fasterxml.jackson.core.json.JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature()).readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long[] longs(JsonNode nested) {
        List<Long> out = new ArrayList<>();
        flatten(nested, out);
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    private static void flatten(JsonNode n, List<Long> out) {
        if (n.isArray()) n.forEach(c -> flatten(c, out));
        else out.add(n.asLong());
    }

    private static int argmax(float[] x, int from, int n) {
        int best = from;
        for (int i = from + 1; i < from + n; i++) if (x[i] > x[best]) best = i;
        return best - from;
    }
}
