package org.autocircuit.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.graph.TransformerShape;

/**
 * The architecture of a transformer, in TransformerLens's terms ({@code HookedTransformerConfig}).
 *
 * @param architecture    the Hugging Face architecture name it was read from (e.g. {@code GPT2LMHeadModel})
 * @param nLayers         number of blocks
 * @param dModel          residual stream width
 * @param nHeads          attention heads per block
 * @param dHead           width of one head
 * @param dMlp            hidden width of the MLP (0 for attention-only models)
 * @param dVocab          vocabulary size
 * @param nCtx            maximum context length (learned positions)
 * @param lnEps           LayerNorm epsilon
 * @param actFn           MLP activation
 * @param attnOnly        no MLPs
 * @param parallelAttnMlp attention and MLP read the same residual (GPT-NeoX / Pythia)
 * @param tiedUnembed     the unembedding is the transpose of the embedding (no {@code lm_head.weight})
 * @param bosTokenId      the BOS (and, for GPT-2, pad) token id
 */
public record ModelConfig(
        String architecture,
        int nLayers,
        int dModel,
        int nHeads,
        int dHead,
        int dMlp,
        int dVocab,
        int nCtx,
        double lnEps,
        ActFn actFn,
        boolean attnOnly,
        boolean parallelAttnMlp,
        boolean tiedUnembed,
        long bosTokenId) {

    /** MLP activations TransformerLens supports for GPT-2-like models. */
    public enum ActFn {
        /** GPT-2's tanh approximation of GELU. */
        GELU_NEW,
        /** exact GELU (erf). */
        GELU,
        RELU;

        static ActFn parse(String s, Path file) {
            return switch (s) {
                case "gelu_new", "gelu_pytorch_tanh", "gelu_fast" -> GELU_NEW;
                case "gelu" -> GELU;
                case "relu" -> RELU;
                default -> throw new IllegalArgumentException(file + ": field 'activation_function' is '" + s
                    + "'; expected one of gelu_new, gelu, relu");
            };
        }
    }

    /** Architectures this loader understands. */
    public static final List<String> SUPPORTED_ARCHITECTURES = List.of("GPT2LMHeadModel", "AutoCircuitTransformer");

    public ModelConfig {
        require(nLayers > 0, "nLayers", nLayers);
        require(dModel > 0, "dModel", dModel);
        require(nHeads > 0, "nHeads", nHeads);
        require(dHead > 0, "dHead", dHead);
        require(dVocab > 0, "dVocab", dVocab);
        require(nCtx > 0, "nCtx", nCtx);
        require(lnEps > 0, "lnEps", lnEps);
        require(attnOnly || dMlp > 0, "dMlp", dMlp);
        if (attnOnly && parallelAttnMlp) {
            throw new IllegalArgumentException("an attention-only model cannot have parallel attention and MLP");
        }
    }

    private static void require(boolean ok, String field, Object value) {
        if (!ok) throw new IllegalArgumentException("ModelConfig." + field + " is invalid: " + value);
    }

    /** The shape the computation graph is built from. */
    public TransformerShape shape() {
        return new TransformerShape(nLayers, nHeads, !attnOnly, parallelAttnMlp);
    }

    /** Reads a Hugging Face {@code config.json}. */
    public static ModelConfig fromHuggingFace(Path configJson) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readString(configJson));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(configJson + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(configJson + ": expected a JSON object");
        }
        String arch = root.path("architectures").path(0).asText(null);
        if (arch == null) {
            String modelType = root.path("model_type").asText(null);
            if ("gpt2".equals(modelType)) arch = "GPT2LMHeadModel";
        }
        if (arch == null || !SUPPORTED_ARCHITECTURES.contains(arch)) {
            throw new IllegalArgumentException(configJson + ": field 'architectures' is " + root.path("architectures")
                + "; supported architectures: " + SUPPORTED_ARCHITECTURES);
        }
        int nEmbd = intField(root, "n_embd", configJson);
        int nHead = intField(root, "n_head", configJson);
        if (nEmbd % nHead != 0) {
            throw new IllegalArgumentException(configJson + ": n_embd " + nEmbd + " is not divisible by n_head " + nHead);
        }
        boolean attnOnly = root.path("attn_only").asBoolean(false);
        int nInner = root.hasNonNull("n_inner") ? root.get("n_inner").asInt() : 4 * nEmbd;
        return new ModelConfig(
            arch,
            intField(root, "n_layer", configJson),
            nEmbd,
            nHead,
            nEmbd / nHead,
            attnOnly ? 0 : nInner,
            intField(root, "vocab_size", configJson),
            intField(root, "n_positions", configJson),
            root.path("layer_norm_epsilon").asDouble(1e-5),
            ActFn.parse(root.path("activation_function").asText("gelu_new"), configJson),
            attnOnly,
            false,
            root.path("tie_word_embeddings").asBoolean(true),
            root.path("bos_token_id").asLong(50256));
    }

    private static int intField(JsonNode root, String field, Path file) {
        JsonNode n = root.get(field);
        if (n == null || !n.canConvertToInt() || !n.isIntegralNumber()) {
            throw new IllegalArgumentException(file + ": field '" + field + "' must be an integer, got " + n);
        }
        return n.asInt();
    }
}
