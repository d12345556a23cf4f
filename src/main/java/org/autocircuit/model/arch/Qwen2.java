package org.autocircuit.model.arch;

import org.autocircuit.model.ModelConfig;

/**
 * {@code Qwen2ForCausalLM} (Qwen2, Qwen2.5): Llama's layout and tensor names, with biases on Q, K and V (none on the
 * output projection or the MLP) and, in the small models, a tied unembedding. Its {@code sliding_window} is off
 * ({@code use_sliding_window: false}) in every released config.
 */
public final class Qwen2 extends Llama {

    public Qwen2() {
        super("Qwen2ForCausalLM", "qwen2");
    }

    @Override
    protected ModelConfig.Biases biases(ConfigJson json) {
        return new ModelConfig.Biases(true, false, false);
    }

    @Override
    public ModelConfig config(ConfigJson json, String archName) {
        if (json.bool("use_sliding_window", false)) {
            throw json.error("use_sliding_window", "is true; sliding-window attention is not supported");
        }
        return super.config(json, archName);
    }
}
