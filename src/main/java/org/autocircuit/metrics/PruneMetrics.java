package org.autocircuit.metrics;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The registry of prune metrics: AutoCircuit's {@code PRUNE_METRICS} / {@code PRUNE_METRIC_DICT}, in the
 * same order, with the same keys, names and flags.
 */
public final class PruneMetrics {
    private PruneMetrics() {}

    public static final PruneMetric CLEAN_KL_DIV = new PruneMetric("Clean KL Div", "KL Divergence",
        (ctx, outs) -> KlDivergence.measure(ctx, outs, true), true, true, true, false, 1e-2);
    public static final PruneMetric CORRUPT_KL_DIV = new PruneMetric("Corrupt KL Div", "KL Divergence",
        (ctx, outs) -> KlDivergence.measure(ctx, outs, false), true, true, false, false, 1e-6);
    public static final PruneMetric ANSWER_PROB = new PruneMetric("Answer Prob", "Answer Probability",
        (ctx, outs) -> AnswerValue.measure(ctx, outs, ProbFunc.SOFTMAX, false), true, false, false, false, null);
    public static final PruneMetric ANSWER_LOGIT = new PruneMetric("Answer Logit", "Answer Logit",
        (ctx, outs) -> AnswerValue.measure(ctx, outs, ProbFunc.LOGITS, false), true, false, false, false, null);
    public static final PruneMetric WRONG_ANSWER_LOGIT = new PruneMetric("Wrong Answer Logit", "Wrong Answer Logit",
        (ctx, outs) -> AnswerValue.measure(ctx, outs, ProbFunc.LOGITS, true), true, false, false, false, null);
    public static final PruneMetric ANSWER_LOGPROB = new PruneMetric("Answer Logprob", "Answer Log Probability",
        (ctx, outs) -> AnswerValue.measure(ctx, outs, ProbFunc.LOG_SOFTMAX, false), true, true, false, false, 1e-6);
    public static final PruneMetric LOGIT_DIFF = new PruneMetric("Logit Diff", "Logit Difference",
        (ctx, outs) -> AnswerDiff.measure(ctx, outs, ProbFunc.LOGITS), true, false, false, false, null);
    public static final PruneMetric PROB_DIFF = new PruneMetric("Prob Diff", "Probability Difference",
        (ctx, outs) -> AnswerDiff.measure(ctx, outs, ProbFunc.SOFTMAX), true, false, false, false, null);
    public static final PruneMetric LOGPROB_DIFF = new PruneMetric("Logprob Diff", "Log Probability Difference",
        (ctx, outs) -> AnswerDiff.measure(ctx, outs, ProbFunc.LOG_SOFTMAX), true, true, false, false, 1e-6);
    public static final PruneMetric LOGIT_DIFF_PERCENT = new PruneMetric("Logit Diff Percent",
        "Logit Difference Percent",
        (ctx, outs) -> AnswerDiffPercent.measure(ctx, outs, ProbFunc.LOGITS, true), true, false, false, false, null);
    public static final PruneMetric PROB_DIFF_PERCENT = new PruneMetric("Prob Diff Percent",
        "Probability Difference Percent",
        (ctx, outs) -> AnswerDiffPercent.measure(ctx, outs, ProbFunc.SOFTMAX, true), true, false, false, false, null);
    /** AutoCircuit's {@code LOBPROB_DIFF_PERCENT_METRIC} (sic); the key is spelt "LogProb Diff Percent". */
    public static final PruneMetric LOGPROB_DIFF_PERCENT = new PruneMetric("LogProb Diff Percent",
        "Log Probability Difference Percent",
        (ctx, outs) -> AnswerDiffPercent.measure(ctx, outs, ProbFunc.LOG_SOFTMAX, true),
        true, false, false, false, null);
    public static final PruneMetric CORRECT_ANSWER_PERCENT = new PruneMetric("Correct Answer Percent",
        "Correct Answer Percent",
        (ctx, outs) -> CorrectAnswerPercent.measure(ctx, outs, false), true, false, false, false, null);
    public static final PruneMetric CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT = new PruneMetric(
        "Correct Answer Greater Than Incorrect Percent", "Correct Answer Greater Than Incorrect Percent",
        (ctx, outs) -> CorrectAnswerPercent.measure(ctx, outs, true), true, false, false, false, null);

    private static final List<PruneMetric> ALL = List.of(
        CLEAN_KL_DIV, CORRUPT_KL_DIV, ANSWER_PROB, ANSWER_LOGIT, WRONG_ANSWER_LOGIT, ANSWER_LOGPROB,
        LOGIT_DIFF, PROB_DIFF, LOGPROB_DIFF, LOGIT_DIFF_PERCENT, PROB_DIFF_PERCENT, LOGPROB_DIFF_PERCENT,
        CORRECT_ANSWER_PERCENT, CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT);

    private static final Map<String, PruneMetric> BY_KEY;

    static {
        Map<String, PruneMetric> m = new LinkedHashMap<>();
        for (PruneMetric metric : ALL) {
            if (m.put(metric.key(), metric) != null) throw new AssertionError("duplicate metric key " + metric.key());
        }
        BY_KEY = java.util.Collections.unmodifiableMap(m);
    }

    /** All 14 metrics, in AutoCircuit's order. */
    public static List<PruneMetric> all() {
        return ALL;
    }

    /** The metric with this key ({@code PRUNE_METRIC_DICT[key]}). */
    public static PruneMetric byKey(String key) {
        PruneMetric m = BY_KEY.get(key);
        if (m == null) {
            throw new IllegalArgumentException("unknown prune metric key '" + key + "'; valid keys: " + BY_KEY.keySet());
        }
        return m;
    }

    /** Metric keys in registry order. */
    public static List<String> keys() {
        return List.copyOf(BY_KEY.keySet());
    }
}
