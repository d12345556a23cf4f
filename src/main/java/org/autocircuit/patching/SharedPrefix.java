package org.autocircuit.patching;

import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * The token positions a batch's passes share. Where the clean and corrupt prompts of a batch agree on their first
 * tokens (and padding), every source's clean and corrupt outputs agree there too (the model is causal), so under
 * RESAMPLE ablation {@code patch − curr} is 0 at those positions in every pass and they are the unpatched run's:
 * the batch runs on the remaining tokens only, over a frozen key/value cache of the prefix (AutoCircuit's
 * "tail divergence", applied here automatically). Only where the output is the last position, the graph has no
 * per-position masks, the model is a transformer and the caller handed it no caches of its own. Used by run_circuits
 * (on its input side) and by the mask-gradient algorithms (on the clean side).
 */
public final class SharedPrefix implements AutoCloseable {
    private static final SharedPrefix NONE = new SharedPrefix(null, 0, 0);
    private final PatchableModel model;
    private final int length;
    private final long batchSize;

    private SharedPrefix(PatchableModel model, int length, long batchSize) {
        this.model = model;
        this.length = length;
        this.batchSize = batchSize;
    }

    /** How many leading positions the batch's clean and corrupt sides share (tokens and padding); 0 when unusable. */
    static int length(PatchableModel model, PromptPairBatch batch) {
        if (!model.supportsBlockPasses() || model.hasKvCaches() || model.graph().seqLen().isPresent()
            || model.outputSlice() != org.autocircuit.model.OutputSlice.LAST_SEQ
            || batch.clean().dtype() != HostTensor.DType.INT64) {
            return 0;
        }
        long[] clean = batch.clean().longs(), corrupt = batch.corrupt().longs();
        long[] cleanPad = batch.cleanPadding() == null ? null : batch.cleanPadding().longs();
        long[] corruptPad = batch.corruptPadding() == null ? null : batch.corruptPadding().longs();
        if ((cleanPad == null) != (corruptPad == null)) return 0;
        int rows = batch.batchSize(), seq = batch.seqLen();
        int shared = 0;
        outer:
        for (; shared < seq - 1; shared++) {   // keep at least the last position to run
            for (int r = 0; r < rows; r++) {
                int at = r * seq + shared;
                if (clean[at] != corrupt[at] || (cleanPad != null && cleanPad[at] != corruptPad[at])) break outer;
            }
        }
        return shared;
    }

    /** Builds and hands the model the prefix's cache (run on {@code side}, equal to the other side there). */
    public static SharedPrefix cache(PatchableModel model, PromptPairBatch batch, Ablations.CleanCorrupt side,
                                     int length) {
        if (length == 0) return NONE;
        // no autograd graph for the cache: the prefix is frozen, and gradient passes (mask gradients) build it too
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor tokens = Inputs.input(batch, side).narrow(1, 0, length).contiguous();
            Tensor padding = Inputs.padding(batch, side);
            model.addKvCache(model.model().buildKvCache(tokens, padding == null ? null : padding.narrow(1, 0, length).contiguous()));
        }
        return new SharedPrefix(model, length, batch.batchSize());
    }

    /** The positions after the prefix of a {@code [batch, seq]} tensor (null stays null). */
    public Tensor tail(Tensor t) {
        if (t == null || length == 0) return t;
        return t.narrow(1, length, t.size(1) - length).contiguous();
    }

    @Override
    public void close() {
        if (length > 0) model.removeKvCache(batchSize);
    }
}
