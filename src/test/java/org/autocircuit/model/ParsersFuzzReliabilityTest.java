package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.Fuzz;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded mutation fuzzing of the safetensors reader (open, then load every tensor) and the config reader: bad bytes
 * must give an {@link IllegalArgumentException}, never another exception, a crash or a hang.
 */
class ParsersFuzzReliabilityTest {
    @TempDir Path dir;

    /** A small well-formed file: three F32 tensors of the bundled model's kinds (a matrix, a vector, an empty one). */
    private static byte[] safetensorsSeed() {
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"
            + "\"lm_head.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
            + "\"transformer.ln_f.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]},"
            + "\"transformer.wte.weight\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[36,40]},"
            + "\"empty\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[40,40]}}";
        json += " ".repeat((8 - json.length() % 8) % 8);
        byte[] data = new byte[40];
        for (int i = 0; i < data.length; i++) data[i] = (byte) (i * 7);
        return SafeTensorsReliabilityTest.file(json, data);
    }

    private void fuzzSafetensors(long seed, int n) throws Exception {
        Path file = dir.resolve("f.safetensors");
        int rejected = Fuzz.run("safetensors", safetensorsSeed(), seed, n, input -> {
            Files.write(file, input);
            try (SafeTensors st = SafeTensors.open(file); PointerScope scope = new PointerScope()) {
                for (String name : st.names()) st.load(name);
            }
        }, IllegalArgumentException.class);
        assertTrue(rejected > n / 4, "most mutations should be rejected, got " + rejected + " of " + n);
    }

    private void fuzzConfig(long seed, int n) throws Exception {
        Path file = dir.resolve("config.json");
        byte[] seedInput = Files.readAllBytes(Fixtures.resource("models/induction-2l/config.json"));
        int rejected = Fuzz.run("config.json", seedInput, seed, n, input -> {
            Files.write(file, input);
            ModelConfig.fromHuggingFace(file);
        }, IllegalArgumentException.class);
        assertTrue(rejected > 0, "no mutation was rejected");
    }

    @Test
    void safetensorsReader() throws Exception {
        fuzzSafetensors(11, Fuzz.defaultCount());
    }

    @Test
    void configReader() throws Exception {
        fuzzConfig(12, Fuzz.defaultCount());
    }

    @Test
    @Tag("slow")
    void manyMoreInputs() throws Exception {
        fuzzSafetensors(21, 50_000);
        fuzzConfig(22, 50_000);
    }
}
