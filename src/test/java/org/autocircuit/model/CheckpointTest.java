package org.autocircuit.model;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.TreeMap;
import org.autocircuit.testing.FamilyFixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Sharded checkpoints ({@code model.safetensors.index.json}): the Llama fixture (bf16, one file) rewritten as two F32
 * shards loads to the same model, and every broken index is a one-line error naming the file and what is wrong.
 */
class CheckpointTest {

    /** Writes the fixture's tensors as two shards (names before / after "model.layers.1") plus an index. */
    private static Path shard(Path dir) throws Exception {
        Path src = FamilyFixtures.modelDir("llama");
        Files.createDirectories(dir);
        Files.copy(src.resolve("config.json"), dir.resolve("config.json"));
        Map<String, String> index = new TreeMap<>();
        try (SafeTensors st = SafeTensors.open(src.resolve("model.safetensors")); PointerScope scope = new PointerScope()) {
            Map<String, Tensor> a = new LinkedHashMap<>(), b = new LinkedHashMap<>();
            for (String name : st.names()) {
                boolean first = name.compareTo("model.layers.1") < 0;
                (first ? a : b).put(name, st.load(name));
                index.put(name, first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors");
            }
            SafeTensors.write(dir.resolve("model-00001-of-00002.safetensors"), a);
            SafeTensors.write(dir.resolve("model-00002-of-00002.safetensors"), b);
        }
        StringBuilder json = new StringBuilder("{\"metadata\": {}, \"weight_map\": {");
        String sep = "";
        for (var e : index.entrySet()) {
            json.append(sep).append('"').append(e.getKey()).append("\": \"").append(e.getValue()).append('"');
            sep = ", ";
        }
        Files.writeString(dir.resolve(Checkpoint.INDEX_FILE), json.append("}}").toString());
        return dir;
    }

    @Test
    void shardedCheckpointLoadsTheSameModel(@TempDir Path tmp) throws Exception {
        Path dir = shard(tmp.resolve("sharded"));
        try (Checkpoint c = Checkpoint.open(dir)) {
            assertEquals(2, c.shardCount());
        }
        try (HookedTransformer single = FamilyFixtures.model("llama");
             HookedTransformer sharded = HookedTransformer.fromPretrained(dir);
             PointerScope scope = new PointerScope()) {
            Tensor tokens = AbstractTensor.create(new long[] {50256, 2215, 5335, 290, 1757, 1816}, 1, 6);
            Tensor a = single.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);
            Tensor b = sharded.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);
            assertClose(a, b, 0, "bf16 single file vs F32 shards of the same values");
        }
    }

    @Test
    void brokenShardsNameTheFileAndWhatIsWrong(@TempDir Path tmp) throws Exception {
        Path missing = shard(tmp.resolve("missing"));
        Files.delete(missing.resolve("model-00002-of-00002.safetensors"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(missing));
        assertTrue(e.getMessage().contains(Checkpoint.INDEX_FILE) && e.getMessage().contains("model-00002-of-00002")
            && e.getMessage().contains("weight_map") && !e.getMessage().contains("\n"), e.getMessage());

        Path misplaced = shard(tmp.resolve("misplaced"));
        Path index = misplaced.resolve(Checkpoint.INDEX_FILE);
        Files.writeString(index, Files.readString(index).replace(
            "\"model.norm.weight\": \"model-00002-of-00002.safetensors\"", "\"model.norm.weight\": \"model-00001-of-00002.safetensors\""));
        e = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(misplaced));
        assertTrue(e.getMessage().contains("model-00001-of-00002") && e.getMessage().contains("model.norm.weight"), e.getMessage());

        Path shape = shard(tmp.resolve("shape"));
        Path config = shape.resolve("config.json");
        Files.writeString(config, Files.readString(config).replace("\"intermediate_size\": 176", "\"intermediate_size\": 160"));
        e = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(shape));
        assertTrue(e.getMessage().contains("mlp.up_proj.weight") && e.getMessage().contains("config.json")
            && e.getMessage().contains("[176, 64]") && e.getMessage().contains("[160, 64]"), e.getMessage());

        Path escape = shard(tmp.resolve("escape"));
        Path escIndex = escape.resolve(Checkpoint.INDEX_FILE);
        Files.writeString(escIndex, Files.readString(escIndex).replace("\"model.norm.weight\": \"model-00002",
            "\"model.norm.weight\": \"../model-00002"));
        e = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(escape));
        assertTrue(e.getMessage().contains("weight_map") && e.getMessage().contains("model.norm.weight"), e.getMessage());
    }

    @Test
    void missingTensorNamesTheArchitecture(@TempDir Path tmp) throws Exception {
        Path dir = shard(tmp.resolve("lacking"));
        Path index = dir.resolve(Checkpoint.INDEX_FILE);
        Files.writeString(index, Files.readString(index).replace(
            "\"model.layers.1.input_layernorm.weight\": \"model-00002-of-00002.safetensors\", ", ""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(dir));
        assertTrue(e.getMessage().contains("model.layers.1.input_layernorm.weight") && e.getMessage().contains("config.json"), e.getMessage());
    }
}
