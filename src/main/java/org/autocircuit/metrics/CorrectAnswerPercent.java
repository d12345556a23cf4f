package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * AutoCircuit's {@code measure_correct_ans_percent}: for each circuit size, the mean over test batches of
 * the proportion of prompts answered correctly, × 100. "Correct" means the answer has the highest logit of the whole
 * vocabulary or, with {@code outOfCorrectAndIncorrectAnswers}, a logit at least as high as every wrong answer's (the
 * comparison Rajamanoharan et al. use for sports players). Each prompt must have exactly one answer, and the answers must
 * be stacked.
 */
public final class CorrectAnswerPercent {
    private CorrectAnswerPercent() {}

    public static List<Measurement> measure(MetricContext ctx, CircuitOutputs outs,
                                            boolean outOfCorrectAndIncorrectAnswers) {
        List<PromptPairBatch> batches = Metrics.testBatches(ctx);
        for (PromptPairBatch batch : batches) {
            if (!(batch.answers() instanceof Answers.Stacked)) {
                throw new IllegalArgumentException("correct answer percent needs stacked answers; the answers of batch "
                    + batch.key() + " are ragged");
            }
        }
        List<Measurement> measurements = new ArrayList<>();
        for (int edgeCount : outs.edgeCounts()) {
            try (var scope = new PointerScope()) {
                List<Tensor> proportions = new ArrayList<>();
                for (PromptPairBatch batch : batches) {
                    Tensor logits = outs.output(edgeCount, batch.key()).toTensor();                 // [batch, vocab]
                    proportions.add(outOfCorrectAndIncorrectAnswers
                        ? TensorOps.correctAnswerGreaterThanIncorrectProportionTensor(logits, batch)
                        : TensorOps.correctAnswerProportionTensor(logits, batch));
                }
                measurements.add(new Measurement(edgeCount, TensorOps.stack(proportions).mean().item_double() * 100));
            }
        }
        return List.copyOf(measurements);
    }
}
