package org.autocircuit.graph;

import java.util.OptionalInt;

/**
 * A node that writes into the residual stream: the embeddings ({@code "Resid Start"}), one
 * attention head ({@code "A{b}.{h}"}), an MLP ({@code "MLP {b}"}), or, in the unfactorized graph,
 * a residual checkpoint that is both read and re-emitted.
 *
 * @param name      unique src name
 * @param moduleName TransformerLens hook whose output is this node (one slice per head if headed)
 * @param layer     graph layer
 * @param srcIdx    global index over all srcs, in layer order; it is the row of this node in the
 *                  stacked src-output tensor {@code [nSrc, batch, seq, dModel]}
 * @param headIdx   head slice of the module output, or empty for whole-module srcs
 */
public record SrcNode(String name, String moduleName, int layer, int srcIdx, OptionalInt headIdx)
        implements Node {

    public SrcNode {
        Nodes.checkCommon(name, moduleName, layer, headIdx);
        if (srcIdx < 0) {
            throw new IllegalArgumentException("srcIdx must be >= 0, got " + srcIdx + " for src " + name);
        }
    }

    /** Convenience constructor for a src node that is not a head. */
    public SrcNode(String name, String moduleName, int layer, int srcIdx) {
        this(name, moduleName, layer, srcIdx, OptionalInt.empty());
    }

    /** The node name, as AutoCircuit's {@code str(node)}. */
    @Override
    public String toString() {
        return name;
    }
}
