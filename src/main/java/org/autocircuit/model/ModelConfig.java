package org.autocircuit.model;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Objects;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.model.arch.Architectures;

/**
 * The architecture of a transformer, in TransformerLens's terms ({@code HookedTransformerConfig}): the few choices
 * that decide which pieces {@link HookedTransformer} runs. One adapter per Hugging Face architecture
 * ({@link org.autocircuit.model.arch}) reads them from a {@code config.json}.
 *
 * @param architecture    the Hugging Face architecture name it was read from (e.g. {@code GPT2LMHeadModel})
 * @param nLayers         number of blocks
 * @param dModel          residual stream width
 * @param nHeads          query heads per block
 * @param nKvHeads        key/value heads per block (grouped-query attention when fewer than {@code nHeads}; each
 *                        key/value head serves {@code nHeads / nKvHeads} consecutive query heads)
 * @param dHead           width of one head
 * @param dMlp            hidden width of the MLP (0 for attention-only models)
 * @param dVocab          vocabulary size (rows of the embedding and columns of the unembedding)
 * @param nCtx            maximum context length
 * @param lnEps           epsilon of every norm
 * @param norm            LayerNorm (with bias) or RMSNorm (gain only)
 * @param actFn           MLP activation
 * @param attnOnly        no MLPs
 * @param parallelAttnMlp attention and MLP read the same residual (GPT-NeoX / Pythia)
 * @param gatedMlp        {@code act(x·W_gate) ⊙ (x·W_in)} before {@code W_out} (Llama's SwiGLU) instead of
 *                        {@code act(x·W_in + b_in)}
 * @param tiedUnembed     the unembedding is the transpose of the embedding
 * @param bosTokenId      the BOS token id
 * @param positions       learned absolute positions or rotary embeddings
 * @param biases          which projections carry a bias
 * @param extras          sliding-window attention and Gemma-2's additions ({@link Extras#NONE} elsewhere)
 */
