package org.autocircuit.model;

import org.autocircuit.graph.Graph;
import org.bytedeco.pytorch.Tensor;

/**
 * A model whose forward pass exposes named hook points, so it can be turned into a
 * {@code PatchableModel}: the seam between the model and everything above it (patching, algorithms,
 * run_circuits), which never asks which class a model is. Implementations: {@link HookedTransformer} (every
 * supported Hugging Face architecture, in the TransformerLens layout) and {@link MicroModel} (AutoCircuit's
 * hand-built test model).
 *
 * <p>Models that run in blocks with an unembedding at the end ({@link #supportsBlockPasses()}) also offer the passes
 * the fast paths use: the residual stream without the unembedding, restarts at a later block from a recorded
 * {@code hook_resid_pre}, and frozen key/value caches of a shared prompt prefix. The others throw
 * {@link UnsupportedOperationException} there.
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

    /**
     * {@link #graph(boolean, boolean, Integer)} with the K/V destinations of grouped-query attention laid out as
     * {@code layout} says; models without grouped-query attention have one layout, which both values give.
     */
    default Graph graph(boolean factorized, boolean separateQkv, Integer seqLen, org.autocircuit.graph.GqaLayout layout) {
        return graph(factorized, separateQkv, seqLen);
    }

    /**
     * Where the model's weights live and its passes run; callers make the tensors they hand in (patch buffers,
     * masks, ablation values) there. Token ids and padding masks may come from the host: the model moves them.
     */
    default org.autocircuit.kernels.Device device() {
        return org.autocircuit.kernels.Device.CPU;
    }

    /** The dtype of the model's activations (its source outputs): float32 unless the model says otherwise. */
    default org.bytedeco.pytorch.global.torch.ScalarType dtype() {
        return org.bytedeco.pytorch.global.torch.ScalarType.Float;
    }

    /** Width of the residual stream: the last dimension of every source output. */
    int dModel();

    /**
     * Whether {@link #headInputGradients} works for this model's Q, K and V inputs (transformers without grouped-query
     * attention).
     */
    default boolean supportsHeadInputGradients() {
        return false;
    }

    /**
     * The gradients at every head's own input of Q, K or V projections of one block whose heads all read one shared
     * input: what autograd would give each head's input had every head been handed its own copy of
     * {@code sharedInput}. From the gradient at each projection's output ({@link HookPoints#sharedHeadProjection}),
     * through each head's weights, then back through the norm before the projections (the same Jacobian for every head,
     * at {@code sharedInput}).
     *
     * @param hookNames       {@code blocks.b.hook_q_input}, {@code hook_k_input} or {@code hook_v_input}, one block
     * @param sharedInput     the input every head read, {@code [batch, seq, dModel]}
     * @param projections     each projection's output in the forward pass, {@code [batch, seq, nHeads, dHead]}
     * @param projectionGrads the gradient at each projection's output, {@code [batch, seq, nHeads, dHead]}
     * @return {@code [Σ nHeads, batch·seq, dModel]}, the heads of each hook in turn
     * @throws UnsupportedOperationException where {@link #supportsHeadInputGradients()} is false
     */
    default Tensor headInputGradients(java.util.List<String> hookNames, Tensor sharedInput,
                                      java.util.List<Tensor> projections, java.util.List<Tensor> projectionGrads) {
        throw new UnsupportedOperationException(getClass().getSimpleName() + " has no per-head input gradients");
    }

    /**
     * Whether {@link #forwardResidual}, {@link #residualFromBlock}, {@link #forwardFromBlock}, {@link #unembed},
     * {@link #buildKvCache} and the cache argument of {@link #forward(Tensor, Tensor, KvCache, HookPoints,
     * OutputSlice, Tensor[])} are available.
     */
    default boolean supportsBlockPasses() {
        return false;
    }

    /**
     * Whether every destination's input is the sum of the outputs of the sources before it plus terms that no prompt
     * changes (biases), so that a patched pass with every edge ablated under resample ablation reproduces the run that
     * gave the patch values (integrated gradients skip that pass where this holds; norm scales frozen at the
     * unpatched run, {@link #normScaleHooks()}, are checked separately).
     */
    default boolean residualIsSumOfSources() {
        return false;
    }

    /** Number of blocks whose {@code hook_resid_pre} a pass can record (0 when {@link #supportsBlockPasses()} is false). */
    default int nLayers() {
        return 0;
    }

    /**
     * The full forward pass.
     *
     * @param cache    a frozen key/value cache of a shared prompt prefix, or null (models without block passes: null only)
     * @param residPre if non-null (block passes only), receives {@code blocks.b.hook_resid_pre} of every block
     * @return the output with {@code slice} applied
     */
    default Tensor forward(Tensor input, Tensor attentionMask, KvCache cache, HookPoints hooks, OutputSlice slice,
                           Tensor[] residPre) {
        if (cache != null || residPre != null) throw unsupported("KV caches and recorded residual streams");
        return forward(input, attentionMask, hooks, slice);
    }

    /**
     * The forward pass without the unembedding: the final residual stream with {@code slice} applied,
     * {@code [batch, (seq,) dModel]}; {@link #unembed} of it gives the logits. With {@code lastPositionOnly} and
     * {@link OutputSlice#LAST_SEQ} the last block may compute the last position only.
     */
    default Tensor forwardResidual(Tensor input, Tensor attentionMask, KvCache cache, HookPoints hooks,
                                   OutputSlice slice, Tensor[] residPre, boolean lastPositionOnly) {
        throw unsupported("forwardResidual");
    }

    /** A pass from block {@code startBlock}'s recorded {@code hook_resid_pre}, without the unembedding. */
    default Tensor residualFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                     HookPoints hooks, OutputSlice slice, boolean lastPositionOnly) {
        throw unsupported("residualFromBlock");
    }

    /** {@link #residualFromBlock} then {@link #unembed}. */
    default Tensor forwardFromBlock(int startBlock, Tensor residPre, Tensor attentionMask, KvCache cache,
                                    HookPoints hooks, OutputSlice slice) {
        return unembed(residualFromBlock(startBlock, residPre, attentionMask, cache, hooks, slice, false));
    }

    /** The logits {@code [..., dVocab]} of a final residual stream {@code [..., dModel]}. */
    default Tensor unembed(Tensor resid) {
        throw unsupported("unembed");
    }

    /**
     * The hook points of the norm scales this model computes inside a pass from the sum of several sources' outputs
     * (Gemma-2's norm after the attention output: {@code blocks.b.ln1_post.hook_scale}, {@code [batch, seq, 1]}), in
     * block order; empty for models without such norms. Edge patching freezes them at the unpatched run's values in
     * patched passes (see {@code PatchableModel}), so that the sources stay additive.
     */
    default java.util.List<String> normScaleHooks() {
        return java.util.List.of();
    }

    /**
     * The unembedding as an affine map after the final norm, {@code unembed(x) = finalNorm(x) · W_U + b_U}, when it is
     * one: {@code {W_U [dModel, vocab], b_U [vocab] or null}}; null when it is not (a soft cap on the logits) or the
     * model has no unembedding of its own. Lets ACDC's KL work on {@code finalNorm(x)} (docs/native.md).
     */
    default Tensor[] affineUnembedding() {
        return null;
    }

    /** The final norm of a final residual stream {@code [..., dModel]}: {@link #unembed} before its product. */
    default Tensor finalNorm(Tensor resid) {
        throw unsupported("finalNorm");
    }

    /** The frozen key/value cache of a prompt prefix ({@code [batch, prefix]} tokens, optional padding mask). */
    default KvCache buildKvCache(Tensor prefixTokens, Tensor prefixMask) {
        throw unsupported("KV caches");
    }

    private UnsupportedOperationException unsupported(String what) {
        return new UnsupportedOperationException(what + " need a model that runs in blocks; "
            + getClass().getSimpleName() + " does not (supportsBlockPasses() is false)");
    }

    /** Frees the weights. Closing twice is a no-op. */
    @Override
    void close();
}
