package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Consumer;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Model folders whose config and weights disagree, or whose config holds values of the wrong kind: each is an error
 * naming the file and the field or tensor, before any weight is allocated where possible (issue: silent wrong
 * models, unclear errors).
 */
class ModelFolderReliabilityTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    @TempDir Path dir;

    /** A copy of the bundled attention-only model with its config edited. */
    private Path inductionWith(Consumer<ObjectNode> edit) throws IOException {
        Path src = Fixtures.resource("models/induction-2l");
        Path out = Files.createTempDirectory(dir, "m");
        for (String f : new String[] {"model.safetensors", "vocab.txt"}) Files.copy(src.resolve(f), out.resolve(f));
        ObjectNode cfg = (ObjectNode) JSON.readTree(src.resolve("config.json").toFile());
        edit.accept(cfg);
        Files.writeString(out.resolve("config.json"), JSON.writeValueAsString(cfg));
        return out;
    }

    private static String loadError(Path folder) {
        return assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(folder).close())
            .getMessage();
    }

    private static void assertMentions(String message, String... parts) {
        for (String p : parts) assertTrue(message.contains(p), "'" + p + "' missing from: " + message);
    }

    @Test
    void theUneditedCopyLoads() throws IOException {
        HookedTransformer.fromPretrained(inductionWith(c -> {})).close();
    }

    @Test
    void badConfigValuesNameTheirField() throws IOException {
        assertMentions(loadError(inductionWith(c -> c.put("n_head", 0))), "config.json", "'n_head'");
        assertMentions(loadError(inductionWith(c -> c.put("n_inner", "abc"))), "'n_inner'", "integer");
        assertMentions(loadError(inductionWith(c -> c.put("layer_norm_epsilon", "big"))), "'layer_norm_epsilon'");
        assertMentions(loadError(inductionWith(c -> c.put("bos_token_id", 65))), "'bos_token_id'", "[0, 65)");
        assertMentions(loadError(inductionWith(c -> c.put("bos_token_id", -1))), "'bos_token_id'");
        assertMentions(loadError(inductionWith(c -> c.put("attn_only", "yes"))), "'attn_only'", "true or false");
        assertMentions(loadError(inductionWith(c -> c.put("n_layer", Integer.MAX_VALUE))), "2147483647 layers",
            "2 blocks");
    }

    @Test
    void aBinaryConfigIsNotMalformedInput() throws IOException {
        Path m = inductionWith(c -> {});
        Files.write(m.resolve("config.json"), new byte[] {(byte) 0xff, (byte) 0xfe, 0, 1, 2, (byte) 0xc3});
        assertMentions(loadError(m), "config.json", "UTF-8");
    }

    @Test
    void attnOnlyWithMlpWeightsIsRefused() throws IOException {
        // the tiny GPT-2 has MLPs; calling it attention-only used to drop them silently
        Path src = Fixtures.modelDir();
        Path m = Files.createTempDirectory(dir, "g");
        Files.copy(src.resolve("model.safetensors"), m.resolve("model.safetensors"));
        ObjectNode cfg = (ObjectNode) JSON.readTree(src.resolve("config.json").toFile());
        cfg.put("attn_only", true);
        Files.writeString(m.resolve("config.json"), JSON.writeValueAsString(cfg));
        assertMentions(loadError(m), "'attn_only'", "MLP weights", ".h.0.");
    }

    /** Rewrites the bundled model's weights through {@code edit} (name → tensor). */
    private Path weightsEdited(Consumer<Map<String, Tensor>> edit, Consumer<ObjectNode> configEdit) throws IOException {
        Path m = inductionWith(configEdit);
        try (PointerScope scope = new PointerScope(); SafeTensors st = SafeTensors.open(m.resolve("model.safetensors"))) {
            Map<String, Tensor> all = new HashMap<>();
            for (String n : st.names()) all.put(n, st.load(n));
            edit.accept(all);
            SafeTensors.write(m.resolve("model.safetensors"), all);
        }
        return m;
    }

    @Test
    void unknownTensorsAreRefused() throws IOException {
        Path m = weightsEdited(w -> w.put("transformer.h.0.attn.extra_gate", torch.ones(4)), c -> {});
        assertMentions(loadError(m), "model.safetensors", "transformer.h.0.attn.extra_gate", "does not use");
    }

    @Test
    void aWrongOrDifferentLmHeadBesideTiedEmbeddingsIsRefused() throws IOException {
        Path wrongShape = weightsEdited(w -> w.put("lm_head.weight", torch.zeros(65, 63)),
            c -> c.put("tie_word_embeddings", true));
        assertMentions(loadError(wrongShape), "lm_head.weight", "tie_word_embeddings");
        // the bundled model's lm_head differs from its embedding: tying would silently drop it
        Path tied = inductionWith(c -> c.put("tie_word_embeddings", true));
        assertMentions(loadError(tied), "tie_word_embeddings", "lm_head.weight");
    }
}
