package org.autocircuit.metrics;

import static org.autocircuit.metrics.MetricFixtures.batch;
import static org.autocircuit.metrics.MetricFixtures.floats;
import static org.autocircuit.metrics.MetricFixtures.ragged;
import static org.autocircuit.metrics.MetricFixtures.stacked;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class PruneMetricsTest {
    private static final float LN2 = (float) Math.log(2);
    private static final float LN3 = (float) Math.log(3);
    private static final float LN4 = (float) Math.log(4);

    @Test
    void registryMatchesAutoCircuit() {
        List<String> keys = List.of("Clean KL Div", "Corrupt KL Div", "Answer Prob", "Answer Logit",
            "Wrong Answer Logit", "Answer Logprob", "Logit Diff", "Prob Diff", "Logprob Diff", "Logit Diff Percent",
            "Prob Diff Percent", "LogProb Diff Percent", "Correct Answer Percent",
            "Correct Answer Greater Than Incorrect Percent");
        assertEquals(keys, PruneMetrics.all().stream().map(PruneMetric::key).toList());
        assertEquals(keys, PruneMetrics.keys());
        List<String> names = List.of("KL Divergence", "KL Divergence", "Answer Probability", "Answer Logit",
            "Wrong Answer Logit", "Answer Log Probability", "Logit Difference", "Probability Difference",
            "Log Probability Difference", "Logit Difference Percent", "Probability Difference Percent",
            "Log Probability Difference Percent", "Correct Answer Percent",
            "Correct Answer Greater Than Incorrect Percent");
        assertEquals(names, PruneMetrics.all().stream().map(PruneMetric::name).toList());
        for (PruneMetric m : PruneMetrics.all()) {
            assertTrue(m.logX(), m.key());
            assertFalse(m.yAxesMatch(), m.key());
            assertEquals(m.key().equals("Clean KL Div"), m.lowerBetter(), m.key());
            assertSame(m, PruneMetrics.byKey(m.key()));
        }
        assertFlags("Clean KL Div", true, 1e-2);
        assertFlags("Corrupt KL Div", true, 1e-6);
        assertFlags("Answer Logprob", true, 1e-6);
        assertFlags("Logprob Diff", true, 1e-6);
        for (String k : List.of("Answer Prob", "Answer Logit", "Wrong Answer Logit", "Logit Diff", "Prob Diff",
                "Logit Diff Percent", "Prob Diff Percent", "LogProb Diff Percent", "Correct Answer Percent",
                "Correct Answer Greater Than Incorrect Percent")) {
            assertFlags(k, false, null);
        }
        var e = assertThrows(IllegalArgumentException.class, () -> PruneMetrics.byKey("Logit Difference"));
        assertTrue(e.getMessage().contains("Logit Difference") && e.getMessage().contains("Clean KL Div"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
            () -> new PruneMetric("k", "n", (c, o) -> List.of(), true, true, false, false, null));
    }

    private static void assertFlags(String key, boolean logY, Double yMin) {
        PruneMetric m = PruneMetrics.byKey(key);
        assertEquals(logY, m.logY(), key);
        if (yMin == null) assertNull(m.yMin(), key); else assertEquals(yMin, m.yMin(), 0.0, key);
    }

    /**
     * One batch of two prompts over a 3-token vocabulary; answers {1}, {0}; wrong answers {0}, {2}.
     * Circuit at 4 edges: rows [0, ln3, 0] (softmax 1/5, 3/5, 1/5) and [ln2, 0, 0] (1/2, 1/4, 1/4).
     * Clean: [0, ln4, 0] (1/6, 4/6, 1/6) and [ln3, 0, 0] (3/5, 1/5, 1/5). Corrupt, also the circuit at 0 edges: zeros.
     */
    private static final class Hand {
        final PromptPairBatch batch = batch(7, stacked(new long[][] {{1}, {0}}), stacked(new long[][] {{0}, {2}}));
        final HostTensor circuit = floats(new float[][] {{0, LN3, 0}, {LN2, 0, 0}});
        final HostTensor clean = floats(new float[][] {{0, LN4, 0}, {LN3, 0, 0}});
        final HostTensor corrupt = floats(new float[][] {{0, 0, 0}, {0, 0, 0}});
        final CircuitOutputs outs = CircuitOutputs.builder().put(4, 7, circuit).put(0, 7, corrupt).build();
        final MetricContext ctx = new MetricFixtures.FixedContext(List.of(batch)).clean(7, clean).corrupt(7, corrupt);

        double at(PruneMetric m, int edgeCount) {
            List<Measurement> ms = m.measure(ctx, outs);
            assertEquals(List.of(0.0, 4.0), ms.stream().map(Measurement::x).toList(), m.key());
            return ms.get(edgeCount == 0 ? 0 : 1).y();
        }
    }

    private static double kl(double[] p, double[] q) {
        double s = 0;
        for (int i = 0; i < p.length; i++) s += p[i] * Math.log(p[i] / q[i]);
        return s;
    }

    @Test
    void everyMetricOnAHandComputedCase() {
        Hand h = new Hand();
        double ln6over2 = Math.log(6) / 2;
        assertEquals(ln6over2, h.at(PruneMetrics.ANSWER_LOGIT, 4), 1e-6);
        assertEquals(0.0, h.at(PruneMetrics.WRONG_ANSWER_LOGIT, 4), 1e-6);
        assertEquals((0.6 + 0.5) / 2, h.at(PruneMetrics.ANSWER_PROB, 4), 1e-6);
        assertEquals(Math.log(0.3) / 2, h.at(PruneMetrics.ANSWER_LOGPROB, 4), 1e-6);
        assertEquals(ln6over2, h.at(PruneMetrics.LOGIT_DIFF, 4), 1e-6);
        assertEquals((0.4 + 0.25) / 2, h.at(PruneMetrics.PROB_DIFF, 4), 1e-6);
        assertEquals(ln6over2, h.at(PruneMetrics.LOGPROB_DIFF, 4), 1e-6);
        assertEquals(Math.log(6) / Math.log(12) * 100, h.at(PruneMetrics.LOGIT_DIFF_PERCENT, 4), 1e-4);
        assertEquals(0.325 / 0.45 * 100, h.at(PruneMetrics.PROB_DIFF_PERCENT, 4), 1e-4);
        assertEquals(Math.log(6) / Math.log(12) * 100, h.at(PruneMetrics.LOGPROB_DIFF_PERCENT, 4), 1e-4);
        assertEquals(100.0, h.at(PruneMetrics.CORRECT_ANSWER_PERCENT, 4), 0.0);
        assertEquals(100.0, h.at(PruneMetrics.CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT, 4), 0.0);
        // At 0 edges every logit is 0: argmax is token 0 (first maximum), right only for prompt 1; against the wrong
        // answers every prompt ties, and ties go to the correct answer.
        assertEquals(50.0, h.at(PruneMetrics.CORRECT_ANSWER_PERCENT, 0), 0.0);
        assertEquals(100.0, h.at(PruneMetrics.CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT, 0), 0.0);

        // KL(clean ‖ circuit), mean over the two rows.
        double cleanKl = (kl(new double[] {1 / 6.0, 4 / 6.0, 1 / 6.0}, new double[] {.2, .6, .2})
            + kl(new double[] {.6, .2, .2}, new double[] {.5, .25, .25})) / 2;
        assertEquals(cleanKl, h.at(PruneMetrics.CLEAN_KL_DIV, 4), 1e-6);
        double corruptKl = (kl(new double[] {1 / 3.0, 1 / 3.0, 1 / 3.0}, new double[] {.2, .6, .2})
            + kl(new double[] {1 / 3.0, 1 / 3.0, 1 / 3.0}, new double[] {.5, .25, .25})) / 2;
        assertEquals(corruptKl, h.at(PruneMetrics.CORRUPT_KL_DIV, 4), 1e-6);
        assertEquals(0.0, h.at(PruneMetrics.CORRUPT_KL_DIV, 0), 0.0);
    }

    @Test
    void klDivConcatenatesBatchesRatherThanAveragingBatchMeans() {
        // Batch A: one prompt with KL([.5, .5] ‖ [.25, .75]); batch B: three prompts identical to clean (KL 0).
        // Concatenated: k / 4. A mean of batch means would give k / 2.
        double k = 0.5 * Math.log(4.0 / 3.0);
        PromptPairBatch a = batch(1, stacked(new long[][] {{0}}), stacked(new long[][] {{1}}));
        PromptPairBatch b = batch(2, stacked(new long[][] {{0}, {0}, {0}}), stacked(new long[][] {{1}, {1}, {1}}));
        HostTensor aClean = floats(new float[][] {{0, 0}});
        HostTensor aCirc = floats(new float[][] {{0, LN3}});
        HostTensor bRows = floats(new float[][] {{1, 2}, {3, -1}, {0, 5}});
        var ctx = new MetricFixtures.FixedContext(List.of(a, b)).clean(1, aClean).clean(2, bRows);
        var outs = CircuitOutputs.builder().put(3, 1, aCirc).put(3, 2, bRows).put(9, 1, aClean).put(9, 2, bRows).build();
        List<Measurement> got = KlDivergence.measure(ctx, outs, true);
        assertEquals(new Measurement(3, got.get(0).y()), got.get(0));
        assertEquals(k / 4, got.get(0).y(), 1e-7);
        assertEquals(0.0, got.get(1).y(), 0.0);
    }

    @Test
    void klDivIsClippedAtZero() {
        // Unnormalised "log-probabilities" shifted up by 0.1 give KL = −0.1 per row; AutoCircuit clips with max(kl, 0).
        try (var scope = new PointerScope()) {
            Tensor target = floats(new float[][] {{(float) Math.log(.5), (float) Math.log(.5)},
                                                  {(float) Math.log(.2), (float) Math.log(.8)}}).toTensor();
            Tensor input = target.add(new org.bytedeco.pytorch.Scalar(0.1));
            assertEquals(-0.1, TensorOps.multibatchKlDiv(input, target).item_double(), 1e-6);
            assertEquals(0.0, KlDivergence.clippedKlDiv(input, target), 0.0);
            assertEquals(0.5 * Math.log(4.0 / 3.0), KlDivergence.clippedKlDiv(
                floats(new float[][] {{(float) Math.log(.25), (float) Math.log(.75)}}).toTensor(),
                floats(new float[][] {{(float) Math.log(.5), (float) Math.log(.5)}}).toTensor()), 1e-7);
        }
    }

    /** Port of test_answer_prob's closed forms: micro-model clean output [25, 49] at the last position. */
    @ParameterizedTest
    @CsvSource({"false,1,1", "false,1,2", "false,3,1", "false,4,4", "true,1,1", "true,1,3", "true,2,1", "true,5,7"})
    void answerLogitClosedForm(boolean multipleAnswers, int batchCount, int batchSize) {
        long[] answer = multipleAnswers ? new long[] {0, 1} : new long[] {1};
        List<PromptPairBatch> batches = new ArrayList<>();
        CircuitOutputs.Builder outs = CircuitOutputs.builder();
        for (int b = 0; b < batchCount; b++) {
            long[][] ans = new long[batchSize][];
            long[][] wrong = new long[batchSize][];
            float[][] out = new float[batchSize][];
            for (int i = 0; i < batchSize; i++) {
                ans[i] = answer;
                wrong[i] = new long[] {0};
                out[i] = new float[] {25, 49};
            }
            PromptPairBatch batch = batch(b, stacked(ans), stacked(wrong));
            batches.add(batch);
            outs.put(0, batch.key(), floats(out));
        }
        List<Measurement> got = PruneMetrics.ANSWER_LOGIT.measure(new MetricFixtures.FixedContext(batches), outs.build());
        assertEquals(1, got.size());
        assertEquals(0.0, got.get(0).x(), 0.0);
        assertEquals(multipleAnswers ? 37.0 : 49.0, got.get(0).y(), 1e-6);
    }

    @Test
    void answerLogitRaggedIsMeanOfPromptMeans() {
        // Prompt 0 answers {1} (49), prompt 1 answers {0, 1} (37): (49 + 37) / 2 = 43, not (49 + 25 + 49) / 3.
        PromptPairBatch b = batch(3, ragged(new long[][] {{1}, {0, 1}}), ragged(new long[][] {{0}, {0}}));
        var outs = CircuitOutputs.builder().put(2, 3, floats(new float[][] {{25, 49}, {25, 49}})).build();
        assertEquals(43.0, AnswerValue.measure(new MetricFixtures.FixedContext(List.of(b)), outs, ProbFunc.LOGITS, false)
            .get(0).y(), 1e-6);
    }

    @Test
    void answerDiffPercentBothVariants() {
        // Answers {0}, wrong {1}: the diff of a row is row[0] − row[1].
        PromptPairBatch b1 = batch(1, stacked(new long[][] {{0}, {0}}), stacked(new long[][] {{1}, {1}}));
        PromptPairBatch b2 = batch(2, stacked(new long[][] {{0}, {0}}), stacked(new long[][] {{1}, {1}}));
        var ctx = new MetricFixtures.FixedContext(List.of(b1, b2))
            .clean(1, floats(new float[][] {{2, 0}, {1, 0}}))       // diffs 2, 1
            .clean(2, floats(new float[][] {{4, 0}, {0, 2}}));      // diffs 4, −2
        var outs = CircuitOutputs.builder()
            .put(5, 1, floats(new float[][] {{1, 0}, {1, 0}}))      // diffs 1, 1   → 50 %, 100 %
            .put(5, 2, floats(new float[][] {{1, 0}, {0, 1}}))      // diffs 1, −1  → 25 %, 50 %
            .build();

        AnswerDiffPercent.Result perPrompt = AnswerDiffPercent.perPrompt(ctx, outs, ProbFunc.LOGITS);
        assertEquals(56.25, perPrompt.means().get(0).y(), 1e-5);
        // Unbiased: sqrt((6.25² + 43.75² + 31.25² + 6.25²) / 3).
        assertEquals(Math.sqrt(2968.75 / 3), perPrompt.stds().get(0).y(), 1e-4);
        assertEquals(5.0, perPrompt.points().get(0).x(), 0.0);
        List<Double> pts = perPrompt.points().get(0).values();
        double[] expected = {50, 100, 25, 50};
        assertEquals(4, pts.size());
        for (int i = 0; i < 4; i++) assertEquals(expected[i], pts.get(i), 1e-4);

        // Difference of means: circuit batch means (1, 0) → 0.5; clean (1.5, 1) → 1.25; 0.5 / 1.25 = 40 %.
        AnswerDiffPercent.Result dom = AnswerDiffPercent.answerDiffPercent(ctx, outs, ProbFunc.LOGITS, true);
        assertEquals(40.0, dom.means().get(0).y(), 1e-5);
        assertEquals(0.0, dom.stds().get(0).y(), 0.0);
        assertTrue(dom.points().get(0).values().isEmpty());
        assertEquals(dom.means(), AnswerDiffPercent.measure(ctx, outs, ProbFunc.LOGITS, true));
    }

    @Test
    void correctAnswerPercentNeedsStackedAnswers() {
        PromptPairBatch b = batch(1, ragged(new long[][] {{0}, {1}}), ragged(new long[][] {{1}, {0}}));
        var outs = CircuitOutputs.builder().put(0, 1, floats(new float[][] {{1, 0}, {0, 1}})).build();
        var ctx = new MetricFixtures.FixedContext(List.of(b));
        var e = assertThrows(IllegalArgumentException.class, () -> PruneMetrics.CORRECT_ANSWER_PERCENT.measure(ctx, outs));
        assertTrue(e.getMessage().contains("stacked"), e.getMessage());
        assertThrows(IllegalArgumentException.class,
            () -> PruneMetrics.LOGIT_DIFF.measure(new MetricFixtures.FixedContext(List.of()), outs));
    }

    @Test
    void probFuncLiterals() {
        assertEquals(ProbFunc.LOG_SOFTMAX, ProbFunc.fromKey("log_softmax"));
        assertThrows(IllegalArgumentException.class, () -> ProbFunc.fromKey("probs"));
    }
}
