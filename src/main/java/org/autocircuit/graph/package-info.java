/**
 * AutoCircuit's computation graph, as pure Java values: nodes, edges, the patch-mask layout
 * and {@link org.autocircuit.graph.PruneScores}.
 *
 * <h2>The graph</h2>
 * A transformer's residual stream is a sum of terms written by <em>src</em> nodes (the
 * embeddings, every attention head, every MLP) and read by <em>dest</em> nodes (each head's
 * Q/K/V input or combined attention input, each MLP input, the final residual). An
 * {@link org.autocircuit.graph.Edge} is one src's term in one dest's input, optionally at one
 * token position. Patching an edge replaces only that term with its ablation value:
 * {@code input' = input + Σ_src mask[.., src] · (patchSrcOut[src] − currSrcOut[src])}.
 *
 * <h2>Factorized vs node graph</h2>
 * In the <em>factorized</em> graph ({@link org.autocircuit.graph.Graph#transformerFactorized})
 * every src feeds every dest of a later layer, because the residual stream keeps each term
 * separate: a head in block 5 reads the output of a head in block 0 directly. In the
 * <em>unfactorized</em> (residual, node-patching) graph
 * ({@link org.autocircuit.graph.Graph#transformerUnfactorized}) edges join only consecutive
 * layers, through residual checkpoints that are both dest and src, so patching an edge
 * patches a node's whole effect downstream.
 *
 * <h2>Why srcIdx follows layer order</h2>
 * Each src has a global {@code srcIdx}, its row in the stacked src-output tensor
 * {@code [nSrc, batch, seq, dModel]}. Numbering srcs in layer order makes the inputs of any dest
 * a contiguous range: the prefix {@code [0, nIn)} in a factorized graph and
 * {@code [minSrcIdx, minSrcIdx + nIn)} in an unfactorized one. A dest's patch mask
 * {@code [seq?][head?][nIn]} therefore multiplies a plain slice of that tensor, with no gather.
 *
 * <h2>Orders</h2>
 * Dest modules have a canonical order (by layer, then q, k, v, attn_in, mlp_in, resid_mid,
 * resid_post) and {@link org.autocircuit.graph.Graph#edges()} is the concatenation of their
 * masks flattened row-major, so one flat {@code float[]} in edge order is a complete
 * PruneScores. AutoCircuit's own order comes from Python sets and is not reproducible.
 *
 * <p>This package uses no JavaCPP or libtorch classes; tensors live in {@code patching}.
 */
package org.autocircuit.graph;
