package org.autocircuit.kernels;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The reference edge-patching step in plain libtorch ops, written to be read: one difference tensor
 * {@code patch − curr} shared by all destinations, then one einsum per destination module. It is what
 * AutoCircuit's {@code PatchWrapperImpl.forward} computes, except that Q, K and V of a block share the
 * difference instead of computing it three times, and their masks are stacked into one contraction.
 */
public final class TorchKernels implements Kernels {
    static final TorchKernels INSTANCE = new TorchKernels();

    private TorchKernels() {}

    @Override
    public Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout) {
        Tensor diff = patch.sub(curr);                                    // [nIn, batch, seq, dModel]
        String equation = layout.maskSubscripts() + ",ibsd->" + layout.outputSubscripts();
        Tensor base = layout.head() ? input.unsqueeze(2) : input;         // [batch, seq, (1), dModel]
        Tensor[] out = new Tensor[masks.length];
        if (layout.head() && masks.length > 1) {
            // Q, K and V: stack their head rows so that one contraction reads the differences once.
            int headDim = layout.maskRank() - 2;
            Tensor[] typed = new Tensor[masks.length];
            for (int m = 0; m < masks.length; m++) typed[m] = masks[m].to(diff.dtype());
            Tensor stacked = torch.cat(new TensorVector(typed), headDim);  // [(batch,) (seq,) nMasks*heads, nIn]
            Tensor all = base.add(torch.einsum(equation, new TensorVector(stacked, diff)));   // [batch, seq, nMasks*heads, dModel]
            long offset = 0;
            for (int m = 0; m < masks.length; m++) {
                long heads = masks[m].shape()[headDim];
                out[m] = all.narrow(2, offset, heads);
                offset += heads;
            }
            return out;
        }
        for (int m = 0; m < masks.length; m++) {
            Tensor mask = masks[m].to(diff.dtype());
            out[m] = base.add(torch.einsum(equation, new TensorVector(mask, diff)));
        }
        return out;
    }

    @Override
    public String name() {
        return "torch";
    }
}
