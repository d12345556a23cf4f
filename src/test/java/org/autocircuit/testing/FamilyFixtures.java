package org.autocircuit.testing;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import org.autocircuit.model.HookedTransformer;

/**
 * The model folders of the other-family fixtures (src/test/resources/fixtures/families/&lt;family&gt;/model, see the
 * fixtures README): tiny random models in bf16. The golden files of {@code llama} and {@code neox} are read through
 * {@link GoldenFixture#LLAMA} and {@link GoldenFixture#NEOX}.
 */
public final class FamilyFixtures {
    private FamilyFixtures() {}

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
}
