package org.autocircuit.graph;

/**
 * The few facts about a TransformerLens model that decide its graph: the number of
 * blocks and heads, whether blocks have MLPs (false for attention-only models) and whether
 * attention and MLP read the same residual stream in parallel (GPT-J / Pythia style).
 *
 * @param nLayers         number of transformer blocks
 * @param nHeads          attention heads per block
 * @param hasMlp          false for attention-only models
 * @param parallelAttnMlp attention and MLP of a block share one graph layer
 */
public record TransformerShape(int nLayers, int nHeads, boolean hasMlp, boolean parallelAttnMlp) {

    public TransformerShape {
        if (nLayers <= 0) {
            throw new IllegalArgumentException("nLayers must be positive, got " + nLayers);
        }
        if (nHeads <= 0) {
            throw new IllegalArgumentException("nHeads must be positive, got " + nHeads);
        }
        if (parallelAttnMlp && !hasMlp) {
            throw new IllegalArgumentException("parallelAttnMlp requires hasMlp, got hasMlp=false");
        }
    }

    /** A sequential (GPT-2 style) transformer with MLPs. */
    public static TransformerShape sequential(int nLayers, int nHeads) {
        return new TransformerShape(nLayers, nHeads, true, false);
    }

    /** An attention-only transformer (no MLPs). */
    public static TransformerShape attnOnly(int nLayers, int nHeads) {
        return new TransformerShape(nLayers, nHeads, false, false);
    }

    /** A parallel attention+MLP transformer (Pythia, GPT-J). */
    public static TransformerShape parallel(int nLayers, int nHeads) {
        return new TransformerShape(nLayers, nHeads, true, true);
    }
}
