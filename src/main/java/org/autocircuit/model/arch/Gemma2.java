package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;

/**
 * {@code Gemma2ForCausalLM}: Llama's tensor names and grouped-query attention, plus
 * <ul>
 *   <li>RMSNorm gains stored as {@code weight} and applied as {@code 1 + weight} (converted here, in float32 as
 *       Hugging Face computes them, so the model sees ordinary gains);</li>
 *   <li>a norm after attention ({@code post_attention_layernorm}) and after the MLP
 *       ({@code post_feedforward_layernorm}); the norm before the MLP is {@code pre_feedforward_layernorm};</li>
 *   <li>token embeddings times {@code sqrt(hidden_size)}, scores divided by {@code sqrt(query_pre_attn_scalar)};</li>
 *   <li>attention scores and final logits soft-capped ({@code attn_logit_softcapping},
 *       {@code final_logit_softcapping}): {@code cap · tanh(x / cap)};</li>
 *   <li>a sliding window in alternate blocks ({@code layer_types}, or without it every even block as Gemma-2 was
 *       released), a gated MLP with {@code gelu_pytorch_tanh}, and a tied unembedding.</li>
 * </ul>
 * The post-attention norm is applied per head (see {@code docs/models/gemma2.md}): the heads' outputs after it are
 * the graph's sources and sum exactly to the attention output.
 */
public final class Gemma2 implements Architecture {

    @Override
    public List<String> names() {
        return List.of("Gemma2ForCausalLM");
    }

    @Override
    public String modelType() {
        return "gemma2";
    }

    @Override
    public ModelConfig config(ConfigJson json, String archName) {
        int d = json.integer("hidden_size");
        int heads = json.integer("num_attention_heads");
        int kvHeads = Llama.kvHeads(json, heads);
        int layers = json.integer("num_hidden_layers");
        int dHead = Llama.dHead(json, d, heads);
        if (json.bool("attention_bias", false)) {
            throw json.error("attention_bias", "is true; Gemma-2 checkpoints have no attention biases and this adapter "
                + "reads none");
        }
        // transformers 5 writes hidden_activation; older configs hidden_act
        String act = json.has("hidden_activation") ? "hidden_activation" : "hidden_act";
        int window = Llama.slidingWindow(json);
        List<Boolean> sliding = new ArrayList<>();
        if (json.root().has("layer_types") && !json.root().get("layer_types").isNull()) {
            var types = json.root().get("layer_types");
            if (!types.isArray() || types.size() != layers) {
                throw json.error("layer_types", "must list one type per layer (" + layers + "), got " + types);
            }
            for (int i = 0; i < layers; i++) {
                String t = types.get(i).asText();
                if (!t.equals("sliding_attention") && !t.equals("full_attention")) {
                    throw json.error("layer_types", "entry " + i + " is '" + t
                        + "'; expected sliding_attention or full_attention");
                }
                sliding.add(t.equals("sliding_attention"));
            }
        } else {
            for (int i = 0; i < layers; i++) sliding.add(i % 2 == 0);
        }
        if (window == 0) sliding = List.of();
        double queryScale = json.number("query_pre_attn_scalar", dHead);
        if (!(queryScale > 0)) throw json.error("query_pre_attn_scalar", "must be positive, got " + queryScale);
        ModelConfig.Extras extras = new ModelConfig.Extras(window, sliding,
            positiveOrZero(json, "attn_logit_softcapping"), positiveOrZero(json, "final_logit_softcapping"),
            queryScale, true, true);
        return new ModelConfig(archName, layers, d, heads, kvHeads, dHead, json.integer("intermediate_size"),
            json.integer("vocab_size"), json.integer("max_position_embeddings"), json.number("rms_norm_eps", 1e-6),
            ModelConfig.Norm.RMS_NORM, json.actFn(act, "gelu_pytorch_tanh"), false, false, true,
            json.bool("tie_word_embeddings", true), json.id("bos_token_id", 2), Rope.read(json, dHead, 10000.0),
            ModelConfig.Biases.NONE, extras);
    }

    private static double positiveOrZero(ConfigJson json, String field) {
        double v = json.number(field, 0);
        if (v < 0) throw json.error(field, "must be positive or null, got " + v);
        return v;
    }

    @Override
    public TransformerWeights weights(ModelConfig cfg, WeightSource hf) throws IOException {
        int d = cfg.dModel(), m = cfg.dMlp();
        Tensor wE = Scoped.load(hf, "model.embed_tokens.weight", cfg.dVocab(), d);
        List<TransformerWeights.Block> blocks = new ArrayList<>();
        for (int b = 0; b < cfg.nLayers(); b++) {
            String p = "model.layers." + b + ".";
            Tensor ln1 = gain(hf, p + "input_layernorm.weight", d);
            Llama.Attention at = Llama.attention(hf, cfg, p + "self_attn.");   // no biases (Biases.NONE)
            blocks.add(new TransformerWeights.Block(
                ln1, null, at.wQ(), at.bQ(), at.wK(), at.bK(), at.wV(), at.bV(), at.wO(), at.bO(),
                gain(hf, p + "pre_feedforward_layernorm.weight", d), null,
                Llama.transposed(hf, p + "mlp.up_proj.weight", m, d), null,
                Llama.transposed(hf, p + "mlp.gate_proj.weight", m, d),
                Llama.transposed(hf, p + "mlp.down_proj.weight", d, m), null,
                gain(hf, p + "post_attention_layernorm.weight", d),
                gain(hf, p + "post_feedforward_layernorm.weight", d)));
        }
        Tensor wU = cfg.tiedUnembed() ? wE.t() : Llama.transposed(hf, "lm_head.weight", cfg.dVocab(), d);
        return new TransformerWeights(wE, null, blocks, gain(hf, "model.norm.weight", d), null, wU, null);
    }

    /** A Gemma RMSNorm weight as the gain it applies: {@code 1 + weight}, in float32. */
    private static Tensor gain(WeightSource hf, String name, int d) throws IOException {
        // in float32 whatever the stored dtype (a bf16 checkpoint read for a bf16 model), rounded once when kept
        return Scoped.load(hf, name, new long[] {d},
            t -> t.to(org.bytedeco.pytorch.global.torch.ScalarType.Float).add(new Scalar(1.0)));
    }
}
