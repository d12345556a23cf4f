package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * AutoCircuit's {@code measure_answer_diff}: for each circuit size, the mean over test batches of
 * {@link TensorOps#batchAvgAnswerDiff} of {@code probFunc(circuit output)}, i.e. the average difference between the
 * correct-answer and wrong-answer values.
 */
public final class AnswerDiff {
    private AnswerDiff() {}

    public static List<Measurement> measure(MetricContext ctx, CircuitOutputs outs, ProbFunc probFunc) {
        List<PromptPairBatch> batches = Metrics.testBatches(ctx);
        List<Measurement> measurements = new ArrayList<>();
        for (int edgeCount : outs.edgeCounts()) {
            try (var scope = new PointerScope()) {
                List<Tensor> batchDiffs = new ArrayList<>();
                for (PromptPairBatch batch : batches) {
                    Tensor vals = probFunc.apply(outs.output(edgeCount, batch.key()).toTensor());  // [batch, vocab]
                    batchDiffs.add(TensorOps.batchAvgAnswerDiff(vals, batch));
                }
                // Loaders have equal batch sizes, so the mean of batch means is the overall mean (as in AutoCircuit).
                measurements.add(new Measurement(edgeCount, TensorOps.stack(batchDiffs).mean().item_double()));
            }
        }
        return List.copyOf(measurements);
    }
}
