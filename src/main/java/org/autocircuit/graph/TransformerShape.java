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
 * @param kvDestHeads     K and V destinations per block: {@code nHeads} (one per query head, the "ungrouped" layout
 *                        of a grouped-query model, and every model without grouped-query attention) or the number of
 *                        key/value heads (the "grouped" layout)
 */
public record TransformerShape(int nLayers, int nHeads, boolean hasMlp, boolean parallelAttnMlp, int kvDestHeads) {

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
        if (kvDestHeads <= 0 || nHeads % kvDestHeads != 0) {
            throw new IllegalArgumentException("kvDestHeads must divide nHeads " + nHeads + ", got " + kvDestHeads);
        }
    }

    /** A shape with one K and one V destination per query head. */
    public TransformerShape(int nLayers, int nHeads, boolean hasMlp, boolean parallelAttnMlp) {
        this(nLayers, nHeads, hasMlp, parallelAttnMlp, nHeads);
    }

    /** This shape with {@code kvDestHeads} K and V destinations per block. */
    public TransformerShape withKvDestHeads(int kvDestHeads) {
        return new TransformerShape(nLayers, nHeads, hasMlp, parallelAttnMlp, kvDestHeads);
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
