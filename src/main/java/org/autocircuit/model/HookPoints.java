package org.autocircuit.model;

import org.bytedeco.pytorch.Tensor;

/**
 * Callbacks at the named hook points of a forward pass, TransformerLens style: the model hands each
 * activation to {@link #apply} and continues with whatever comes back.
 *
 * <p>Hook names are TransformerLens's strings ({@code "blocks.3.hook_q_input"},
 * {@code "blocks.3.attn.hook_result"}, ...) because prune scores and official circuits are keyed by them.
 * The patching engine implements this interface: at a destination it returns the patched input, at a
 * source it records the output.
 */
@FunctionalInterface
public interface HookPoints {

    /**
     * @param hookName the TransformerLens hook name
     * @param value    the activation. For per-head input hooks ({@code hook_q_input}, {@code hook_k_input},
     *                 {@code hook_v_input}, {@code hook_attn_in}) the model passes the shared residual
     *                 {@code [batch, seq, dModel]}; the hook may return it unchanged or a per-head
     *                 {@code [batch, seq, nHeads, dModel]} tensor. {@code hook_result} is
     *                 {@code [batch, seq, nHeads, dModel]}; every other hook {@code [batch, seq, dModel]}.
     * @return the value the forward pass continues with
     */
    Tensor apply(String hookName, Tensor value);

    /**
     * The per-head input hooks {@code hook_q_input}, {@code hook_k_input} and {@code hook_v_input}, whose result
     * may also take the compact {@link HeadInputs} form. By default, {@link #apply} wrapped.
     *
     * @param value the shared residual {@code [batch, seq, dModel]}
     */
    default HeadInputs headInputs(String hookName, Tensor value) {
        return HeadInputs.of(apply(hookName, value));
    }

    /**
     * Called with the Q, K or V projection {@code [batch, seq, nHeads, dHead]} (before any rotary embedding) that the
     * model computed from the shared input {@link #headInputs} returned for {@code hookName} (no head with its own
     * input). Hooks that need each head's input gradient keep it and its gradient ({@code retain_grad}); the model's
     * {@link HookedModel#headInputGradients} turns that gradient into the heads' input gradients after the backward
     * pass. By default nothing.
     */
    default void sharedHeadProjection(String hookName, Tensor projection) {}

    /**
     * Whether these hooks look at (or change) the value of hook {@code hookName}. The model may skip forming a value no
     * hook observes when it has a faster way to the same result (the attention pattern). By default, every one.
     */
    default boolean observes(String hookName) {
        return true;
    }

    /** Hooks that change nothing. */
    HookPoints NONE = new HookPoints() {
        @Override
        public Tensor apply(String hookName, Tensor value) {
            return value;
        }

        @Override
        public boolean observes(String hookName) {
            return false;
        }
    };
}
