package org.autocircuit.patching;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The values ablated edges take: pass 1 of two-pass patching. Every result is
 * {@code [nSrc, batch, seq, dModel]} in src_idx order, detached, and owned by the caller's scope.
 */
public final class Ablations {
    private Ablations() {}

    /** Which prompt of each pair supplies per-batch ablation values. */
    public enum CleanCorrupt { CLEAN, CORRUPT }

    /**
     * {@code src_ablations} for one input: RESAMPLE (the activations themselves), ZERO, BATCH_TOKENWISE_MEAN
     * or BATCH_ALL_TOK_MEAN. Dataset means need {@link #datasetMean}.
     */
    public static Tensor srcAblations(PatchableModel model, Tensor input, Tensor attentionMask, AblationType type) {
        if (type.meanOverDataset()) {
            throw new IllegalArgumentException(type + " is a dataset mean: use Ablations.datasetMean with the loader's batches");
        }
        // a mean over positions reads every position of every source, also where run_circuits' passes would compute
        // the last block at the last position only
        try (NoGradGuard g = new NoGradGuard();
             PatchableModel.OutputsOnly every = type == AblationType.BATCH_ALL_TOK_MEAN ? model.everyPosition() : () -> {}) {
            Tensor outs = model.srcOutputs(input, attentionMask, null);             // [nSrc, batch, seq, dModel]
            long[] s = outs.shape();
            return switch (type) {
                case RESAMPLE -> outs;
                case ZERO -> torch.zeros_like(outs);
                case BATCH_TOKENWISE_MEAN -> outs.mean(new long[] {1}, true, new org.bytedeco.pytorch.ScalarTypeOptional())
                    .expand(s).contiguous();
                case BATCH_ALL_TOK_MEAN -> outs.mean(new long[] {1, 2}, true, new org.bytedeco.pytorch.ScalarTypeOptional())
                    .expand(s).contiguous();
                default -> throw new AssertionError(type);
            };
        }
    }

    /**
     * The dataset-mean ablations (TOKENWISE_MEAN_CLEAN / CORRUPT / CLEAN_AND_CORRUPT): for every batch, the batch
     * mean over dim 0 of the source outputs on clean and/or corrupt, summed, divided by the number of runs,
     * and repeated to the loader's batch size. Batches must share one size (the loaders drop the last one).
     */
    public static Tensor datasetMean(PatchableModel model, List<PromptPairBatch> batches, AblationType type) {
        if (!type.meanOverDataset()) throw new IllegalArgumentException(type + " is not a dataset mean");
        if (batches.isEmpty()) throw new IllegalArgumentException("dataset-mean ablation of an empty data set");
        Tensor sum = null;
        int runs = 0;
        long batchSize = batches.get(0).batchSize();
        try (NoGradGuard g = new NoGradGuard()) {
            for (PromptPairBatch batch : batches) {
                if (batch.batchSize() != batchSize) {
                    throw new IllegalArgumentException("dataset-mean ablation needs equal batch sizes; got "
                        + batch.batchSize() + " and " + batchSize);
                }
                for (CleanCorrupt side : CleanCorrupt.values()) {
                    if (side == CleanCorrupt.CLEAN ? !type.cleanDataset() : !type.corruptDataset()) continue;
                    try (PointerScope scope = new PointerScope()) {
                        Tensor outs = model.srcOutputs(Inputs.input(batch, side), Inputs.padding(batch, side), null);
                        Tensor mean = outs.mean(new long[] {1}, true, new org.bytedeco.pytorch.ScalarTypeOptional());
                        Tensor next = sum == null ? mean : sum.add(mean);
                        org.autocircuit.util.OwnedTensors.keepAlive(next);
                        if (sum != null) sum.close();
                        sum = next;
                    }
                    runs++;
                }
            }
            long[] s = sum.shape();
            Tensor result = sum.div(new Scalar(runs)).expand(s[0], batchSize, s[2], s[3]).contiguous();
            sum.close();
            return result;
        }
    }

    /**
     * {@code batch_src_ablations}: ablation values for every batch, by batch key. {@code cleanCorrupt} must be
     * given exactly when the type takes values from one side of each pair (RESAMPLE and the batch means).
     */
    public static Map<Long, Tensor> batchSrcAblations(PatchableModel model, List<PromptPairBatch> batches,
                                                      AblationType type, CleanCorrupt cleanCorrupt) {
        if (type.needsCleanCorrupt() != (cleanCorrupt != null)) {
            throw new IllegalArgumentException(type + (type.needsCleanCorrupt()
                ? " needs cleanCorrupt (CLEAN or CORRUPT)" : " takes no cleanCorrupt, got " + cleanCorrupt));
        }
        Map<Long, Tensor> out = new LinkedHashMap<>();
        if (type.meanOverDataset()) {
            Tensor mean = datasetMean(model, batches, type);
            for (PromptPairBatch b : batches) out.put(b.key(), mean);
            return out;
        }
        for (PromptPairBatch b : batches) {
            CleanCorrupt side = type == AblationType.ZERO ? CleanCorrupt.CLEAN : cleanCorrupt;
            out.put(b.key(), srcAblations(model, Inputs.input(b, side), Inputs.padding(b, side), type));
        }
        return out;
    }
}
