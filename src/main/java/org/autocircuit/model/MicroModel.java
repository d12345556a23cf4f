package org.autocircuit.model;

import org.autocircuit.graph.Graph;
import org.autocircuit.util.OwnedTensors;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;

/**
 * AutoCircuit's MicroModel: a deterministic toy "transformer" for exact tests.
 *
 * <p>Each block repeats its input {@code x [batch, seq, 2]} into two heads, multiplies head h
 * elementwise by row h of {@code [[1, 2], [3, 4]]}, and sums the heads; the residual adds it back:
 * {@code x ← x + block(x)}. So the output is {@code x ⊙ [5, 7]^nLayers}: input {@code [1, 1]} gives
 * {@code [25, 49]} with two layers. Hook names are the Python module names: {@code input},
 * {@code blocks.l.head_inputs}, {@code blocks.l.head_outputs}, {@code resids.l}, {@code output}.
 */
public final class MicroModel implements HookedModel {
    private static final int D = 2;
    private final int nLayers;
    private final OwnedTensors owned = new OwnedTensors();
    private final Tensor weights;   // [heads=2, resid=2]
    private boolean closed;

    public MicroModel(int nLayers) {
        if (nLayers < 1) throw new IllegalArgumentException("nLayers must be ≥ 1, got " + nLayers);
        this.nLayers = nLayers;
        this.weights = owned.adopt(AbstractTensor.create(new float[] {1, 2, 3, 4}, 2, 2));
    }

    public int nLayers() {
        return nLayers;
    }

    @Override
    public Tensor forward(Tensor input, Tensor attentionMask, HookPoints hooks, OutputSlice slice) {
        ensureOpen();
        long[] shape = input.shape();
        if (shape.length != 3 || shape[2] != D) {
            throw new IllegalArgumentException("MicroModel input must be [batch, seq, 2], got " + java.util.Arrays.toString(shape));
        }
        Tensor x = hooks.apply("input", input);
        for (int l = 0; l < nLayers; l++) {
            Tensor headIn = hooks.apply("blocks." + l + ".head_inputs", x);
            if (headIn.dim() == 3) headIn = headIn.unsqueeze(2).expand(shape[0], shape[1], 2, D);   // [b, s, head, d]
            Tensor headOut = hooks.apply("blocks." + l + ".head_outputs", headIn.mul(weights));
            x = hooks.apply("resids." + l, x.add(headOut.sum(2)));
        }
        return slice.apply(hooks.apply("output", x));
    }

    @Override
    public Graph graph(boolean factorized, boolean separateQkv, Integer seqLen) {
        return Graph.microModel(nLayers, factorized, seqLen);
    }

    @Override
    public int dModel() {
        return D;
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("MicroModel is closed");
    }

    @Override
    public void close() {
        closed = true;
        owned.close();
    }
}
