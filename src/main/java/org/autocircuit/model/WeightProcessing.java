package org.autocircuit.model;

import java.io.IOException;
import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * How a model's weights are rewritten before the model is built, as TransformerLens's {@code process_weights} does.
 *
 * <ul>
 *   <li>{@link #NONE}: the checkpoint's weights as they are (TransformerLens {@code from_pretrained_no_processing}).
 *   <li>{@link #TL}: what AutoCircuit's {@code load_tl_model} gets from TransformerLens's defaults: {@code fold_ln},
 *       {@code center_writing_weights}, {@code center_unembed} and {@code fold_value_biases}, leaving every
 *       LayerNorm without gain and bias ({@code normalization_type="LNPre"}).
 * </ul>
 *
 * <p>The processed model computes the same function up to float rounding and one constant per position added to
 * the logits (so the log-probabilities, KL divergences and logit differences agree), but three things a user sees
 * change: each head's output ({@code hook_result}) no longer carries the value bias, which moves into the
 * attention output bias, so ZERO ablation of a head removes less; the logits themselves (Answer Logit) are shifted
 * by {@code center_unembed}; and the residual stream is centred. That is why AutoCircuit's results on a
 * TransformerLens-loaded model differ from the unprocessed one under ZERO ablation.
 *
 * <p>The transform works on the Hugging Face GPT-2 tensor names that {@link HookedTransformer} reads
 * ({@code transformer.h.N.attn.c_attn.weight}, ...; Conv1D layout {@code y = x @ W}), and serves the result under
 * the same names, with an untied {@code lm_head.weight} and an {@code lm_head.bias}. Steps, in TransformerLens's
 * order:
 * <ol>
 *   <li>fold_ln: each LayerNorm's gain multiplies the rows of the weights that read from it (Q/K/V, MLP input,
 *       unembedding), its bias becomes part of their biases, and those weights are centred over their input
 *       (d_model) dimension, since LNPre's input is centred anyway;
 *   <li>center_writing_weights: the embeddings, attention output and MLP output weights and biases have their mean
 *       over d_model removed (whatever writes to the residual stream);
 *   <li>center_unembed: the unembedding and its bias have their mean over the vocabulary removed;
 *   <li>fold_value_biases: the value bias, which reaches the output through the attention pattern (rows summing to
 *       1), becomes {@code b_V · W_O} added to the attention output bias, and the value bias is set to 0.
 * </ol>
 */
public enum WeightProcessing {
    NONE("none"),
    TL("tl");

    private final String cliName;

    WeightProcessing(String cliName) {
        this.cliName = cliName;
    }

    /** The name used on the command line and in docs: {@code none} or {@code tl}. */
    public String cliName() {
        return cliName;
    }

    /** Parses {@code none} or {@code tl} (case-insensitive), naming the valid choices otherwise. */
    public static WeightProcessing parse(String name) {
        String n = name == null ? "" : name.trim().toLowerCase(Locale.ROOT);
        for (WeightProcessing p : values()) {
            if (p.cliName.equals(n)) return p;
        }
        throw new IllegalArgumentException("weight processing '" + name + "' is not known; expected one of none, tl");
    }

    /** The configuration of the processed model: TL unties the unembedding (it is centred differently from W_E). */
    public ModelConfig config(ModelConfig cfg) {
        if (this == NONE || !cfg.tiedUnembed()) return cfg;
        return new ModelConfig(cfg.architecture(), cfg.nLayers(), cfg.dModel(), cfg.nHeads(), cfg.dHead(), cfg.dMlp(),
            cfg.dVocab(), cfg.nCtx(), cfg.lnEps(), cfg.actFn(), cfg.attnOnly(), cfg.parallelAttnMlp(), false,
            cfg.bosTokenId());
    }

    /**
     * The weights of {@code raw} (Hugging Face GPT-2 names, model {@code cfg}) after this processing. For
     * {@link #TL} every weight is read from {@code raw} and processed on the first request, in the caller's
     * current {@link org.bytedeco.javacpp.PointerScope} (the model's constructor keeps what it adopts).
     */
    public WeightSource apply(ModelConfig cfg, WeightSource raw) {
        if (this == NONE) return raw;
        if (cfg.parallelAttnMlp()) {
            throw new IllegalArgumentException("weight processing 'tl' is implemented for sequential GPT-2 blocks; "
                + cfg.architecture() + " here has parallel attention and MLP");
        }
        return new WeightSource() {
            private Map<String, Tensor> processed;

            @Override
            public Tensor load(String name, long... shape) throws IOException {
                Tensor t = loadIfPresent(name, shape);
                if (t == null) throw new IllegalArgumentException("weight processing 'tl' produced no tensor " + name);
                return t;
            }

            @Override
            public Tensor loadIfPresent(String name, long... shape) throws IOException {
                if (processed == null) processed = processTl(cfg, raw);
                Tensor t = processed.get(name);
                if (t != null && !java.util.Arrays.equals(t.shape(), shape)) {
                    throw new IllegalArgumentException("processed tensor " + name + " has shape "
                        + java.util.Arrays.toString(t.shape()) + ", expected " + java.util.Arrays.toString(shape));
                }
                return t;
            }
        };
    }

    private static Map<String, Tensor> processTl(ModelConfig cfg, WeightSource raw) throws IOException {
        int d = cfg.dModel(), m = cfg.dMlp();
        long v = cfg.dVocab();
        Map<String, Tensor> out = new HashMap<>();
        Tensor wte = raw.load("transformer.wte.weight", v, d);
        Tensor wpe = raw.load("transformer.wpe.weight", cfg.nCtx(), d);
        for (int b = 0; b < cfg.nLayers(); b++) {
            String p = "transformer.h." + b + ".";
            Tensor ln1W = raw.load(p + "ln_1.weight", d), ln1B = raw.load(p + "ln_1.bias", d);
            // 1. fold ln_1 into Q, K and V (c_attn packs them along its output dimension; all three read ln_1)
            Tensor[] attn = foldLayerNorm(raw.load(p + "attn.c_attn.weight", d, 3L * d),
                raw.load(p + "attn.c_attn.bias", 3L * d), ln1W, ln1B);
            // 2. centre the attention output (writes to the residual)
            Tensor wO = centreRows(raw.load(p + "attn.c_proj.weight", d, d));
            Tensor bO = centre(raw.load(p + "attn.c_proj.bias", d));
            // 4. fold the value bias (after fold_ln, which changed it) into the output bias through the centred W_O
            Tensor bV = attn[1].narrow(0, 2L * d, d);
            bO = bO.add(torch.matmul(bV.unsqueeze(0), wO).squeeze(0));
            Tensor attnB = torch.cat(new TensorVector(attn[1].narrow(0, 0, 2L * d), torch.zeros(d)), 0);
            out.put(p + "attn.c_attn.weight", attn[0]);
            out.put(p + "attn.c_attn.bias", attnB);
            out.put(p + "attn.c_proj.weight", wO);
            out.put(p + "attn.c_proj.bias", bO);
            out.put(p + "ln_1.weight", torch.ones(d));
            out.put(p + "ln_1.bias", torch.zeros(d));
            if (!cfg.attnOnly()) {
                Tensor[] mlpIn = foldLayerNorm(raw.load(p + "mlp.c_fc.weight", d, m), raw.load(p + "mlp.c_fc.bias", m),
                    raw.load(p + "ln_2.weight", d), raw.load(p + "ln_2.bias", d));
                out.put(p + "mlp.c_fc.weight", mlpIn[0]);
                out.put(p + "mlp.c_fc.bias", mlpIn[1]);
                out.put(p + "mlp.c_proj.weight", centreRows(raw.load(p + "mlp.c_proj.weight", m, d)));
                out.put(p + "mlp.c_proj.bias", centre(raw.load(p + "mlp.c_proj.bias", d)));
                out.put(p + "ln_2.weight", torch.ones(d));
                out.put(p + "ln_2.bias", torch.zeros(d));
            }
        }
        // 1. fold ln_f into the unembedding W_U [d, vocab] (zero bias before), from the embedding as it was loaded
        Tensor wU = cfg.tiedUnembed() ? wte.t() : raw.load("lm_head.weight", v, d).t();
        Tensor[] unembed = foldLayerNorm(wU, torch.zeros(v), raw.load("transformer.ln_f.weight", d),
            raw.load("transformer.ln_f.bias", d));
        // 3. centre the unembedding over the vocabulary
        Tensor wUc = unembed[0].sub(meanKeepDim(unembed[0], 1));
        out.put("lm_head.weight", wUc.t().contiguous());             // [vocab, d], as Hugging Face stores it
        out.put("lm_head.bias", centre(unembed[1]));
        out.put("transformer.ln_f.weight", torch.ones(d));
        out.put("transformer.ln_f.bias", torch.zeros(d));
        // 2. centre the embeddings (they write to the residual)
        out.put("transformer.wte.weight", centreRows(wte));
        out.put("transformer.wpe.weight", centreRows(wpe));
        return out;
    }

    /**
     * fold_ln for weights {@code w [d_in, out]} reading a LayerNorm with gain {@code g} and bias {@code beta}:
     * {@code b' = b + beta · w}, {@code w' = g ⊙ w} per row, then each column centred over d_in.
     */
    private static Tensor[] foldLayerNorm(Tensor w, Tensor b, Tensor g, Tensor beta) {
        Tensor bias = b.add(torch.matmul(beta.unsqueeze(0), w).squeeze(0));
        Tensor scaled = w.mul(g.unsqueeze(1));
        Tensor centred = scaled.sub(meanKeepDim(scaled, 0)).contiguous();
        return new Tensor[] {centred, bias.contiguous()};
    }

    /** Each row minus its mean over the last (d_model) dimension. */
    private static Tensor centreRows(Tensor w) {
        return w.sub(meanKeepDim(w, w.dim() - 1)).contiguous();
    }

    private static Tensor meanKeepDim(Tensor t, long dim) {
        return t.mean(dim).unsqueeze(dim);
    }

    private static Tensor centre(Tensor b) {
        return b.sub(b.mean()).contiguous();
    }
}
