package org.autocircuit.model;

import org.bytedeco.pytorch.Tensor;

/**
 * The inputs of one block's per-head Q, K or V projection, in the compact form patched passes produce: one input
 * {@code shared [batch, seq, dModel]} read by every head except those listed in {@code heads} (int64
 * {@code [p]}, increasing), whose own inputs are {@code own [batch, seq, p, dModel]}.
 *
 * <p>In a patched pass every head whose mask row equals the block's most common row reads the same input, often the
 * unpatched residual itself. Handing the model that input once lets it project all those heads with one large
 * matrix product, instead of writing, normalising and projecting a copy per head.
 *
 * @param shared the input of every head not in {@code heads}, or null when every head has its own
 * @param heads  the heads with their own input, or null when none or all do
 * @param own    their inputs ({@code [batch, seq, nHeads, dModel]} when every head has its own), or null
 * @param nHeads the destination's number of heads, which {@code heads} index: the query heads, or for the K and V
 *               inputs of a grouped-layout graph the key/value heads; 0 for a shared input alone
 */
public record HeadInputs(Tensor shared, Tensor heads, Tensor own, int nHeads) {

    public HeadInputs {
        if (shared == null && own == null) throw new IllegalArgumentException("HeadInputs needs shared or own inputs");
        if ((heads != null) != (shared != null && own != null)) {
            throw new IllegalArgumentException("HeadInputs: heads must be given exactly when both shared and own are");
        }
        if (heads == null && own != null) nHeads = (int) own.size(2);
        if (own != null && nHeads <= 0) throw new IllegalArgumentException("HeadInputs: nHeads must be given with own inputs");
    }

    /** A shared input for every head. */
    public static HeadInputs shared(Tensor shared) {
        return new HeadInputs(shared, null, null, 0);
    }

    /** What a plain hook returned: {@code [batch, seq, dModel]} for all heads, or {@code [batch, seq, nHeads, dModel]}. */
    public static HeadInputs of(Tensor value) {
        return value.dim() == 3 ? shared(value) : new HeadInputs(null, null, value, (int) value.size(2));
    }
}
