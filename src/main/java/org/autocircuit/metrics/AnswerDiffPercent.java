package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * AutoCircuit's {@code answer_diff_percent}: how much of the full model's answer difference (correct minus
 * wrong answers, after {@code probFunc}) each circuit recovers, in percent.
 *
 * <ul>
 *   <li>Difference of means ({@code diffOfMeans = true}, as in the IOI paper): mean over batches of the circuit's
 *       average answer difference, divided by the same for the unpatched model on the clean prompts, × 100. The standard
 *       deviation is 0 and there are no points.</li>
 *   <li>Mean of ratios ({@code diffOfMeans = false}): every prompt's {@code diff(circuit) / diff(clean) · 100}; the value
 *       is their mean, the standard deviation their unbiased standard deviation (torch's default; NaN for a single prompt)
 *       and the points the raw per-prompt percentages.</li>
 * </ul>
 */
public final class AnswerDiffPercent {
    private AnswerDiffPercent() {}

    /**
     * The per-prompt percentages of one circuit size.
     *
     * @param x      the edge count
     * @param values the per-prompt percentages, in batch order (empty for the difference of means)
     */
    public record Points(double x, List<Double> values) {
        public Points {
            values = List.copyOf(values);
        }
    }

    /**
     * AutoCircuit's {@code (means, standard_devs, points)} triple, one entry per edge count.
     */
    public record Result(List<Measurement> means, List<Measurement> stds, List<Points> points) {
        public Result {
            means = List.copyOf(means);
            stds = List.copyOf(stds);
            points = List.copyOf(points);
        }
    }

    /** AutoCircuit's {@code measure_answer_diff_percent}: only the means. */
    public static List<Measurement> measure(MetricContext ctx, CircuitOutputs outs, ProbFunc probFunc,
                                            boolean diffOfMeans) {
        return answerDiffPercent(ctx, outs, probFunc, diffOfMeans).means();
    }

    /** The mean-of-ratios variant with its standard deviations and per-prompt points. */
    public static Result perPrompt(MetricContext ctx, CircuitOutputs outs, ProbFunc probFunc) {
        return answerDiffPercent(ctx, outs, probFunc, false);
    }

    /** AutoCircuit's {@code answer_diff_percent}, either variant. */
    public static Result answerDiffPercent(MetricContext ctx, CircuitOutputs outs, ProbFunc probFunc,
                                           boolean diffOfMeans) {
        List<PromptPairBatch> batches = Metrics.testBatches(ctx);
        List<Measurement> means = new ArrayList<>();
        List<Measurement> stds = new ArrayList<>();
        List<Points> points = new ArrayList<>();
        try (var outer = new PointerScope()) {
            Tensor[] defaultVals = new Tensor[batches.size()];
            for (int b = 0; b < batches.size(); b++) {
                defaultVals[b] = probFunc.apply(ctx.cleanOutput(batches.get(b)).toTensor());     // [batch, vocab]
            }
            for (int edgeCount : outs.edgeCounts()) {
                try (var scope = new PointerScope()) {
                    if (diffOfMeans) {
                        List<Tensor> predDiffs = new ArrayList<>();
                        List<Tensor> targetDiffs = new ArrayList<>();
                        for (int b = 0; b < batches.size(); b++) {
                            PromptPairBatch batch = batches.get(b);
                            Tensor circ = probFunc.apply(outs.output(edgeCount, batch.key()).toTensor());
                            predDiffs.add(TensorOps.batchAvgAnswerDiff(circ, batch));
                            targetDiffs.add(TensorOps.batchAvgAnswerDiff(defaultVals[b], batch));
                        }
                        // As in AutoCircuit: float32 means, then the ratio in double precision.
                        double meanPred = TensorOps.stack(predDiffs).mean().item_double();
                        double meanTarget = TensorOps.stack(targetDiffs).mean().item_double();
                        means.add(new Measurement(edgeCount, meanPred / meanTarget * 100));
                        stds.add(new Measurement(edgeCount, 0.0));
                        points.add(new Points(edgeCount, List.of()));
                    } else {
                        Tensor[] percents = new Tensor[batches.size()];
                        for (int b = 0; b < batches.size(); b++) {
                            PromptPairBatch batch = batches.get(b);
                            Tensor circ = probFunc.apply(outs.output(edgeCount, batch.key()).toTensor());
                            percents[b] = TensorOps.batchAnswerDiffPercents(circ, defaultVals[b], batch);  // [batch]
                        }
                        Tensor all = torch.cat(new TensorVector(percents), 0);                   // [nPrompts]
                        means.add(new Measurement(edgeCount, all.mean().item_double()));
                        stds.add(new Measurement(edgeCount, all.std().item_double()));
                        List<Double> values = new ArrayList<>();
                        for (float v : HostTensor.of(all).floats()) values.add((double) v);
                        points.add(new Points(edgeCount, values));
                    }
                }
            }
        }
        return new Result(means, stds, points);
    }
}
