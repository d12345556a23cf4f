package org.autocircuit.graph;

import java.util.OptionalInt;

/**
 * A (src, dest[, token position]) pair: the contribution of one src's output to one dest's input,
 * optionally at a single sequence position (token-level graphs built with {@code seqLen}).
 *
 * <p>Patching an edge replaces exactly that contribution with the ablation value, which is why
 * the unit of a circuit is an edge rather than a node.
 *
 * @param src    the writer
 * @param dest   the reader
 * @param seqIdx token position, present only in graphs built with a sequence length
 */
public record Edge(SrcNode src, DestNode dest, OptionalInt seqIdx) {

    public Edge {
        if (src == null) {
            throw new IllegalArgumentException("src must not be null");
        }
        if (dest == null) {
            throw new IllegalArgumentException("dest must not be null");
        }
        if (seqIdx == null) {
            throw new IllegalArgumentException("seqIdx must be OptionalInt.empty() rather than null for edge "
                    + src.name() + "->" + dest.name());
        }
        if (seqIdx.isPresent() && seqIdx.getAsInt() < 0) {
            throw new IllegalArgumentException("seqIdx must be >= 0, got " + seqIdx.getAsInt() + " for edge "
                    + src.name() + "->" + dest.name());
        }
        if (src.srcIdx() < dest.minSrcIdx()) {
            throw new IllegalArgumentException("src " + src.name() + " (srcIdx " + src.srcIdx()
                    + ") precedes dest " + dest.name() + " minSrcIdx " + dest.minSrcIdx());
        }
    }

    /** An edge with no token position (component graph). */
    public Edge(SrcNode src, DestNode dest) {
        this(src, dest, OptionalInt.empty());
    }

    /**
     * {@code "{src.name}->{dest.name}"}. Derived, never stored, and independent of the token
     * position, so a name picks out the same edge at every position.
     */
    public String name() {
        return src.name() + "->" + dest.name();
    }

    /**
     * Index of this edge in the dest module's patch mask (layout {@code [seq?][destHead?][src]}):
     * {@code [seqIdx?] + [dest.headIdx?] + [src.srcIdx - dest.minSrcIdx]}. A fresh array each call,
     * because a record must not leak mutable state.
     */
    public int[] patchIdx() {
        int n = 1 + (seqIdx.isPresent() ? 1 : 0) + (dest.headIdx().isPresent() ? 1 : 0);
        int[] idx = new int[n];
        int i = 0;
        if (seqIdx.isPresent()) {
            idx[i++] = seqIdx.getAsInt();
        }
        if (dest.headIdx().isPresent()) {
            idx[i++] = dest.headIdx().getAsInt();
        }
        idx[i] = src.srcIdx() - dest.minSrcIdx();
        return idx;
    }

    /** The edge name, followed by {@code @seqIdx} in token graphs. */
    @Override
    public String toString() {
        return seqIdx.isPresent() ? name() + "@" + seqIdx.getAsInt() : name();
    }
}
