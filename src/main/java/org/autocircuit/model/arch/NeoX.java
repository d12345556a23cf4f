package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;
import org.bytedeco.pytorch.Tensor;

/**
 * {@code GPTNeoXForCausalLM} (Pythia): LayerNorm, parallel attention and MLP ({@code use_parallel_residual}), partial
 * rotary ({@code partial_rotary_factor} / {@code rotary_pct} of each head), every bias, an untied {@code embed_out}.
 * {@code query_key_value} packs Q, K and V per head: output row {@code (head, q|k|v, dHead)}.
 */
public final class NeoX implements Architecture {

    @Override
    public List<String> names() {
        return List.of("GPTNeoXForCausalLM");
    }

    @Override
    public String modelType() {
        return "gpt_neox";
    }

    @Override
    public ModelConfig config(ConfigJson json, String name) {
        int d = json.integer("hidden_size");
        int heads = json.integer("num_attention_heads");
        int dHead = json.divide("hidden_size", d, "num_attention_heads", heads);
        boolean bias = json.bool("attention_bias", true);
        return new ModelConfig(name, json.integer("num_hidden_layers"), d, heads, heads, dHead,
            json.integer("intermediate_size"), json.integer("vocab_size"), json.integer("max_position_embeddings"),
            json.number("layer_norm_eps", 1e-5), ModelConfig.Norm.LAYER_NORM, json.actFn("hidden_act", "gelu"), false,
            json.bool("use_parallel_residual", true), false, json.bool("tie_word_embeddings", false),
            json.id("bos_token_id", 0), Rope.read(json, dHead, 10000.0), new ModelConfig.Biases(bias, bias, true));
    }

    @Override
    public TransformerWeights weights(ModelConfig cfg, WeightSource hf) throws IOException {
        int d = cfg.dModel(), h = cfg.nHeads(), dh = cfg.dHead(), m = cfg.dMlp();
        Tensor wE = Scoped.load(hf, "gpt_neox.embed_in.weight", cfg.dVocab(), d);
        List<TransformerWeights.Block> blocks = new ArrayList<>();
        for (int b = 0; b < cfg.nLayers(); b++) {
            String p = "gpt_neox.layers." + b + ".";
            Tensor[] w = Scoped.split(hf, p + "attention.query_key_value.weight", new long[] {3L * d, d}, qkv -> {
                Tensor r = qkv.reshape(h, 3, dh, d);                                    // [h, q|k|v, dh, d]
                Tensor[] out = new Tensor[3];
                for (int i = 0; i < 3; i++) out[i] = r.select(1, i).permute(0, 2, 1).contiguous();   // [h, d, dh]
                return out;
            });
            Tensor[] bias = new Tensor[3];
            if (cfg.biases().qkv()) {
                bias = Scoped.split(hf, p + "attention.query_key_value.bias", new long[] {3L * d}, qkv -> {
                    Tensor r = qkv.reshape(h, 3, dh);
                    Tensor[] out = new Tensor[3];
                    for (int i = 0; i < 3; i++) out[i] = r.select(1, i).contiguous();   // [h, dh]
                    return out;
                });
            }
            // dense: y = x W^T with W [d, h*dh]; W_O[h] = W[:, h]^T
            Tensor wO = Scoped.load(hf, p + "attention.dense.weight", new long[] {d, d},
                t -> t.reshape(d, h, dh).permute(1, 2, 0).contiguous());                // [h, dh, d]
            Tensor bO = cfg.biases().out() ? Scoped.load(hf, p + "attention.dense.bias", d) : null;
            blocks.add(new TransformerWeights.Block(
                Scoped.load(hf, p + "input_layernorm.weight", d), Scoped.load(hf, p + "input_layernorm.bias", d),
                w[0], bias[0], w[1], bias[1], w[2], bias[2], wO, bO,
                Scoped.load(hf, p + "post_attention_layernorm.weight", d),
                Scoped.load(hf, p + "post_attention_layernorm.bias", d),
                Scoped.load(hf, p + "mlp.dense_h_to_4h.weight", new long[] {m, d}, t -> t.t().contiguous()),
                Scoped.load(hf, p + "mlp.dense_h_to_4h.bias", m), null,
                Scoped.load(hf, p + "mlp.dense_4h_to_h.weight", new long[] {d, m}, t -> t.t().contiguous()),
                Scoped.load(hf, p + "mlp.dense_4h_to_h.bias", d)));
        }
        Tensor wU = cfg.tiedUnembed() ? wE.t()
            : Scoped.load(hf, "embed_out.weight", new long[] {cfg.dVocab(), d}, t -> t.t().contiguous());
        return new TransformerWeights(wE, null, blocks, Scoped.load(hf, "gpt_neox.final_layer_norm.weight", d),
            Scoped.load(hf, "gpt_neox.final_layer_norm.bias", d), wU, null);
    }
}
