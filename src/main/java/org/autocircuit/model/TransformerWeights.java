package org.autocircuit.model;

import java.util.List;
import java.util.Objects;
import org.bytedeco.pytorch.Tensor;

/**
 * The weights of a {@link HookedTransformer} in TransformerLens's layout, whatever checkpoint they came from: what
 * an architecture adapter ({@link org.autocircuit.model.arch.Architecture}) turns a Hugging Face checkpoint into.
 * Absent pieces (a bias the architecture lacks, learned positions of a rotary model, the bias of an RMSNorm) are
 * null.
 *
 * @param wE       {@code [dVocab, dModel]} token embedding
 * @param wPos     {@code [nCtx, dModel]} learned positions, or null for rotary models
 * @param blocks   one per layer
 * @param lnFinalW {@code [dModel]} final norm gain
 * @param lnFinalB {@code [dModel]} final LayerNorm bias, or null
 * @param wU       {@code [dModel, dVocab]} unembedding (a view of {@code wE} when tied)
 * @param bU       {@code [dVocab]} unembedding bias, or null
 */
public record TransformerWeights(Tensor wE, Tensor wPos, List<Block> blocks, Tensor lnFinalW, Tensor lnFinalB,
                                 Tensor wU, Tensor bU) {

    public TransformerWeights {
        Objects.requireNonNull(wE, "wE");
        Objects.requireNonNull(lnFinalW, "lnFinalW");
        Objects.requireNonNull(wU, "wU");
        blocks = List.copyOf(blocks);
    }

    /**
     * One block's weights.
     *
     * @param ln1W  {@code [dModel]} norm before attention (gain)
     * @param ln1B  its bias, or null
     * @param wQ    {@code [nHeads, dModel, dHead]}
     * @param bQ    {@code [nHeads, dHead]} or null
     * @param wK    {@code [nKvHeads, dModel, dHead]}
     * @param bK    {@code [nKvHeads, dHead]} or null
     * @param wV    {@code [nKvHeads, dModel, dHead]}
     * @param bV    {@code [nKvHeads, dHead]} or null
     * @param wO    {@code [nHeads, dHead, dModel]}
     * @param bO    {@code [dModel]} or null
     * @param ln2W  {@code [dModel]} norm before the MLP, or null for attention-only models
     * @param ln2B  its bias, or null
     * @param wIn   {@code [dModel, dMlp]} or null for attention-only models
     * @param bIn   {@code [dMlp]} or null
     * @param wGate {@code [dModel, dMlp]} gate of a gated MLP, or null
     * @param wOut  {@code [dMlp, dModel]} or null for attention-only models
     * @param bOut  {@code [dModel]} or null
     * @param ln1PostW {@code [dModel]} gain of the RMSNorm on the attention output (Gemma-2), or null
     * @param ln2PostW {@code [dModel]} gain of the RMSNorm on the MLP output (Gemma-2), or null
     */
    public record Block(Tensor ln1W, Tensor ln1B, Tensor wQ, Tensor bQ, Tensor wK, Tensor bK, Tensor wV, Tensor bV,
                        Tensor wO, Tensor bO, Tensor ln2W, Tensor ln2B, Tensor wIn, Tensor bIn, Tensor wGate,
                        Tensor wOut, Tensor bOut, Tensor ln1PostW, Tensor ln2PostW) {

        /** A block without post-norms (every family but Gemma-2). */
        public Block(Tensor ln1W, Tensor ln1B, Tensor wQ, Tensor bQ, Tensor wK, Tensor bK, Tensor wV, Tensor bV,
                     Tensor wO, Tensor bO, Tensor ln2W, Tensor ln2B, Tensor wIn, Tensor bIn, Tensor wGate,
                     Tensor wOut, Tensor bOut) {
            this(ln1W, ln1B, wQ, bQ, wK, bK, wV, bV, wO, bO, ln2W, ln2B, wIn, bIn, wGate, wOut, bOut, null, null);
        }
    }
}
