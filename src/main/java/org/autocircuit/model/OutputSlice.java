package org.autocircuit.model;

import org.bytedeco.pytorch.Tensor;

/**
 * Which positions of the output a patchable model returns (AutoCircuit's {@code OutputSlice}).
 * A transformer applies it to the final residual stream before unembedding, which gives the same
 * logits as slicing afterwards (unembedding is per position) at a fraction of the cost.
 */
public enum OutputSlice {
    /** Every position: {@code [batch, seq, ...]}. */
    ALL,
    /** The last position only: {@code [batch, ...]}. */
    LAST_SEQ,
    /** Every position but the first (BOS): {@code [batch, seq-1, ...]}. */
    NOT_FIRST_SEQ;

    /** Applies the slice along dimension 1 of {@code x} ({@code [batch, seq, ...]}). */
    public Tensor apply(Tensor x) {
        return switch (this) {
            case ALL -> x;
            case LAST_SEQ -> x.select(1, x.size(1) - 1);
            case NOT_FIRST_SEQ -> x.narrow(1, 1, x.size(1) - 1);
        };
    }

    /** Parses AutoCircuit's spelling: null / "last_seq" / "not_first_seq". */
    public static OutputSlice fromPython(String s) {
        if (s == null || s.isEmpty() || s.equalsIgnoreCase("none") || s.equalsIgnoreCase("all")) return ALL;
        return switch (s.toLowerCase(java.util.Locale.ROOT)) {
            case "last_seq" -> LAST_SEQ;
            case "not_first_seq" -> NOT_FIRST_SEQ;
            default -> throw new IllegalArgumentException(
                "slice_output must be one of none, last_seq, not_first_seq; got '" + s + "'");
        };
    }
}
