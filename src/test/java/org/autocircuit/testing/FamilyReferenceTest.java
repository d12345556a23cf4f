package org.autocircuit.testing;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The skip condition of {@link FamilyReference} is exactly "this architecture is not supported". */
class FamilyReferenceTest {
    @Test
    void onlyTheUnsupportedArchitectureErrorSkips() {
        String arch = "Gemma2ForCausalLM";
        // the loader's message: the file and field naming the architecture, then the supported list without it
        assertTrue(FamilyReference.isUnsupportedArchitecture(new IllegalArgumentException(
            "/m/config.json: field 'architectures' is [\"Gemma2ForCausalLM\"]; supported architectures: [GPT2LMHeadModel]"), arch));
        assertTrue(FamilyReference.isUnsupportedArchitecture(new IllegalArgumentException(
            "architecture 'Gemma2ForCausalLM' is not supported; supported architectures: [GPT2LMHeadModel, LlamaForCausalLM]"),
            arch));
        // a supported architecture failing for another reason does not skip
        assertFalse(FamilyReference.isUnsupportedArchitecture(new IllegalArgumentException(
            "/m/config.json: field 'sliding_window' is 4; not supported"), arch));
        assertFalse(FamilyReference.isUnsupportedArchitecture(new IllegalArgumentException(
            "/m/config.json: field 'rope_type' of Gemma2ForCausalLM is 'yarn'; supported architectures: [Gemma2ForCausalLM]"),
            arch));
        assertFalse(FamilyReference.isUnsupportedArchitecture(new IllegalArgumentException((String) null), arch));
    }

    @Test
    void otherLoadErrorsFail(@TempDir Path dir) throws Exception {
        Files.writeString(dir.resolve("config.json"), "{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": 64}");
        assertThrows(IllegalArgumentException.class, () -> FamilyReference.loadOrSkip(dir));
    }
}
