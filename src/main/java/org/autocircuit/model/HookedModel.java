package org.autocircuit.model;

import org.autocircuit.graph.Graph;
import org.bytedeco.pytorch.Tensor;

/**
 * A model whose forward pass exposes named hook points, so it can be turned into a
 * {@code PatchableModel}. Implementations: {@link HookedTransformer} (GPT-2 architecture, the
 * TransformerLens layout) and {@link MicroModel} (AutoCircuit's hand-built test model).
 *
 * <p>A model owns its weights; {@link #close()} frees them. Forward passes create their tensors in the
 * caller's current {@code PointerScope}.
 */
public interface HookedModel extends AutoCloseable {

    /**
     * Runs the model.
     *
     * @param input         {@code [batch, seq]} int64 token ids, or {@code [batch, seq, dModel]} float inputs
     *                      for models without an embedding (the micro model)
     * @param attentionMask {@code [batch, seq]} int64, 1 for real tokens and 0 for left padding; null = no padding
     * @param hooks         called at every hook point; {@link HookPoints#NONE} for a plain run
     * @param slice         which positions to return
     * @return logits {@code [batch, (seq,) dVocab]} (or outputs {@code [batch, (seq,) dModel]} for the micro model)
     */
    Tensor forward(Tensor input, Tensor attentionMask, HookPoints hooks, OutputSlice slice);

    /**
     * The model's computation graph.
     *
     * @param factorized  edges between every earlier source and later destination (true), or only between
     *                    adjacent layers through the residual stream (false: node patching)
     * @param separateQkv Q, K and V inputs of every head are separate destinations (ignored by models without attention)
     * @param seqLen      one copy of every edge per token position, or null for edges shared by all positions
     */
    Graph graph(boolean factorized, boolean separateQkv, Integer seqLen);

    /** Width of the residual stream: the last dimension of every source output. */
    int dModel();

    /** Frees the weights. Closing twice is a no-op. */
    @Override
    void close();
}
