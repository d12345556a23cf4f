package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.CircuitOutputs;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * AutoCircuit's {@code measure_kl_div}: the average KL divergence KL(full model ‖ circuit) between the
 * output distributions of the unpatched model (on the clean prompts, or with {@code compareToClean = false} the corrupt
 * prompts) and of each circuit. The batches are concatenated, so the average is over all rows (prompts × sliced
 * positions), and the value is clipped at 0 because rounding can make a KL of identical distributions slightly negative.
 */
public final class KlDivergence {
    private KlDivergence() {}

    public static List<Measurement> measure(MetricContext ctx, CircuitOutputs outs, boolean compareToClean) {
        List<PromptPairBatch> batches = Metrics.testBatches(ctx);
        List<Measurement> measurements = new ArrayList<>();
        try (var outer = new PointerScope()) {
            Tensor[] defaultLogprobs = new Tensor[batches.size()];
            for (int b = 0; b < batches.size(); b++) {
                PromptPairBatch batch = batches.get(b);
                var out = compareToClean ? ctx.cleanOutput(batch) : ctx.corruptOutput(batch);
                defaultLogprobs[b] = out.toTensor().log_softmax(-1);                             // [batch, vocab]
            }
            Tensor target = torch.cat(new TensorVector(defaultLogprobs), 0);                    // [rows, vocab]
            for (int edgeCount : outs.edgeCounts()) {
                try (var scope = new PointerScope()) {
                    Tensor[] circuitLogprobs = new Tensor[batches.size()];
                    for (int b = 0; b < batches.size(); b++) {
                        circuitLogprobs[b] = outs.output(edgeCount, batches.get(b).key()).toTensor().log_softmax(-1);
                    }
                    Tensor input = torch.cat(new TensorVector(circuitLogprobs), 0);             // [rows, vocab]
                    measurements.add(new Measurement(edgeCount, clippedKlDiv(input, target)));
                }
            }
        }
        return List.copyOf(measurements);
    }

    /**
     * {@code max(multibatch_kl_div(input, target), 0)} as a double: rounding can make the KL divergence of (nearly)
     * identical distributions slightly negative, and AutoCircuit clips it.
     */
    static double clippedKlDiv(Tensor inputLogprobs, Tensor targetLogprobs) {
        try (var scope = new PointerScope()) {
            return Math.max(TensorOps.multibatchKlDiv(inputLogprobs, targetLogprobs).item_double(), 0.0);
        }
    }
}
