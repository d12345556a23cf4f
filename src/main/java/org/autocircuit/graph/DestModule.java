package org.autocircuit.graph;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.OptionalInt;

/**
 * A module whose input is patched, with the dest nodes it hosts and the shape of its patch mask.
 *
 * <p>The mask layout is {@code [seqLen?][nodes.size() if headed][nIn]}: one row per
 * head for modules like {@code hook_q_input}, and one column per src it reads. The columns are
 * the global src indices {@code [inSrcStart, inSrcStart + nIn)}: a prefix of all srcs in a
 * factorized graph (every earlier layer), the previous layer's srcs in an unfactorized graph.
 *
 * <p>Immutable. A final class rather than a record because it exposes {@link #maskShape()} as an
 * array, which a record could not return defensively.
 */
public final class DestModule {

    private final String moduleName;
    private final int layer;
    private final List<DestNode> nodes;
    private final boolean headed;
    private final int inSrcStart;
    private final int nIn;
    private final OptionalInt seqLen;

    /**
     * Built only by {@link Graph}, which has already checked that the nodes agree on module,
     * layer and minSrcIdx, and that head rows are in order.
     */
    DestModule(String moduleName, int layer, List<DestNode> nodes, boolean headed, int inSrcStart, int nIn,
               OptionalInt seqLen) {
        this.moduleName = Objects.requireNonNull(moduleName, "moduleName");
        this.layer = layer;
        this.nodes = List.copyOf(nodes);
        this.headed = headed;
        this.inSrcStart = inSrcStart;
        this.nIn = nIn;
        this.seqLen = Objects.requireNonNull(seqLen, "seqLen");
        if (this.nodes.isEmpty()) {
            throw new IllegalArgumentException("a dest module needs at least one node: " + moduleName);
        }
        if (!headed && this.nodes.size() != 1) {
            throw new IllegalArgumentException("an unheaded dest module hosts exactly one node, got "
                    + this.nodes.size() + " for " + moduleName);
        }
        if (nIn <= 0) {
            throw new IllegalArgumentException("nIn must be positive, got " + nIn + " for " + moduleName);
        }
    }

    /** TransformerLens hook name; the key of this module's prune scores. */
    public String moduleName() {
        return moduleName;
    }

    /** Graph layer shared by all its dest nodes. */
    public int layer() {
        return layer;
    }

    /** Its dest nodes in head order (row {@code i} of the mask is {@code nodes().get(i)}). */
    public List<DestNode> nodes() {
        return nodes;
    }

    /** True when the mask has a head dimension (one dest node per head). */
    public boolean headed() {
        return headed;
    }

    /** First global src index this module reads (= its nodes' minSrcIdx; 0 in factorized graphs). */
    public int inSrcStart() {
        return inSrcStart;
    }

    /** Number of srcs this module reads: the size of the mask's last dimension. */
    public int nIn() {
        return nIn;
    }

    /** The token dimension of the mask, present in token-level graphs. */
    public OptionalInt seqLen() {
        return seqLen;
    }

    /** Number of head rows in the mask (1 for an unheaded module). */
    int rows() {
        return nodes.size();
    }

    /** Mask entries per token position: {@code rows * nIn}. */
    int perSeq() {
        return rows() * nIn;
    }

    /** {@code [seqLen?] + [nodes.size() if headed] + [nIn]}; a fresh array on each call. */
    public long[] maskShape() {
        int n = 1 + (seqLen.isPresent() ? 1 : 0) + (headed ? 1 : 0);
        long[] shape = new long[n];
        int i = 0;
        if (seqLen.isPresent()) {
            shape[i++] = seqLen.getAsInt();
        }
        if (headed) {
            shape[i++] = nodes.size();
        }
        shape[i] = nIn;
        return shape;
    }

    /** Number of mask entries, which is also the number of edges into this module. */
    public int maskNumel() {
        return seqLen.orElse(1) * perSeq();
    }

    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        return o instanceof DestModule m
                && layer == m.layer && headed == m.headed && inSrcStart == m.inSrcStart && nIn == m.nIn
                && moduleName.equals(m.moduleName) && nodes.equals(m.nodes) && seqLen.equals(m.seqLen);
    }

    @Override
    public int hashCode() {
        return Objects.hash(moduleName, layer, nodes, headed, inSrcStart, nIn, seqLen);
    }

    @Override
    public String toString() {
        return "DestModule[" + moduleName + ", layer=" + layer + ", mask=" + Arrays.toString(maskShape())
                + ", inSrcs=[" + inSrcStart + ", " + (inSrcStart + nIn) + ")]";
    }
}
