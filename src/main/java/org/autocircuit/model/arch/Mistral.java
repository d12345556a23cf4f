package org.autocircuit.model.arch;

import java.util.List;
import org.autocircuit.model.ModelConfig;

/**
 * {@code MistralForCausalLM}: Llama's layout and tensor names, with grouped-query attention and sliding-window
 * attention in every block when {@code sliding_window} is set (4,096 tokens in Mistral-7B v0.1; null, i.e. full
 * causal attention, from v0.2 on): a query attends to itself and the {@code sliding_window − 1} tokens before it.
 */
public final class Mistral extends Llama {

    public Mistral() {
        super("MistralForCausalLM", "mistral");
    }

    @Override
    public ModelConfig config(ConfigJson json, String archName) {
        ModelConfig cfg = super.config(json, archName);
        int window = slidingWindow(json);
        if (window == 0 || window >= cfg.nCtx()) return cfg;   // a window as long as the context changes nothing
        return cfg.withExtras(new ModelConfig.Extras(window, List.of(), 0, 0, 0, false, false));
    }
}
