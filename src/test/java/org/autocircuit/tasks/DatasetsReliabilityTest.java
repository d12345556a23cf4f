package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Datasets the model cannot take are refused prompt by prompt, right after tokenizing and before anything is padded
 * or allocated for the model; paths that are not regular files are refused without blocking.
 */
class DatasetsReliabilityTest {
    @TempDir Path dir;

    private static final LoaderOptions OPTIONS = LoaderOptions.builder().batchSize(1).trainTestSize(1, 1)
        .shuffle(false).tailDivergence(true).build();

    private static WordTokenizer words() throws IOException {
        return WordTokenizer.fromFile(Fixtures.resource("models/induction-2l/vocab.txt"));
    }

    private Path dataset(String secondClean, String answer) throws IOException {
        Path p = dir.resolve("d.json");
        Files.writeString(p, "{\"prompts\": ["
            + "{\"clean\": \"w01 w02 w01\", \"corrupt\": \"w03 w04 w01\", \"answers\": [\"w02\"], \"wrong_answers\": [\"w04\"]},"
            + "{\"clean\": \"" + secondClean + "\", \"corrupt\": \"" + secondClean.replace("w01", "w05")
            + "\", \"answers\": [\"" + answer + "\"], \"wrong_answers\": [\"w04\"]}]}");
        return p;
    }

    @Test
    void aPromptLongerThanTheContextIsRefusedByName() throws IOException {
        String longPrompt = "w01 w02".repeat(1).concat(" w01 w02".repeat(200_000));   // 400,002 words
        Path p = dataset(longPrompt, "w02");
        var e = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(p, OPTIONS, words(), new Datasets.ModelLimits(32, 65)));
        assertTrue(e.getMessage().contains("prompts[1].clean") && e.getMessage().contains("400003 tokens with BOS")
            && e.getMessage().contains("context of 32"), e.getMessage());
    }

    @Test
    void idsOutsideTheVocabularyAreRefusedByName() throws IOException {
        // the GPT-2 tokenizer on a 65-word model: BOS 50256 is out of range before any prompt is looked at
        Path p = dataset("w01 w02 w01", "w02");
        var e = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(p, OPTIONS, new Gpt2Tokenizer(), new Datasets.ModelLimits(32, 65)));
        assertTrue(e.getMessage().contains("50256") && e.getMessage().contains("[0, 65)"), e.getMessage());
        // a vocabulary one word short: the answer w63 (id 64) is out of range, named with its prompt
        Path q = dataset("w01 w02 w01", "w63");
        e = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(q, OPTIONS, words(), new Datasets.ModelLimits(32, 64)));
        assertTrue(e.getMessage().contains("prompts[1].answers[0] \"w63\"") && e.getMessage().contains("[0, 64)"),
            e.getMessage());
    }

    @Test
    void withinTheLimitsItLoads() throws IOException {
        var d = Datasets.load(dataset("w01 w02 w01", "w02"), OPTIONS, words(), new Datasets.ModelLimits(32, 65));
        assertEquals(1, d.train().nPrompts());
    }

    @Test
    void aFolderOrFifoIsRefusedWithoutBlocking() throws Exception {
        var e = assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(dir));
        assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        Path fifo = dir.resolve("fifo.json");
        if (new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0) {
            assertTimeoutPreemptively(Duration.ofSeconds(10),
                () -> assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(fifo)));
        }
    }
}
