package org.autocircuit.metrics;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;

/**
 * The {@link MetricContext} of a model and its test batches: unpatched clean and corrupt outputs, computed on
 * first use and cached as host values. The model must not be in patch mode when an output is first asked for.
 */
public final class ModelMetricContext implements MetricContext {
    private final PatchableModel model;
    private final List<PromptPairBatch> batches;
    private final Map<Long, HostTensor> clean = new HashMap<>();
    private final Map<Long, HostTensor> corrupt = new HashMap<>();

    public ModelMetricContext(PatchableModel model, List<PromptPairBatch> batches) {
        this.model = model;
        this.batches = List.copyOf(batches);
    }

    @Override
    public List<PromptPairBatch> testBatches() {
        return batches;
    }

    @Override
    public HostTensor cleanOutput(PromptPairBatch batch) {
        return clean.computeIfAbsent(batch.key(), k -> run(batch, Ablations.CleanCorrupt.CLEAN));
    }

    @Override
    public HostTensor corruptOutput(PromptPairBatch batch) {
        return corrupt.computeIfAbsent(batch.key(), k -> run(batch, Ablations.CleanCorrupt.CORRUPT));
    }

    private HostTensor run(PromptPairBatch batch, Ablations.CleanCorrupt side) {
        if (model.inPatchMode()) {
            throw new IllegalStateException("the unpatched outputs of a metric cannot be computed in patch mode");
        }
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            return HostTensor.of(model.forward(Inputs.input(batch, side), Inputs.padding(batch, side)));
        }
    }
}
