package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class WordTokenizerTest {
    private final WordTokenizer tok = new WordTokenizer(List.of("<bos>", "w00", "w01", "w02"), "test vocab");

    @Test
    void splitsOnWhitespaceAndBos() {
        assertArrayEquals(new long[] {0, 1, 2}, tok.encode("<bos>w00 w01"));
        assertArrayEquals(new long[] {1, 0, 0, 3}, tok.encode("  w00<bos><bos>\tw02\n"));
        assertArrayEquals(new long[] {2}, tok.encode(" w01"));
        assertArrayEquals(new long[0], tok.encode(""));
        assertEquals("<bos> w00 w02", tok.decode(new long[] {0, 1, 3}));
        assertEquals(0, tok.bosId());
        assertEquals(0, tok.padId());
        assertEquals("<bos>", tok.bosString());
    }

    @Test
    void rejectsUnknownWordsAndIds() {
        var e = assertThrows(IllegalArgumentException.class, () -> tok.encode("w00 cat"));
        assertTrue(e.getMessage().contains("'cat'") && e.getMessage().contains("test vocab"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {4}));
        assertThrows(IllegalArgumentException.class, () -> new WordTokenizer(List.of("a", "b"), "v"));        // no BOS
        assertThrows(IllegalArgumentException.class, () -> new WordTokenizer(List.of("<bos>", "a", "a"), "v"));
        assertThrows(IllegalArgumentException.class, () -> new WordTokenizer(List.of("<bos>", "a b"), "v"));
    }

    @Test
    void factoryPicksTheFoldersTokenizer(@TempDir Path dir) throws IOException {
        assertInstanceOf(Gpt2Tokenizer.class, Tokenizers.forModel(Fixtures.modelDir()));
        assertInstanceOf(WordTokenizer.class, Tokenizers.forModel(Fixtures.resource("models/induction-2l")));

        Path empty = Files.createDirectory(dir.resolve("empty"));
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(empty));
        assertTrue(e.getMessage().contains("has no tokenizer") && e.getMessage().contains("vocab.txt"), e.getMessage());

        Path words = Files.createDirectory(dir.resolve("words"));
        Files.writeString(words.resolve("vocab.txt"), "<bos>\nw0\nw1\n");
        assertEquals(3, ((WordTokenizer) Tokenizers.forModel(words)).vocabSize());
        Files.writeString(words.resolve("config.json"), "{\"vocab_size\": 5}");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(words));
        assertTrue(e.getMessage().contains("vocab_size 5"), e.getMessage());

        // vocab.json + merges.txt: GPT-2's vocabulary (here taken from GPT-2's tokenizer.json) → GPT-2's tokenizer;
        // any other vocabulary is refused rather than tokenized as GPT-2
        Path bpe = Files.createDirectory(dir.resolve("bpe"));
        var mapper = new com.fasterxml.jackson.databind.ObjectMapper();
        var gpt2Vocab = mapper.readTree(Fixtures.resource("tokenizers/gpt2/tokenizer.json").toFile()).path("model").path("vocab");
        Files.writeString(bpe.resolve("vocab.json"), mapper.writeValueAsString(gpt2Vocab));
        Files.writeString(bpe.resolve("merges.txt"), "");
        assertInstanceOf(Gpt2Tokenizer.class, Tokenizers.forModel(bpe));
        Files.writeString(bpe.resolve("vocab.json"), "{}");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(bpe));
        assertTrue(e.getMessage().contains("vocab.json holds 0 tokens"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(dir.resolve("missing")));
    }
}
