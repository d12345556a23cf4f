package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;
import org.bytedeco.pytorch.Tensor;

/**
 * {@code LlamaForCausalLM}: RMSNorm, rotary positions (full, half-split, {@code rope_theta}, optional {@code linear}
 * or {@code llama3} scaling), grouped-query attention ({@code num_key_value_heads}), a gated SiLU MLP
 * ({@code gate_proj}, {@code up_proj}, {@code down_proj}), biases only where {@code attention_bias} / {@code mlp_bias}
 * say, and {@code nn.Linear} weights stored {@code [out, in]}. Mistral and Qwen2 use the same tensor names and differ
 * only in defaults ({@link Mistral}, {@link Qwen2}).
 */
public class Llama implements Architecture {
    private final String name;
    private final String modelType;

    public Llama() {
        this("LlamaForCausalLM", "llama");
    }

    protected Llama(String name, String modelType) {
        this.name = name;
        this.modelType = modelType;
    }

    @Override
    public final List<String> names() {
        return List.of(name);
    }

    @Override
    public final String modelType() {
        return modelType;
    }

    /** Biases of Q/K/V, O and the MLP when config.json does not say. */
    protected ModelConfig.Biases biases(ConfigJson json) {
        boolean attn = json.bool("attention_bias", false);
        return new ModelConfig.Biases(attn, attn, json.bool("mlp_bias", false));
    }

    /** {@code tie_word_embeddings} when config.json does not say (transformers' default for the family). */
    protected boolean tiedByDefault() {
        return false;
    }

    @Override
    public ModelConfig config(ConfigJson json, String archName) {
        int d = json.integer("hidden_size");
        int heads = json.integer("num_attention_heads");
        int kvHeads = kvHeads(json, heads);
        int dHead = dHead(json, d, heads);
        return new ModelConfig(archName, json.integer("num_hidden_layers"), d, heads, kvHeads, dHead,
            json.integer("intermediate_size"), json.integer("vocab_size"), json.integer("max_position_embeddings"),
            json.number("rms_norm_eps", 1e-6), ModelConfig.Norm.RMS_NORM, json.actFn("hidden_act", "silu"), false,
            false, true, json.bool("tie_word_embeddings", tiedByDefault()), json.id("bos_token_id", 1),
            Rope.read(json, dHead, 10000.0), biases(json));
    }

    /** {@code num_key_value_heads} (default: one per query head), which must divide the query heads. */
    static int kvHeads(ConfigJson json, int heads) {
        int kvHeads = json.integer("num_key_value_heads", heads);
        if (heads % kvHeads != 0) {
            throw json.error("num_key_value_heads", "(" + kvHeads + ") must divide num_attention_heads (" + heads + ")");
        }
        return kvHeads;
    }

    /** {@code head_dim}, or {@code hidden_size / num_attention_heads} where config.json does not give it. */
    static int dHead(ConfigJson json, int d, int heads) {
        return json.has("head_dim") ? json.integer("head_dim")
            : json.divide("hidden_size", d, "num_attention_heads", heads);
    }

    /** {@code sliding_window}: 0 when absent or null (full causal attention). */
    static int slidingWindow(ConfigJson json) {
        int window = json.integer("sliding_window", 0);
        if (window < 0) throw json.error("sliding_window", "must be a positive integer or null, got " + window);
        return window;
    }

    @Override
    public TransformerWeights weights(ModelConfig cfg, WeightSource hf) throws IOException {
        int d = cfg.dModel(), m = cfg.dMlp();
        Tensor wE = Scoped.load(hf, "model.embed_tokens.weight", cfg.dVocab(), d);
        List<TransformerWeights.Block> blocks = new ArrayList<>();
        for (int b = 0; b < cfg.nLayers(); b++) {
            String p = "model.layers." + b + ".";
            Tensor ln1 = Scoped.load(hf, p + "input_layernorm.weight", d);
            Attention at = attention(hf, cfg, p + "self_attn.");
            blocks.add(new TransformerWeights.Block(
                ln1, null, at.wQ(), at.bQ(), at.wK(), at.bK(), at.wV(), at.bV(), at.wO(), at.bO(),
                Scoped.load(hf, p + "post_attention_layernorm.weight", d), null,
                transposed(hf, p + "mlp.up_proj.weight", m, d),
                cfg.biases().mlp() ? Scoped.load(hf, p + "mlp.up_proj.bias", m) : null,
                transposed(hf, p + "mlp.gate_proj.weight", m, d),
                transposed(hf, p + "mlp.down_proj.weight", d, m),
                cfg.biases().mlp() ? Scoped.load(hf, p + "mlp.down_proj.bias", d) : null));
        }
        Tensor wU = cfg.tiedUnembed() ? wE.t()
            : transposed(hf, "lm_head.weight", cfg.dVocab(), d);
        return new TransformerWeights(wE, null, blocks, Scoped.load(hf, "model.norm.weight", d), null, wU, null);
    }

    /** One block's attention weights in TransformerLens layout; absent biases are null. */
    record Attention(Tensor wQ, Tensor bQ, Tensor wK, Tensor bK, Tensor wV, Tensor bV, Tensor wO, Tensor bO) {}

    /**
     * The attention weights under {@code prefix} ({@code model.layers.N.self_attn.}): {@code q_proj}, {@code k_proj},
     * {@code v_proj} per head (K and V per key/value head), {@code o_proj}, and the biases {@code cfg.biases()} says.
     * Shared by the families with Llama's attention tensors (Mistral, Qwen2, Gemma-2).
     */
    static Attention attention(WeightSource hf, ModelConfig cfg, String prefix) throws IOException {
        int d = cfg.dModel(), h = cfg.nHeads(), kv = cfg.nKvHeads(), dh = cfg.dHead();
        boolean qkvBias = cfg.biases().qkv();
        return new Attention(
            heads(hf, prefix + "q_proj.weight", h, dh, d), qkvBias ? headBias(hf, prefix + "q_proj.bias", h, dh) : null,
            heads(hf, prefix + "k_proj.weight", kv, dh, d), qkvBias ? headBias(hf, prefix + "k_proj.bias", kv, dh) : null,
            heads(hf, prefix + "v_proj.weight", kv, dh, d), qkvBias ? headBias(hf, prefix + "v_proj.bias", kv, dh) : null,
            // o_proj: y = z W^T with W [d, h*dh]; W_O[h] = W[:, h]^T
            Scoped.load(hf, prefix + "o_proj.weight", new long[] {d, (long) h * dh},
                t -> t.reshape(d, h, dh).permute(1, 2, 0).contiguous()),                   // [h, dh, d]
            cfg.biases().out() ? Scoped.load(hf, prefix + "o_proj.bias", d) : null);
    }

    /** A projection {@code [n*dh, d]} ({@code y = x W^T}) as per-head {@code [n, d, dh]}. */
    static Tensor heads(WeightSource hf, String name, int n, int dh, int d) throws IOException {
        return Scoped.load(hf, name, new long[] {(long) n * dh, d}, t -> t.reshape(n, dh, d).permute(0, 2, 1).contiguous());
    }

    private static Tensor headBias(WeightSource hf, String name, int n, int dh) throws IOException {
        return Scoped.load(hf, name, new long[] {(long) n * dh}, t -> t.reshape(n, dh).contiguous());
    }

    /** An {@code nn.Linear} weight {@code [out, in]} as {@code [in, out]}. */
    static Tensor transposed(WeightSource hf, String name, int out, int in) throws IOException {
        return Scoped.load(hf, name, new long[] {out, in}, t -> t.t().contiguous());
    }
}
