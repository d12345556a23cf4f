package org.autocircuit.model.arch;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import org.autocircuit.model.ModelConfig;

/**
 * Reads rotary settings from a config.json in either spelling transformers has used: {@code rope_parameters}
 * ({@code rope_theta}, {@code rope_type}, {@code partial_rotary_factor}, scaling fields) since transformers 5, or
 * top-level {@code rope_theta} / {@code rotary_emb_base}, {@code partial_rotary_factor} / {@code rotary_pct} and a
 * {@code rope_scaling} object ({@code type} or {@code rope_type}) before.
 */
final class Rope {
    private Rope() {}

    static ModelConfig.Rotary read(ConfigJson json, int dHead, double defaultTheta) {
        JsonNode params = json.root().get("rope_parameters");
        String paramsField = "rope_parameters";
        if (params == null || !params.isObject()) {
            params = json.root().get("rope_scaling");
            paramsField = "rope_scaling";
        }
        if (params == null || !params.isObject()) params = JsonNodeFactory.instance.objectNode();
        double theta = json.number(params, paramsField, "rope_theta",
            json.number("rope_theta", json.number("rotary_emb_base", defaultTheta)));
        double partial = json.number(params, paramsField, "partial_rotary_factor",
            json.number("partial_rotary_factor", json.number("rotary_pct", 1.0)));
        if (!(partial > 0 && partial <= 1)) {
            throw json.error("partial_rotary_factor", "must be in (0, 1], got " + partial);
        }
        // transformers: rotary_ndims = int(head_size * partial_rotary_factor)
        int rotaryDim = (int) (dHead * partial);
        if (rotaryDim < 2 || rotaryDim % 2 != 0) {
            throw json.error("partial_rotary_factor", partial + " of head_dim " + dHead + " gives " + rotaryDim
                + " rotary dimensions; a positive even number is needed");
        }
        JsonNode typeNode = params.hasNonNull("rope_type") ? params.get("rope_type") : params.get("type");
        String type = typeNode == null || typeNode.isNull() ? "default" : typeNode.asText();
        String at = paramsField + ".rope_type";
        ModelConfig.RopeScaling scaling = switch (type) {
            case "default" -> new ModelConfig.NoScaling();
            case "linear" -> new ModelConfig.LinearScaling(required(json, params, paramsField, "factor"));
            case "llama3" -> new ModelConfig.Llama3Scaling(required(json, params, paramsField, "factor"),
                required(json, params, paramsField, "low_freq_factor"),
                required(json, params, paramsField, "high_freq_factor"),
                (int) required(json, params, paramsField, "original_max_position_embeddings"));
            default -> throw json.error(at, "is '" + type + "'; supported rope types: default, linear, llama3");
        };
        return new ModelConfig.Rotary(rotaryDim, theta, scaling);
    }

    private static double required(ConfigJson json, JsonNode params, String paramsField, String field) {
        double v = json.number(params, paramsField, field, Double.NaN);
        if (Double.isNaN(v)) throw json.error(paramsField + "." + field, "is missing");
        return v;
    }
}
