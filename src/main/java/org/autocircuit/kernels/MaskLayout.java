package org.autocircuit.kernels;

/**
 * Which optional leading dimensions a destination module's mask has: {@code [batch?][seq?][head?][nIn]}.
 *
 * @param batch a per-example mask (hard-concrete samples, or {@code set_mask_batch_size})
 * @param seq   one mask row per token position (token-position graphs)
 * @param head  one mask row per destination head (Q/K/V inputs, combined attention input)
 */
public record MaskLayout(boolean batch, boolean seq, boolean head) {

    /** The einsum subscripts of the mask, e.g. {@code "bshi"}. */
    public String maskSubscripts() {
        return (batch ? "b" : "") + (seq ? "s" : "") + (head ? "h" : "") + "i";
    }

    /** The einsum subscripts of the output, {@code "bshd"} or {@code "bsd"}. */
    public String outputSubscripts() {
        return head ? "bshd" : "bsd";
    }

    /** The rank a mask with this layout must have. */
    public int maskRank() {
        return 1 + (batch ? 1 : 0) + (seq ? 1 : 0) + (head ? 1 : 0);
    }

    public MaskLayout withBatch(boolean withBatch) {
        return new MaskLayout(withBatch, seq, head);
    }
}
