package org.autocircuit.graph;

import java.util.OptionalInt;

/**
 * A node of AutoCircuit's computation graph: either something that writes into the residual
 * stream ({@link SrcNode}) or something that reads from it ({@link DestNode}).
 *
 * <p>{@link #layer()} is a <em>graph</em> layer, not a block index: in a transformer without
 * parallel attention and MLP one block spans two graph layers (attention, then MLP), because an
 * MLP can read its own block's heads. Edges are defined purely by comparing layers.
 *
 * <p>{@link #moduleName()} is the TransformerLens hook name (for example
 * {@code "blocks.3.attn.hook_result"}), kept as a string because prune scores and official
 * circuits are keyed by it.
 */
public sealed interface Node permits SrcNode, DestNode {

    /** Human-readable name, unique among nodes of the same kind (e.g. {@code "A1.3"}, {@code "MLP 0"}). */
    String name();

    /** Hook (module) name that hosts this node; several nodes (one per head) may share a module. */
    String moduleName();

    /** Graph layer; src nodes feed dest nodes of later layers (factorized) or of the next layer (unfactorized). */
    int layer();

    /** Head index inside the module when the module hosts one node per head, empty otherwise. */
    OptionalInt headIdx();
}
