package org.autocircuit.testing;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.patching.CircuitOutputs;

/**
 * Checks of run_circuits outputs against a golden {@code circuit_metrics_*.json}-style file: the real edge counts, every
 * metric of the file through the metric registry (rtol 1e-3), and per-prompt answer / wrong-answer logits and
 * log-sum-exp (1e-4). Expected values come from the file only; the logits are read straight from the outputs.
 */
public final class GoldenCircuits {
    private GoldenCircuits() {}

    /** The edge counts of one golden measurement list ({@code [[count, value], ...]}). */
    public static List<Integer> counts(JsonNode points) {
        List<Integer> out = new ArrayList<>();
        points.forEach(p -> out.add(p.get(0).asInt()));
        return out;
    }

    /** The requested edge counts of a golden file's header ({@code header.test_edge_counts}). */
    public static List<Integer> requestedCounts(JsonNode golden) {
        List<Integer> out = new ArrayList<>();
        golden.get("header").get("test_edge_counts").forEach(n -> out.add(n.asInt()));
        return out;
    }

    /** Every metric of {@code expectedByMetric} ({@code {metric key: [[count, value], ...]}}) on {@code outs}. */
    public static void checkEveryMetric(JsonNode expectedByMetric, CircuitOutputs outs, ModelMetricContext ctx, String where) {
        assertEquals(counts(expectedByMetric.get("Logit Diff")), List.copyOf(outs.edgeCounts()), where + ": real edge counts");
        expectedByMetric.fields().forEachRemaining(e -> {
            List<Measurement> actual = PruneMetrics.byKey(e.getKey()).measure(ctx, outs);
            assertEquals(e.getValue().size(), actual.size(), where + " " + e.getKey() + ": number of points");
            for (int i = 0; i < actual.size(); i++) {
                JsonNode point = e.getValue().get(i);
                assertEquals(point.get(0).asDouble(), actual.get(i).x(), 0, where + " " + e.getKey() + " edge count");
                double expected = point.get(1).asDouble();
                // rtol 1e-3 with a floor for values that are ~0 (KL of identical outputs)
                assertEquals(expected, actual.get(i).y(), 1e-3 * Math.abs(expected) + 2e-6,
                    where + " " + e.getKey() + " at " + point.get(0).asInt() + " edges");
            }
        });
    }

    /**
     * Per-prompt logits: {@code detailByCount} is {@code {count: [per batch {answer_logit: [...], wrong_answer_logit:
     * [...], logsumexp: [...]}]}}, batches in loader order.
     */
    public static void checkPerPrompt(JsonNode detailByCount, CircuitOutputs outs, List<PromptPairBatch> batches,
                                      String where) {
        assertEquals(detailByCount.size(), outs.edgeCounts().size(), where + ": counts with per-prompt logits");
        for (int count : outs.edgeCounts()) {
            JsonNode perBatch = detailByCount.get(Integer.toString(count));
            if (perBatch == null) throw new AssertionError(where + ": the golden file has no per-prompt logits at " + count);
            assertEquals(perBatch.size(), batches.size(), where + ": batches");
            for (int b = 0; b < batches.size(); b++) {
                PromptPairBatch batch = batches.get(b);
                float[] logits = outs.output(count, batch.key()).floats();
                int vocab = logits.length / batch.batchSize();
                JsonNode expected = perBatch.get(b);
                assertEquals(expected.get("answer_logit").size(), batch.batchSize(), where + " batch " + b + ": prompts");
                for (int i = 0; i < batch.batchSize(); i++) {
                    int ans = (int) batch.answers().prompt(i).longs()[0];
                    int wrong = (int) batch.wrongAnswers().prompt(i).longs()[0];
                    String at = where + " count " + count + " batch " + b + " prompt " + i;
                    assertEquals(expected.get("answer_logit").get(i).asDouble(), logits[i * vocab + ans], 1e-4, at + " answer logit");
                    assertEquals(expected.get("wrong_answer_logit").get(i).asDouble(), logits[i * vocab + wrong], 1e-4,
                        at + " wrong logit");
                    assertEquals(expected.get("logsumexp").get(i).asDouble(), logSumExp(logits, i * vocab, vocab), 1e-4,
                        at + " logsumexp");
                }
            }
        }
    }

    public static double logSumExp(float[] x, int from, int n) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = from; i < from + n; i++) max = Math.max(max, x[i]);
        double s = 0;
        for (int i = from; i < from + n; i++) s += Math.exp(x[i] - max);
        return max + Math.log(s);
    }
}
