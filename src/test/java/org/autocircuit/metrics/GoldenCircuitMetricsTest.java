package org.autocircuit.metrics;

import static org.autocircuit.metrics.MetricFixtures.batch;
import static org.autocircuit.metrics.MetricFixtures.stacked;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Metric values against AutoCircuit's own, from {@code fixtures/golden/circuit_metrics_component.json}
 * ({@code run_circuits} + {@code measure_prune_metrics} on gpt2-tiny-random, IOI test split of 2 batches × 8 prompts,
 * RESAMPLE ablation).
 *
 * <p>The file keeps, per prompt, only the answer logit, the wrong-answer logit and the log-sum-exp of the full
 * vocabulary row. Each prompt therefore becomes a 3-token row {@code [answer, wrong, filler]}, with answer index 0,
 * wrong index 1, and the filler chosen so that the row's log-sum-exp equals the recorded one: the softmax probability of
 * the answer is then the real one. That reproduces every metric that only looks at the answer and wrong-answer entries
 * (Logit Diff, Answer Logit, Answer Prob, Logit Diff Percent, Correct Answer Greater Than Incorrect Percent). The KL
 * divergences need the whole vocabulary and are tested by hand elsewhere.
 */
@Tag("golden")
class GoldenCircuitMetricsTest {
    private static JsonNode root;

    @BeforeAll
    static void load() throws IOException {
        try (InputStream in = GoldenCircuitMetricsTest.class.getResourceAsStream(
                "/fixtures/golden/circuit_metrics_component.json")) {
            if (in == null) throw new IllegalStateException("missing fixtures/golden/circuit_metrics_component.json");
            root = new ObjectMapper().readTree(in);
        }
    }

    private record Fixture(List<PromptPairBatch> batches, CircuitOutputs outs, MetricFixtures.FixedContext ctx) {}

    private static Fixture fixture(String patchType) {
        JsonNode detail = root.path("run_circuits_resample_detail").path(patchType);
        // The unpatched clean model: TREE_PATCH with every edge in the circuit patches nothing.
        JsonNode tree = root.path("run_circuits_resample_detail").path("TREE_PATCH");
        String allEdges = root.path("header").path("test_edge_counts").get(root.path("header").path("test_edge_counts").size() - 1).asText();
        JsonNode clean = tree.path(allEdges);
        if (clean.isMissingNode()) throw new IllegalStateException("no TREE_PATCH detail at " + allEdges + " edges");
        int nBatches = clean.size();
        List<PromptPairBatch> batches = new ArrayList<>();
        for (int b = 0; b < nBatches; b++) {
            int n = clean.get(b).path("answer_logit").size();
            long[][] ans = new long[n][];
            long[][] wrong = new long[n][];
            for (int i = 0; i < n; i++) {
                ans[i] = new long[] {0};
                wrong[i] = new long[] {1};
            }
            batches.add(batch(100 + b, stacked(ans), stacked(wrong)));
        }
        CircuitOutputs.Builder builder = CircuitOutputs.builder();
        for (Iterator<Map.Entry<String, JsonNode>> it = detail.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            int edgeCount = Integer.parseInt(e.getKey());
            for (int b = 0; b < nBatches; b++) builder.put(edgeCount, batches.get(b).key(), rows(e.getValue().get(b)));
        }
        MetricFixtures.FixedContext ctx = new MetricFixtures.FixedContext(batches);
        for (int b = 0; b < nBatches; b++) ctx.clean(batches.get(b).key(), rows(clean.get(b)));
        return new Fixture(batches, builder.build(), ctx);
    }

    /** [batch, 3] rows {@code [answer, wrong, filler]} with the recorded log-sum-exp. */
    private static HostTensor rows(JsonNode batchDetail) {
        JsonNode a = batchDetail.path("answer_logit");
        JsonNode w = batchDetail.path("wrong_answer_logit");
        JsonNode lse = batchDetail.path("logsumexp");
        int n = a.size();
        float[] flat = new float[n * 3];
        for (int i = 0; i < n; i++) {
            double ai = a.get(i).asDouble();
            double wi = w.get(i).asDouble();
            double li = lse.get(i).asDouble();
            flat[3 * i] = (float) ai;
            flat[3 * i + 1] = (float) wi;
            flat[3 * i + 2] = (float) Math.log(Math.exp(li) - Math.exp(ai) - Math.exp(wi));
        }
        return HostTensor.ofFloats(flat, n, 3);
    }

    private static void assertMatches(String patchType, PruneMetric metric, double atol, double rtol, Fixture f) {
        JsonNode expected = root.path("measurements").path(patchType).path("RESAMPLE").path(metric.key());
        List<Measurement> got = metric.measure(f.ctx(), f.outs());
        assertEquals(expected.size(), got.size(), metric.key() + " measurement count");
        for (int i = 0; i < got.size(); i++) {
            double x = expected.get(i).get(0).asDouble();
            double y = expected.get(i).get(1).asDouble();
            assertEquals(x, got.get(i).x(), 0.0, metric.key() + " edge count");
            assertEquals(y, got.get(i).y(), atol + rtol * Math.abs(y),
                patchType + " " + metric.key() + " at " + (int) x + " edges");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void logitDiffIsMeanOfBatchMeans(String patchType) {
        assertMatches(patchType, PruneMetrics.LOGIT_DIFF, 1e-5, 0, fixture(patchType));
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void answerLogit(String patchType) {
        assertMatches(patchType, PruneMetrics.ANSWER_LOGIT, 1e-5, 0, fixture(patchType));
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void answerProb(String patchType) {
        // Probabilities are ~1.6e-5, so compare relatively.
        assertMatches(patchType, PruneMetrics.ANSWER_PROB, 0, 1e-4, fixture(patchType));
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void logitDiffPercentDiffOfMeans(String patchType) {
        assertMatches(patchType, PruneMetrics.LOGIT_DIFF_PERCENT, 1e-3, 0, fixture(patchType));
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void correctAnswerGreaterThanIncorrectPercent(String patchType) {
        assertMatches(patchType, PruneMetrics.CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT, 0, 0, fixture(patchType));
    }

    @ParameterizedTest
    @ValueSource(strings = {"EDGE_PATCH", "TREE_PATCH"})
    void correctAnswerPercentIsConsistent(String patchType) {
        // The recorded value is 0 everywhere: no answer is the argmax of the vocabulary. The filler column stands for the
        // rest of the vocabulary, whose log-sum-exp exceeds both answer logits, so it is the argmax here too.
        // CorrectAnswerPercentGoldenTest checks the metric where it is not 0.
        assertMatches(patchType, PruneMetrics.CORRECT_ANSWER_PERCENT, 0, 0, fixture(patchType));
    }
}
