package org.autocircuit.patching;

import org.autocircuit.data.PromptPairBatch;
import org.bytedeco.pytorch.Tensor;

/** Turns a batch's host prompts into model inputs, in the caller's scope. */
public final class Inputs {
    private Inputs() {}

    public static Tensor input(PromptPairBatch batch, Ablations.CleanCorrupt side) {
        return (side == Ablations.CleanCorrupt.CLEAN ? batch.clean() : batch.corrupt()).toTensor();
    }

    /** The left-padding mask, or null when the batch has no padding. */
    public static Tensor padding(PromptPairBatch batch, Ablations.CleanCorrupt side) {
        var mask = side == Ablations.CleanCorrupt.CLEAN ? batch.cleanPadding() : batch.corruptPadding();
        return mask == null ? null : mask.toTensor();
    }

    public static Tensor clean(PromptPairBatch batch) {
        return input(batch, Ablations.CleanCorrupt.CLEAN);
    }

    public static Tensor corrupt(PromptPairBatch batch) {
        return input(batch, Ablations.CleanCorrupt.CORRUPT);
    }
}
