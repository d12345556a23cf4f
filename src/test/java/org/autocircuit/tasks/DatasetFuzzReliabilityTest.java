package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.Fuzz;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded mutation fuzzing of the dataset reader and loader (the induction prompts with the bundled model's word
 * tokenizer and limits): only {@link IllegalArgumentException}, no other exception, crash or hang.
 */
class DatasetFuzzReliabilityTest {
    @TempDir Path dir;

    /** The first four prompts of the bundled induction dataset, with its labels and word indices. */
    private static byte[] seedInput() throws Exception {
        String text = Files.readString(Path.of("datasets/induction.json"));
        int fifth = 0;
        for (int i = 0; i < 5; i++) fifth = text.indexOf("\"clean\"", fifth + 1);
        int cut = text.lastIndexOf('}', fifth) + 1;
        return (text.substring(0, cut) + " ] }").getBytes(StandardCharsets.UTF_8);
    }

    private void fuzz(long seed, int n) throws Exception {
        WordTokenizer words = WordTokenizer.fromFile(Fixtures.resource("models/induction-2l/vocab.txt"));
        LoaderOptions options = LoaderOptions.builder().batchSize(2).trainTestSize(2, 2).tailDivergence(true)
            .shuffle(true).build();
        Path file = dir.resolve("d.json");
        byte[] seedInput = seedInput();
        Files.write(file, seedInput);
        Datasets.load(file, options, words, new Datasets.ModelLimits(32, 65));   // the seed itself loads
        int rejected = Fuzz.run("dataset", seedInput, seed, n, input -> {
            Files.write(file, input);
            Datasets.load(file, options, words, new Datasets.ModelLimits(32, 65));
        }, IllegalArgumentException.class);
        assertTrue(rejected > n / 4, "most mutations should be rejected, got " + rejected + " of " + n);
    }

    @Test
    void datasetReader() throws Exception {
        fuzz(31, Fuzz.defaultCount());
    }

    @Test
    @Tag("slow")
    void manyMoreInputs() throws Exception {
        fuzz(41, 50_000);
    }
}
