package org.autocircuit.graph;

import java.util.OptionalInt;

/**
 * A node that reads from the residual stream: the Q/K/V input of one head (or its combined
 * attention input), an MLP input, or the final residual ({@code "Resid End"}); in the
 * unfactorized graph also the residual checkpoints {@code "Resid Mid {b}"} / {@code "Resid Post {b}"}.
 *
 * @param name       unique dest name
 * @param moduleName TransformerLens hook whose <em>input</em> is patched
 * @param layer      graph layer
 * @param headIdx    head row of the module's patch mask, or empty for whole-module dests
 * @param minSrcIdx  global src index of the first src this dest reads; 0 in factorized graphs,
 *                   where every dest reads a prefix of the srcs, and the first src of the previous
 *                   layer in unfactorized graphs
 */
public record DestNode(String name, String moduleName, int layer, OptionalInt headIdx, int minSrcIdx)
        implements Node {

    public DestNode {
        Nodes.checkCommon(name, moduleName, layer, headIdx);
        if (minSrcIdx < 0) {
            throw new IllegalArgumentException("minSrcIdx must be >= 0, got " + minSrcIdx + " for dest " + name);
        }
    }

    /** The node name, as AutoCircuit's {@code str(node)}. */
    @Override
    public String toString() {
        return name;
    }
}
