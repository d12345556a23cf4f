package org.autocircuit.model.arch;

/**
 * {@code MistralForCausalLM}: Llama's layout and tensor names, with grouped-query attention. Its sliding-window
 * attention ({@code sliding_window}, 4,096 tokens in Mistral-7B) only changes prompts longer than the window, which
 * circuit-discovery prompts never are; {@link org.autocircuit.model.HookedTransformer} refuses longer ones through
 * {@code nCtx}, which this adapter caps at the window.
 */
public final class Mistral extends Llama {

    public Mistral() {
        super("MistralForCausalLM", "mistral");
    }

    @Override
    public org.autocircuit.model.ModelConfig config(ConfigJson json, String archName) {
        org.autocircuit.model.ModelConfig cfg = super.config(json, archName);
        int window = json.integer("sliding_window", 0);
        if (window > 0 && window < cfg.nCtx()) {
            return new org.autocircuit.model.ModelConfig(cfg.architecture(), cfg.nLayers(), cfg.dModel(), cfg.nHeads(),
                cfg.nKvHeads(), cfg.dHead(), cfg.dMlp(), cfg.dVocab(), window, cfg.lnEps(), cfg.norm(), cfg.actFn(),
                cfg.attnOnly(), cfg.parallelAttnMlp(), cfg.gatedMlp(), cfg.tiedUnembed(), cfg.bosTokenId(),
                cfg.positions(), cfg.biases());
        }
        return cfg;
    }
}
