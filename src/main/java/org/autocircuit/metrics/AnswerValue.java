package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * AutoCircuit's {@code measure_answer_val}: for each circuit size, the mean over test batches of
 * {@link TensorOps#batchAvgAnswerVal} of {@code probFunc(circuit output)}: the average logit, probability or
 * log-probability of the correct (or, with {@code wrongAnswer}, the wrong) answers.
 */
public final class AnswerValue {
    private AnswerValue() {}

    public static List<Measurement> measure(MetricContext ctx, CircuitOutputs outs, ProbFunc probFunc,
                                            boolean wrongAnswer) {
        List<PromptPairBatch> batches = Metrics.testBatches(ctx);
        List<Measurement> measurements = new ArrayList<>();
        for (int edgeCount : outs.edgeCounts()) {
            try (var scope = new PointerScope()) {
                List<Tensor> batchVals = new ArrayList<>();
                for (PromptPairBatch batch : batches) {
                    Tensor vals = probFunc.apply(outs.output(edgeCount, batch.key()).toTensor());  // [batch, vocab]
                    batchVals.add(TensorOps.batchAvgAnswerVal(vals, batch, wrongAnswer));
                }
                measurements.add(new Measurement(edgeCount, TensorOps.stack(batchVals).mean().item_double()));
            }
        }
        return List.copyOf(measurements);
    }
}
