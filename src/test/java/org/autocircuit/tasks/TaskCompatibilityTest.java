package org.autocircuit.tasks;

import static org.autocircuit.testing.Fixtures.resource;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code autocircuit tasks --model DIR}: which tasks run with a model folder, and the first check that fails. */
class TaskCompatibilityTest {
    private static final TaskPaths HERE = TaskPaths.under(Path.of("."));

    @Test
    void bundledGpt2ModelRunsTheGpt2Tasks() {
        TaskCompatibility tiny = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, Fixtures.modelDir());
        assertTrue(tiny.runs(), tiny.reason());
        assertEquals("GPT2LMHeadModel", tiny.architecture());
        assertEquals("gpt2", tiny.tokenizer());
        assertNull(tiny.note(), "ioi-tiny has no official circuit");

        TaskCompatibility ioi = TaskCompatibility.check(Tasks.byKey("ioi-component"), HERE, Fixtures.modelDir());
        assertTrue(ioi.runs(), ioi.reason());
        assertTrue(ioi.note().contains("'ioi'") && ioi.note().contains("gpt2"), ioi.note());

        TaskCompatibility sae = TaskCompatibility.check(Tasks.byKey("ioi-gpt2-autoencoder"), HERE, Fixtures.modelDir());
        assertFalse(sae.runs());
        assertTrue(sae.reason().startsWith("unsupported:"), sae.reason());
    }

    @Test
    void wordVocabularyModelCannotTokenizeIoi() {
        TaskCompatibility c = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, resource("models/induction-2l"));
        assertFalse(c.runs());
        assertTrue(c.reason().startsWith("dataset with this tokenizer:"), c.reason());
        assertEquals("AutoCircuitTransformer", c.architecture());
    }

    /** A GPT-2 model folder carrying the small Qwen2-style tokenizer: IOI-32 fits it, greater-than does not. */
    @Test
    void folderTokenizerDecides(@TempDir Path dir) throws IOException {
        Path folder = Files.createDirectories(dir.resolve("gpt2-with-qwen2-tokenizer"));
        Files.copy(Fixtures.modelDir().resolve("config.json"), folder.resolve("config.json"));
        Files.createSymbolicLink(folder.resolve("model.safetensors"), Fixtures.modelDir().resolve("model.safetensors"));
        for (String f : new String[] {"tokenizer.json", "tokenizer_config.json"}) {
            Files.copy(resource("families/qwen2/model").resolve(f), folder.resolve(f));
        }
        TaskCompatibility ioi = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, folder);
        assertTrue(ioi.runs(), ioi.reason());
        assertTrue(ioi.tokenizer().startsWith("tokenizer.json"), ioi.tokenizer());
        // Qwen2's pre-tokenizer splits numbers into digits, so the two-digit answers are two tokens
        TaskCompatibility gt = TaskCompatibility.check(Tasks.byKey("greater-than-component"), HERE, folder);
        assertFalse(gt.runs());
        assertTrue(gt.reason().startsWith("dataset with this tokenizer:"), gt.reason());
    }

    @Test
    void missingWeightsAndForeignTokenizerAreReported(@TempDir Path dir) throws IOException {
        Path noWeights = Files.createDirectories(dir.resolve("no-weights"));
        Files.copy(Fixtures.modelDir().resolve("config.json"), noWeights.resolve("config.json"));
        TaskCompatibility c = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, noWeights);
        assertFalse(c.runs());
        assertTrue(c.reason().contains("model.safetensors"), c.reason());

        Path small = Files.createDirectories(dir.resolve("small-vocab"));
        String config = Files.readString(Fixtures.modelDir().resolve("config.json")).replace("50257", "100")
            .replace("50256", "99"); // BOS/EOS inside the smaller vocabulary, so only the tokenizer is at fault
        Files.writeString(small.resolve("config.json"), config);
        Files.createSymbolicLink(small.resolve("model.safetensors"), Fixtures.modelDir().resolve("model.safetensors"));
        Files.copy(resource("families/qwen2/model/tokenizer.json"), small.resolve("tokenizer.json"));
        c = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, small);
        assertFalse(c.runs());
        assertTrue(c.reason().startsWith("tokenizer:") && c.reason().contains("vocab_size 100"), c.reason());

        c = TaskCompatibility.check(Tasks.byKey("ioi-tiny"), HERE, dir.resolve("absent"));
        assertFalse(c.runs());
        assertTrue(c.reason().contains("config.json"), c.reason());
    }
}
