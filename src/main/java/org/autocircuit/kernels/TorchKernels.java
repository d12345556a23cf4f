package org.autocircuit.kernels;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The reference edge-patching step in plain libtorch ops, written to be read: one difference tensor
 * {@code patch − curr} shared by all destinations, then one einsum per destination module. It is what
 * AutoCircuit's {@code PatchWrapperImpl.forward} computes, except that Q, K and V of a block share the
 * difference instead of computing it three times.
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