public record ModelConfig(
        String architecture,
        int nLayers,
        int dModel,
        int nHeads,
        int nKvHeads,
        int dHead,
        int dMlp,
        int dVocab,
        int nCtx,
        double lnEps,
        Norm norm,
        ActFn actFn,
        boolean attnOnly,
        boolean parallelAttnMlp,
        boolean gatedMlp,
        boolean tiedUnembed,
        long bosTokenId,
        Positions positions,
        Biases biases,
        Extras extras) {

    /** The 19 choices every family has, without {@link Extras}. */
    public ModelConfig(String architecture, int nLayers, int dModel, int nHeads, int nKvHeads, int dHead, int dMlp,
                       int dVocab, int nCtx, double lnEps, Norm norm, ActFn actFn, boolean attnOnly,
                       boolean parallelAttnMlp, boolean gatedMlp, boolean tiedUnembed, long bosTokenId,
                       Positions positions, Biases biases) {
        this(architecture, nLayers, dModel, nHeads, nKvHeads, dHead, dMlp, dVocab, nCtx, lnEps, norm, actFn, attnOnly,
            parallelAttnMlp, gatedMlp, tiedUnembed, bosTokenId, positions, biases, Extras.NONE);
    }

    /**
     * What some families add to the plain transformer: sliding-window attention (Mistral, Gemma-2), and Gemma-2's
     * soft-capping, norms after attention and MLP, scaled embeddings and query scale.
     *
     * @param slidingWindow   0 for none; else a query attends to itself and the {@code slidingWindow − 1} keys before it
     * @param slidingLayers   which blocks use the window (Gemma-2 alternates); empty: every block
     * @param attnSoftcap     0 for none; else attention scores become {@code cap · tanh(scores / cap)} before the mask
     * @param finalSoftcap    0 for none; else logits become {@code cap · tanh(logits / cap)}
     * @param queryScale      0 for {@code dHead}; else scores are divided by {@code sqrt(queryScale)}
     *                        ({@code query_pre_attn_scalar})
     * @param postNorms       an RMSNorm on the attention output and on the MLP output before each joins the residual
     *                        stream (Gemma-2's {@code post_attention_layernorm} / {@code post_feedforward_layernorm});
     *                        applied per head with the scale of the summed heads, so the heads stay additive sources
     * @param embedScale      token embeddings are multiplied by {@code sqrt(dModel)} (rounded to the weights' dtype)
     */
    public record Extras(int slidingWindow, java.util.List<Boolean> slidingLayers, double attnSoftcap,
                         double finalSoftcap, double queryScale, boolean postNorms, boolean embedScale) {
        public static final Extras NONE = new Extras(0, java.util.List.of(), 0, 0, 0, false, false);

        public Extras {
            slidingLayers = java.util.List.copyOf(slidingLayers);
            if (slidingWindow < 0) throw new IllegalArgumentException("slidingWindow must be >= 0, got " + slidingWindow);
            if (attnSoftcap < 0 || finalSoftcap < 0 || queryScale < 0) {
                throw new IllegalArgumentException("soft caps and queryScale must be >= 0, got " + attnSoftcap + ", "
                    + finalSoftcap + ", " + queryScale);
            }
        }

        /** Whether block {@code layer} attends through the sliding window. */
        public boolean windowed(int layer) {
            return slidingWindow > 0 && (slidingLayers.isEmpty() || slidingLayers.get(layer));
        }
    }

    /** MLP activations. */
    public enum ActFn {
        /** GPT-2's tanh approximation of GELU ({@code gelu_new}). */
        GELU_NEW,
        /** exact GELU (erf). */
        GELU,
        RELU,
        /** {@code x·sigmoid(x)} (Llama, Qwen2, Mistral). */
        SILU;

        /**
         * Parses a Hugging Face activation name.
         *
         * @param field the config.json field it came from, for the error message
         */
        public static ActFn parse(String s, Path file, String field) {
            return switch (s) {
                case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_NEW;
                case "gelu" -> GELU;
                case "relu" -> RELU;
                case "silu", "swish" -> SILU;
                default -> throw new IllegalArgumentException(file + ": field '" + field + "' is '" + s
                    + "'; expected one of gelu_new, gelu_pytorch_tanh, gelu, relu, silu");
            };
        }
    }

    /** The normalisation before attention, before the MLP and before the unembedding. */
    public enum Norm {
        /** {@code (x − mean) / sqrt(var + eps) · w + b}. */
        LAYER_NORM,
        /** {@code x / sqrt(mean(x²) + eps) · w}, no centring and no bias. */
        RMS_NORM
    }

    /** How positions enter the model. */
    public sealed interface Positions permits Learned, Rotary {}

    /** A learned position embedding {@code W_pos [nCtx, dModel]} added to the token embedding (GPT-2). */
    public record Learned() implements Positions {}

    /**
     * Rotary embeddings applied to queries and keys (Su et al. 2021, "RoFormer"), in the half-split layout of
     * GPT-NeoX and Llama: dimension {@code i < rotaryDim/2} is paired with {@code i + rotaryDim/2}.
     *
     * @param rotaryDim the leading dimensions of each head that rotate ({@code dHead} for full rotary; Pythia rotates
     *                  a quarter); even
     * @param theta     the base of the frequencies ({@code rope_theta})
     * @param scaling   how frequencies are stretched for longer contexts
     */
    public record Rotary(int rotaryDim, double theta, RopeScaling scaling) implements Positions {
        public Rotary {
            if (rotaryDim <= 0 || rotaryDim % 2 != 0) {
                throw new IllegalArgumentException("Rotary.rotaryDim must be positive and even, got " + rotaryDim);
            }
            if (!(theta > 0)) throw new IllegalArgumentException("Rotary.theta must be positive, got " + theta);
            Objects.requireNonNull(scaling, "scaling");
        }
    }

    /** Rope scaling types ({@code rope_scaling.rope_type} / {@code rope_parameters.rope_type}). */
    public sealed interface RopeScaling permits NoScaling, LinearScaling, Llama3Scaling {}

    /** {@code default}: no scaling. */
    public record NoScaling() implements RopeScaling {}

    /** {@code linear}: positions divided by {@code factor} (every frequency divided by it). */
    public record LinearScaling(double factor) implements RopeScaling {
        public LinearScaling {
            if (!(factor > 0)) throw new IllegalArgumentException("linear rope scaling factor must be positive, got " + factor);
        }
    }

    /**
     * {@code llama3}: Llama 3.1's frequency-dependent scaling: wavelengths above {@code originalContext / lowFreqFactor}
     * are divided by {@code factor}, those below {@code originalContext / highFreqFactor} kept, and those between
     * interpolated.
     */
    public record Llama3Scaling(double factor, double lowFreqFactor, double highFreqFactor, int originalContext)
            implements RopeScaling {
        public Llama3Scaling {
            if (!(factor > 0) || !(lowFreqFactor > 0) || !(highFreqFactor > lowFreqFactor) || originalContext <= 0) {
                throw new IllegalArgumentException("llama3 rope scaling needs factor > 0, 0 < low_freq_factor < "
                    + "high_freq_factor and original_max_position_embeddings > 0; got factor " + factor
                    + ", low_freq_factor " + lowFreqFactor + ", high_freq_factor " + highFreqFactor
                    + ", original_max_position_embeddings " + originalContext);
            }
        }
    }

    /**
     * Which projections carry a bias.
     *
     * @param qkv Q, K and V ({@code b_Q, b_K, b_V})
     * @param out the attention output ({@code b_O})
     * @param mlp the MLP's input and output ({@code b_in, b_out})
     */
    public record Biases(boolean qkv, boolean out, boolean mlp) {
        public static final Biases ALL = new Biases(true, true, true);
        public static final Biases NONE = new Biases(false, false, false);
    }

    public ModelConfig {
        Objects.requireNonNull(architecture, "architecture");
        Objects.requireNonNull(norm, "norm");
        Objects.requireNonNull(actFn, "actFn");
        Objects.requireNonNull(positions, "positions");
        Objects.requireNonNull(biases, "biases");
        Objects.requireNonNull(extras, "extras");
        require(nLayers > 0, "nLayers", nLayers);
        require(dModel > 0, "dModel", dModel);
        require(nHeads > 0, "nHeads", nHeads);
        require(nKvHeads > 0 && nHeads % nKvHeads == 0, "nKvHeads (must divide nHeads " + nHeads + ")", nKvHeads);
        require(dHead > 0, "dHead", dHead);
        require(dVocab > 0, "dVocab", dVocab);
        require(nCtx > 0, "nCtx", nCtx);
        require(lnEps > 0, "lnEps", lnEps);
        require(attnOnly || dMlp > 0, "dMlp", dMlp);
        if (attnOnly && (parallelAttnMlp || gatedMlp)) {
            throw new IllegalArgumentException("an attention-only model cannot have parallel attention and MLP or a gated MLP");
        }
        if (!extras.slidingLayers().isEmpty() && extras.slidingLayers().size() != nLayers) {
            throw new IllegalArgumentException("ModelConfig: " + extras.slidingLayers().size()
                + " sliding-window layer flags for " + nLayers + " layers");
        }
        if (extras.postNorms() && (norm != Norm.RMS_NORM || biases.out() || parallelAttnMlp || attnOnly)) {
            throw new IllegalArgumentException("ModelConfig: post-norms are implemented for sequential RMSNorm blocks "
                + "with an MLP and no attention output bias (Gemma-2)");
        }
        if (positions instanceof Rotary r && r.rotaryDim() > dHead) {
            throw new IllegalArgumentException("ModelConfig: rotary dimension " + r.rotaryDim() + " exceeds dHead " + dHead);
        }
    }

    /**
     * A GPT-2-style config (LayerNorm, learned positions, every bias, plain MLP, no grouped-query attention), the
     * shape of the bundled and benchmark models.
     */
    public ModelConfig(String architecture, int nLayers, int dModel, int nHeads, int dHead, int dMlp, int dVocab,
                       int nCtx, double lnEps, ActFn actFn, boolean attnOnly, boolean parallelAttnMlp,
                       boolean tiedUnembed, long bosTokenId) {
        this(architecture, nLayers, dModel, nHeads, nHeads, dHead, dMlp, dVocab, nCtx, lnEps, Norm.LAYER_NORM, actFn,
            attnOnly, parallelAttnMlp, false, tiedUnembed, bosTokenId, new Learned(), Biases.ALL);
    }

    private static void require(boolean ok, String field, Object value) {
        if (!ok) throw new IllegalArgumentException("ModelConfig." + field + " is invalid: " + value);
    }

    /** Query heads per key/value head (1 without grouped-query attention). */
    public int groupSize() {
        return nHeads / nKvHeads;
    }

    /** The shape the computation graph is built from. */
    public TransformerShape shape() {
        return new TransformerShape(nLayers, nHeads, !attnOnly, parallelAttnMlp);
    }

    /** A copy with another architecture name (same pieces), for adapters that differ from another only by name. */
    public ModelConfig withArchitecture(String name) {
        return new ModelConfig(name, nLayers, dModel, nHeads, nKvHeads, dHead, dMlp, dVocab, nCtx, lnEps, norm, actFn,
            attnOnly, parallelAttnMlp, gatedMlp, tiedUnembed, bosTokenId, positions, biases, extras);
    }

    /** A copy with other {@link Extras} (same pieces otherwise). */
    public ModelConfig withExtras(Extras e) {
        return new ModelConfig(architecture, nLayers, dModel, nHeads, nKvHeads, dHead, dMlp, dVocab, nCtx, lnEps, norm,
            actFn, attnOnly, parallelAttnMlp, gatedMlp, tiedUnembed, bosTokenId, positions, biases, e);
    }

    /**
     * Reads a Hugging Face {@code config.json} through the adapter of its {@code architectures} field.
     *
     * @throws IllegalArgumentException naming the file and field when the architecture is not supported (listing
     *                                  the supported ones) or a field is missing or invalid
     */
    public static ModelConfig fromHuggingFace(Path configJson) throws IOException {
        return Architectures.readConfig(configJson).config();
    }
}
