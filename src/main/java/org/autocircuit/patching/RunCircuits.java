package org.autocircuit.patching;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.tasks.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * {@code run_circuits} (SPEC §6.1): for every requested edge count k, patch the circuit made of the k
 * edges with the largest |score| and record the model's output on every batch.
 *
 * <p>EDGE_PATCH runs on the corrupt prompt and gives circuit edges their values from the clean prompt;
 * TREE_PATCH runs on clean and ablates every edge outside the circuit with values from corrupt
 * ({@code reverseCleanCorrupt} swaps the roles). Edges whose score ties with the threshold all join the
 * circuit, so outputs are keyed by the number of edges actually in it (SPEC §15.1).
 * Masks keep the last setting afterwards (SPEC §15.2).
 */
public final class RunCircuits {
    private RunCircuits() {}

    public static CircuitOutputs run(PatchableModel model, List<PromptPairBatch> batches, List<Integer> testEdgeCounts,
                                     PruneScores scores, PatchType patchType, AblationType ablationType,
                                     boolean reverseCleanCorrupt) {
        return run(model, batches, testEdgeCounts, scores, patchType, ablationType, reverseCleanCorrupt, Progress.NONE);
    }

    public static CircuitOutputs run(PatchableModel model, List<PromptPairBatch> batches, List<Integer> testEdgeCounts,
                                     PruneScores scores, PatchType patchType, AblationType ablationType,
                                     boolean reverseCleanCorrupt, Progress progress) {
        if (scores.graph() != model.graph() && scores.graph().nEdges() != model.graph().nEdges()) {
            throw new IllegalArgumentException("prune scores are for a graph of " + scores.graph().nEdges()
                + " edges; the model has " + model.graph().nEdges());
        }
        if (scores.hasNaN()) throw new IllegalArgumentException("prune scores contain NaN");
        for (int k : testEdgeCounts) {
            if (k < 0 || k > model.graph().nEdges()) {
                throw new IllegalArgumentException("edge count " + k + " outside [0, " + model.graph().nEdges() + "]");
            }
        }
        boolean runOnClean = (patchType == PatchType.TREE_PATCH) != reverseCleanCorrupt;
        Ablations.CleanCorrupt inputSide = runOnClean ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        Ablations.CleanCorrupt patchSide = runOnClean ? Ablations.CleanCorrupt.CORRUPT : Ablations.CleanCorrupt.CLEAN;

        // the masks of every requested count, computed once on the host
        Map<Integer, MaskSet> maskSets = new LinkedHashMap<>();
        for (int k : testEdgeCounts) maskSets.put(k, MaskSet.of(scores, scores.threshold(k), patchType));

        CircuitOutputs.Builder outputs = CircuitOutputs.builder();
        long total = (long) batches.size() * maskSets.size();
        long done = 0;
        try (PointerScope runScope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor datasetPatch = ablationType.meanOverDataset()
                ? Ablations.datasetMean(model, batches, ablationType) : null;
            for (PromptPairBatch batch : batches) {
                try (PointerScope batchScope = new PointerScope()) {
                    Tensor input = Inputs.input(batch, inputSide);
                    Tensor padding = Inputs.padding(batch, inputSide);
                    Tensor patch = datasetPatch != null ? datasetPatch
                        : Ablations.srcAblations(model, Inputs.input(batch, patchSide), Inputs.padding(batch, patchSide), ablationType);
                    try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                        for (MaskSet set : maskSets.values()) {
                            Progress.checkInterrupted("run_circuits");
                            try (PointerScope step = new PointerScope()) {
                                set.applyTo(model);
                                outputs.put(set.edgeCount, batch.key(), HostTensor.of(model.forward(input, padding)));
                            }
                            progress.update("run_circuits", ++done, total);
                        }
                    }
                }
            }
        }
        return outputs.build();
    }

    /** The 0/1 masks of one circuit and the number of edges it really patches (ties included). */
    record MaskSet(int edgeCount, PruneScores masks) {
        static MaskSet of(PruneScores scores, float threshold, PatchType type) {
            Map<String, float[]> byModule = new LinkedHashMap<>();
            int count = 0;
            for (String module : scores.moduleNames()) {
                float[] s = scores.module(module);
                float[] m = new float[s.length];
                for (int i = 0; i < s.length; i++) {
                    boolean inCircuit = Math.abs(s[i]) >= threshold;
                    if (type == PatchType.EDGE_PATCH) {
                        m[i] = inCircuit ? 1f : 0f;
                        if (inCircuit) count++;
                    } else {
                        m[i] = inCircuit ? 0f : 1f;
                        if (inCircuit) count++;
                    }
                }
                byModule.put(module, m);
            }
            return new MaskSet(count, PruneScores.of(scores.graph(), byModule));
        }

        void applyTo(PatchableModel model) {
            model.setMasks(masks);
        }
    }
}
