package org.autocircuit.metrics;

import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;

/**
 * What a prune metric needs besides the circuit outputs: the test batches the circuits were run on, and the outputs of
 * the full (unpatched) model on them. It stands in for AutoCircuit's {@code (model, test_loader)} arguments; the
 * patching layer implements it (running the model outside patch mode and caching the results).
 */
public interface MetricContext {
    /** The batches the circuit outputs were computed on, in loader order. */
    List<PromptPairBatch> testBatches();

    /** Output of the UNPATCHED model on {@code batch.clean()} (out_slice applied), cached by the implementation. */
    HostTensor cleanOutput(PromptPairBatch batch);

    /** Output of the unpatched model on {@code batch.corrupt()} (out_slice applied). */
    HostTensor corruptOutput(PromptPairBatch batch);
}
