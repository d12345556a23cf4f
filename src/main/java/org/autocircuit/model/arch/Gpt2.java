package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;
import org.bytedeco.pytorch.Tensor;

/**
 * {@code GPT2LMHeadModel}, and this project's own attention-only {@code AutoCircuitTransformer} (same names, written
 * by {@code train}): learned positions, LayerNorm, every bias, Conv1D weights stored {@code [in, out]}, Q/K/V packed
 * in {@code c_attn}.
 */
public final class Gpt2 implements Architecture {

    @Override
    public List<String> names() {
        return List.of("GPT2LMHeadModel", "AutoCircuitTransformer");
    }

    @Override
    public String modelType() {
        return "gpt2";
    }

    @Override
    public ModelConfig config(ConfigJson json, String name) {
        int nEmbd = json.integer("n_embd");
        int nHead = json.integer("n_head");
        int dHead = json.divide("n_embd", nEmbd, "n_head", nHead);
        boolean attnOnly = json.bool("attn_only", false);
        int nInner = json.integer("n_inner", 4 * nEmbd);
        return new ModelConfig(name, json.integer("n_layer"), nEmbd, nHead, dHead, attnOnly ? 0 : nInner,
            json.integer("vocab_size"), json.integer("n_positions"), json.number("layer_norm_epsilon", 1e-5),
            json.actFn("activation_function", "gelu_new"), attnOnly, false, json.bool("tie_word_embeddings", true),
            json.id("bos_token_id", 50256));
    }

    @Override
    public TransformerWeights weights(ModelConfig cfg, WeightSource hf) throws IOException {
        int d = cfg.dModel(), h = cfg.nHeads(), dh = cfg.dHead(), m = cfg.dMlp();
        Tensor wE = Scoped.load(hf, "transformer.wte.weight", cfg.dVocab(), d);
        Tensor wPos = Scoped.load(hf, "transformer.wpe.weight", cfg.nCtx(), d);
        List<TransformerWeights.Block> blocks = new ArrayList<>();
        for (int b = 0; b < cfg.nLayers(); b++) {
            String p = "transformer.h." + b + ".";
            Tensor ln1W = Scoped.load(hf, p + "ln_1.weight", d);
            Tensor ln1B = Scoped.load(hf, p + "ln_1.bias", d);
            // Conv1D: y = x @ W with W [in, out]; c_attn packs Q, K, V along out.
            Tensor[] w = Scoped.split(hf, p + "attn.c_attn.weight", new long[] {d, 3L * d}, cAttn -> {
                Tensor[] out = new Tensor[3];
                for (int i = 0; i < 3; i++) {
                    out[i] = cAttn.narrow(1, (long) i * d, d).reshape(d, h, dh).permute(1, 0, 2).contiguous();  // [h, d, dh]
                }
                return out;
            });
            Tensor[] bias = Scoped.split(hf, p + "attn.c_attn.bias", new long[] {3L * d}, cAttn -> {
                Tensor[] out = new Tensor[3];
                for (int i = 0; i < 3; i++) out[i] = cAttn.narrow(0, (long) i * d, d).reshape(h, dh).contiguous();
                return out;
            });
            Tensor wO = Scoped.load(hf, p + "attn.c_proj.weight", new long[] {d, d}, t -> t.reshape(h, dh, d).contiguous());
            Tensor bO = Scoped.load(hf, p + "attn.c_proj.bias", d);
            Tensor ln2W = null, ln2B = null, wIn = null, bIn = null, wOut = null, bOut = null;
            if (!cfg.attnOnly()) {
                ln2W = Scoped.load(hf, p + "ln_2.weight", d);
                ln2B = Scoped.load(hf, p + "ln_2.bias", d);
                wIn = Scoped.load(hf, p + "mlp.c_fc.weight", d, m);
                bIn = Scoped.load(hf, p + "mlp.c_fc.bias", m);
                wOut = Scoped.load(hf, p + "mlp.c_proj.weight", m, d);
                bOut = Scoped.load(hf, p + "mlp.c_proj.bias", d);
            }
            blocks.add(new TransformerWeights.Block(ln1W, ln1B, w[0], bias[0], w[1], bias[1], w[2], bias[2], wO, bO,
                ln2W, ln2B, wIn, bIn, null, wOut, bOut));
        }
        Tensor lnFW = Scoped.load(hf, "transformer.ln_f.weight", d);
        Tensor lnFB = Scoped.load(hf, "transformer.ln_f.bias", d);
        Tensor wU = cfg.tiedUnembed() ? wE.t()
            : Scoped.load(hf, "lm_head.weight", new long[] {cfg.dVocab(), d}, t -> t.t().contiguous());
        // GPT-2 has no unembedding bias; TransformerLens weight processing (WeightProcessing.TL) adds one
        Tensor bU = hf.loadIfPresent("lm_head.bias", cfg.dVocab());
        return new TransformerWeights(wE, wPos, blocks, lnFW, lnFB, wU, bU);
    }
}
