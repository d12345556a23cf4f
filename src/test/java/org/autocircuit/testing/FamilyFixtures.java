package org.autocircuit.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import org.autocircuit.model.HookedTransformer;

/**
 * The other-family fixtures (src/test/resources/fixtures/families/{llama,neox}, see the fixtures README): a tiny
 * random model of each architecture in bf16, and the golden files AutoCircuit + TransformerLens produced from it on
 * the same 32 IOI prompts as the GPT-2 fixture.
 */
public final class FamilyFixtures {
    private FamilyFixtures() {}

    /** The families with AutoCircuit goldens. */
    public static final String[] FAMILIES = {"llama", "neox"};

    public static Path modelDir(String family) {
        return Fixtures.resource("families/" + family + "/model");
    }

    public static HookedTransformer model(String family) {
        try {
            return HookedTransformer.fromPretrained(modelDir(family));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static JsonNode golden(String family, String name) {
        try (InputStream in = FamilyFixtures.class.getResourceAsStream("/fixtures/families/" + family + "/golden/" + name)) {
            if (in == null) throw new IllegalStateException("missing golden file families/" + family + "/golden/" + name);
            return new ObjectMapper().readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
