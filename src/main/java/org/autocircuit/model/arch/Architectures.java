package org.autocircuit.model.arch;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.model.ModelConfig;

/** The supported Hugging Face architectures, and the choice of adapter for a {@code config.json}. */
public final class Architectures {
    private Architectures() {}

    /** Every adapter; a new family is one more entry. */
    public static final List<Architecture> ALL = List.of(new Gpt2(), new NeoX(), new Llama(), new Mistral(), new Qwen2(),
        new Gemma2());

    /** A config read by its adapter. */
    public record Read(Architecture architecture, ModelConfig config) {}

    /** Every supported {@code architectures} name. */
    public static List<String> supportedNames() {
        List<String> names = new ArrayList<>();
        for (Architecture a : ALL) names.addAll(a.names());
        return List.copyOf(names);
    }

    /** The adapter for an architecture name. */
    public static Architecture forName(String name) {
        for (Architecture a : ALL) if (a.names().contains(name)) return a;
        throw new IllegalArgumentException("architecture '" + name + "' is not supported; supported architectures: "
            + supportedNames());
    }

    /**
     * Reads a {@code config.json} through the adapter its {@code architectures} field (or, without one, its
     * {@code model_type}) names.
     *
     * @throws IllegalArgumentException naming the file and field when the architecture is not supported (listing the
     *                                  supported ones) or a field is missing or invalid
     */
    public static Read readConfig(Path configJson) throws IOException {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readString(configJson));
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new IllegalArgumentException(configJson + ": not UTF-8 text (a binary file?); expected a JSON config", e);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(configJson + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(configJson + ": expected a JSON object");
        ConfigJson json = new ConfigJson(configJson, root);
        String name = root.path("architectures").path(0).asText(null);
        if (name == null) {
            String modelType = root.path("model_type").asText(null);
            for (Architecture a : ALL) {
                if (a.modelType().equals(modelType)) return checked(new Read(a, a.config(json, a.names().get(0))), configJson);
            }
            throw new IllegalArgumentException(configJson + ": neither field 'architectures' nor a known 'model_type' ("
                + root.path("model_type") + "); supported architectures: " + supportedNames());
        }
        for (Architecture a : ALL) {
            if (a.names().contains(name)) return checked(new Read(a, a.config(json, name)), configJson);
        }
        throw new IllegalArgumentException(configJson + ": field 'architectures' is " + root.path("architectures")
            + "; supported architectures: " + supportedNames());
    }

    /** Checks across fields that no adapter can see alone: the BOS id must lie inside the vocabulary. */
    private static Read checked(Read read, Path configJson) {
        ModelConfig c = read.config();
        if (c.bosTokenId() < 0 || c.bosTokenId() >= c.dVocab()) {
            throw new IllegalArgumentException(configJson + ": field 'bos_token_id' is " + c.bosTokenId()
                + ", outside the vocabulary [0, " + c.dVocab() + ")");
        }
        return read;
    }
}
