package org.autocircuit.tasks;

import static org.autocircuit.testing.Fixtures.resource;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The Hugging Face tokenizer of a model folder ({@link HuggingFaceTokenizer}, through DJL) against independent
 * references: GPT-2's own tokenizer (jtokkit) on every prompt and answer of the repository's datasets, and the ids
 * Python's {@code tokenizers} produced for the small Qwen2-, Mistral-, Gemma- and Llama-3-style tokenizers that
 * src/test/scripts/make_family_fixtures.py wrote (fixtures/tokenizers/tokenizer_checks.json).
 *
 * <p>fixtures/tokenizers/gpt2 is byte for byte the tokenizer.json and tokenizer_config.json that the llama and neox
 * AutoCircuit fixture folders carry (GPT-2's vocabulary in tokenizer.json form).
 */
class HuggingFaceTokenizerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Gpt2Tokenizer JTOKKIT = new Gpt2Tokenizer();
    private static HuggingFaceTokenizer gpt2;
    private static JsonNode checks;

    @BeforeAll
    static void open() throws IOException {
        gpt2 = HuggingFaceTokenizer.open(resource("tokenizers/gpt2"));
        checks = JSON.readTree(resource("tokenizers/tokenizer_checks.json").toFile());
    }

    @AfterAll
    static void close() {
        gpt2.close();
    }

    /** Every distinct prompt string and answer of datasets/*.json and the test fixtures' datasets. */
    private static Set<String> datasetStrings() throws IOException {
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Files.list(Path.of("datasets"))) {
            s.filter(p -> p.toString().endsWith(".json")).sorted().forEach(files::add);
        }
        files.add(resource("datasets/ioi-32.json"));
        Set<String> out = new LinkedHashSet<>();
        for (Path f : files) {
            JsonNode root = JSON.readTree(f.toFile());
            for (JsonNode p : root.path("prompts")) {
                for (String field : List.of("clean", "corrupt")) {
                    if (p.path(field).isTextual()) out.add(p.path(field).asText());
                }
                for (String field : List.of("answers", "wrong_answers")) {
                    for (JsonNode a : p.path(field)) if (a.isTextual()) out.add(a.asText());
                }
            }
        }
        return out;
    }

    @Test
    void gpt2TokenizerJsonGivesGpt2IdsOnEveryDatasetString() throws IOException {
        Set<String> strings = datasetStrings();
        assertTrue(strings.size() > 3000, "expected the datasets' distinct prompts, got " + strings.size() + " strings");
        for (String s : strings) {
            assertArrayEquals(JTOKKIT.encode(s), gpt2.encode(s), () -> "ids of " + s);
            String withBos = gpt2.bosString() + s;
            assertArrayEquals(JTOKKIT.encode(withBos), gpt2.encode(withBos), () -> "ids of " + withBos);
        }
        assertEquals(Gpt2Tokenizer.END_OF_TEXT, gpt2.bosString());
        assertEquals(Gpt2Tokenizer.END_OF_TEXT_ID, gpt2.bosId());
        assertEquals(Gpt2Tokenizer.END_OF_TEXT_ID, gpt2.padId());
        assertEquals(Gpt2Tokenizer.VOCAB_SIZE, gpt2.vocabSize());
        assertFalse(gpt2.specialTokens().addsBosByDefault(), "GPT-2 adds no BOS by itself");
    }

    @Test
    void gpt2CheckStringsMatchPythonAndJtokkit() {
        for (JsonNode c : checks.path("gpt2")) {
            String text = c.path("text").asText();
            long[] python = ids(c.path("ids"));
            assertArrayEquals(python, gpt2.encode(text), () -> "Python vs DJL on " + text);
            assertArrayEquals(python, JTOKKIT.encode(text), () -> "Python vs jtokkit on " + text);
            assertEquals(text, gpt2.decode(python));
        }
    }

    @Test
    void longTextIsNotTruncated() {
        String text = "When Mary and John went to the store, John gave a drink to Mary. ".repeat(200);
        long[] expected = JTOKKIT.encode(text);
        assertTrue(expected.length > 2000);
        assertArrayEquals(expected, gpt2.encode(text));
    }

    /** Folder of each constructed tokenizer, by its key in tokenizer_checks.json. */
    private static final Map<String, String> FOLDERS = Map.of(
        "qwen2", "families/qwen2/model", "mistral", "families/mistral/model", "gemma2", "families/gemma2/model",
        "llama3", "tokenizers/llama3-style");

    @ParameterizedTest
    @ValueSource(strings = {"qwen2", "mistral", "gemma2", "llama3"})
    void constructedTokenizersMatchPython(String family) throws IOException {
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(resource(FOLDERS.get(family)))) {
            JsonNode list = checks.path(family);
            assertTrue(list.size() >= 4, "checks for " + family);
            for (JsonNode c : list) {
                String text = c.path("text").asText();
                long[] python = ids(c.path("ids"));
                assertArrayEquals(python, tok.encode(text), () -> family + ": ids of " + text);
                // the tokenizer adds BOS by itself exactly when Python's add_special_tokens=True put one BOS first
                long[] withSpecial = ids(c.path("ids_with_special_tokens"));
                boolean pythonAddsBos = withSpecial.length == python.length + 1 && withSpecial[0] == tok.bosId();
                assertEquals(pythonAddsBos, tok.specialTokens().addsBosByDefault(), () -> family + ": adds BOS on " + text);
                if (!pythonAddsBos) assertArrayEquals(python, withSpecial, family + ": no template, no special tokens");
            }
            // characters outside the cut vocabulary fall back to byte tokens and decode back to the same text
            String bytes = "Zoë ate 😀 at 12345 o'clock.\n\nNew line";
            long[] ids = tok.encode(bytes);
            assertTrue(ids.length > bytes.length() / 2, family + ": byte fallback splits into many tokens");
            assertEquals(bytes, tok.decode(ids));
        }
    }

    @Test
    void bosRulePerFamily() throws IOException {
        record Expect(String folder, String bos, long bosId, long padId, boolean addsBos) {}
        List<Expect> expected = List.of(
            // Qwen2: bos_token null → EOS stands in, as in TransformerLens; pad_token given
            new Expect("families/qwen2/model", "<|endoftext|>", 616, 616, false),
            // Mistral: <s> from tokenizer_config, add_bos_token true; no pad_token → EOS </s>
            new Expect("families/mistral/model", "<s>", 1, 2, true),
            // Gemma: <bos>, pad <pad> = 0
            new Expect("families/gemma2/model", "<bos>", 2, 0, true),
            // Llama 3: bos_token, and the post-processor template alone says BOS is added (no add_bos_token)
            new Expect("tokenizers/llama3-style", "<|begin_of_text|>", 616, 617, true));
        for (Expect e : expected) {
            try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(resource(e.folder()))) {
                assertEquals(e.bos(), tok.bosString(), e.folder());
                assertEquals(e.bosId(), tok.bosId(), e.folder());
                assertEquals(e.padId(), tok.padId(), e.folder());
                assertEquals(e.addsBos(), tok.specialTokens().addsBosByDefault(), e.folder());
                assertArrayEquals(new long[] {e.bosId()}, tok.encode(e.bos()), "the BOS string is one special token");
            }
        }
    }

    @Test
    void bareGpt2TokenizerJsonFallsBackToEndOfText(@TempDir Path dir) throws IOException {
        Files.copy(resource("tokenizers/gpt2/tokenizer.json"), dir.resolve("tokenizer.json"));
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(dir)) {
            assertEquals(Gpt2Tokenizer.END_OF_TEXT, tok.bosString());
            assertEquals(Gpt2Tokenizer.END_OF_TEXT_ID, tok.bosId());
            assertEquals(Gpt2Tokenizer.END_OF_TEXT_ID, tok.padId());
            assertTrue(tok.specialTokens().bosSource().contains("TransformerLens"), tok.specialTokens().bosSource());
        }
    }

    @Test
    void llama3TemplateGivesBosWhenTheConfigNamesNone(@TempDir Path dir) throws IOException {
        Path src = resource("tokenizers/llama3-style");
        Files.copy(src.resolve("tokenizer.json"), dir.resolve("tokenizer.json"));
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(dir)) {
            assertEquals("<|begin_of_text|>", tok.bosString());
            assertTrue(tok.specialTokens().bosSource().contains("post_processor"), tok.specialTokens().bosSource());
            assertTrue(tok.specialTokens().addsBosByDefault());
        }
        // add_bos_token false overrides the template, as in Hugging Face's Llama tokenizers
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"add_bos_token\": false}");
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(dir)) {
            assertFalse(tok.specialTokens().addsBosByDefault());
            assertEquals("<|begin_of_text|>", tok.bosString());
        }
    }

    /** With prepend_bos the loader puts exactly one BOS, the folder's, in front: the ids the references used. */
    @ParameterizedTest
    @ValueSource(strings = {"qwen2", "mistral", "gemma2"})
    void loaderIdsEqualTheReferenceIds(String family) throws IOException {
        Path folder = resource("families/" + family + "/model");
        JsonNode ref = JSON.readTree(resource("families/" + family + "/reference_logits.json").toFile());
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(32).trainTestSize(32, 0)
            .returnSeqLength(true).shuffle(false).build();
        try (Tokenizer tok = Tokenizers.forModel(folder)) {
            assertInstanceOf(HuggingFaceTokenizer.class, tok);
            var batch = Datasets.load(resource("datasets/ioi-32.json"), options, tok).train().batches().get(0);
            JsonNode prompts = ref.path("prompts");
            assertEquals(prompts.size(), batch.batchSize());
            for (int i = 0; i < batch.batchSize(); i++) {
                assertArrayEquals(ids(prompts.get(i).path("ids")), batch.clean().row(i).longs(), family + " prompt " + i);
                assertEquals(prompts.get(i).path("answer_id").asLong(), batch.answers().prompt(i).longs()[0],
                    family + " answer " + i);
                assertEquals(prompts.get(i).path("wrong_answer_id").asLong(), batch.wrongAnswers().prompt(i).longs()[0],
                    family + " wrong answer " + i);
            }
        }
    }

    @Test
    void factoryChoosesByFolderContents(@TempDir Path dir) throws IOException {
        assertInstanceOf(Gpt2Tokenizer.class, Tokenizers.forModel(Fixtures.modelDir()), "config.json only: GPT-2");
        try (Tokenizer t = Tokenizers.forModel(resource("families/mistral/model-sharded"))) {
            assertInstanceOf(HuggingFaceTokenizer.class, t);
        }
        // a vocab.json that is not GPT-2's is refused, not tokenized as GPT-2
        Path other = Files.createDirectories(dir.resolve("other"));
        Files.writeString(other.resolve("vocab.json"), "{\"a\": 0, \"b\": 1}");
        Files.writeString(other.resolve("merges.txt"), "#version: 0.2\na b\n");
        var e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(other));
        assertTrue(e.getMessage().contains("vocab.json") && e.getMessage().contains("tokenizer.json"), e.getMessage());
        // a tokenizer with more ids than the model's vocab_size does not belong to it
        Path small = Files.createDirectories(dir.resolve("small"));
        copyTokenizer(resource("families/qwen2/model"), small);
        Files.writeString(small.resolve("config.json"), "{\"vocab_size\": 100}");
        e = assertThrows(IllegalArgumentException.class, () -> Tokenizers.forModel(small));
        assertTrue(e.getMessage().contains("vocab_size 100") && e.getMessage().contains("tokenizer.json"), e.getMessage());
    }

    @Test
    void badFilesNameFileAndField(@TempDir Path dir) throws IOException {
        Path notJson = Files.createDirectories(dir.resolve("a"));
        Files.writeString(notJson.resolve("tokenizer.json"), "{\"model\": ");
        var e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(notJson));
        assertTrue(e.getMessage().contains("tokenizer.json") && e.getMessage().contains("not valid JSON"), e.getMessage());

        Path noModel = Files.createDirectories(dir.resolve("b"));
        Files.writeString(noModel.resolve("tokenizer.json"), "{\"version\": \"1.0\"}");
        e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(noModel));
        assertTrue(e.getMessage().contains("'model'"), e.getMessage());

        // a complete, valid tokenizer.json without any BOS candidate: no config, no template, no <|endoftext|>
        Path noBos = Files.createDirectories(dir.resolve("c0"));
        Files.writeString(noBos.resolve("tokenizer.json"), tinyBpe("\"a b\""));
        e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(noBos));
        assertTrue(e.getMessage().contains("no BOS token") && e.getMessage().contains("'bos_token'"), e.getMessage());
        // the same with a bos_token given as an AddedToken object: it opens
        Files.writeString(noBos.resolve("tokenizer_config.json"), "{\"bos_token\": {\"content\": \"ab\", \"special\": true}}");
        try (HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(noBos)) {
            assertEquals("ab", tok.bosString());
            assertEquals(2, tok.bosId());
            assertEquals(2, tok.padId(), "no pad or eos token: BOS pads");
            assertArrayEquals(new long[] {2, 0}, tok.encode("aba"));
        }
        // the same file with a merge of a token the vocabulary lacks: the library refuses it
        Path badMerges = Files.createDirectories(dir.resolve("c"));
        Files.writeString(badMerges.resolve("tokenizer.json"), tinyBpe("\"a c\""));
        e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(badMerges));
        assertTrue(e.getMessage().contains("tokenizer.json") && e.getMessage().contains("cannot read"), e.getMessage());

        Path badBos = Files.createDirectories(dir.resolve("d"));
        copyTokenizer(resource("families/mistral/model"), badBos);
        Files.writeString(badBos.resolve("tokenizer_config.json"), "{\"bos_token\": \"<|im_start|>\"}");
        e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(badBos));
        assertTrue(e.getMessage().contains("tokenizer_config.json: field 'bos_token'")
            && e.getMessage().contains("<|im_start|>"), e.getMessage());

        Path badFlag = Files.createDirectories(dir.resolve("e"));
        copyTokenizer(resource("families/mistral/model"), badFlag);
        Files.writeString(badFlag.resolve("tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"add_bos_token\": \"yes\"}");
        e = assertThrows(IllegalArgumentException.class, () -> HuggingFaceTokenizer.open(badFlag));
        assertTrue(e.getMessage().contains("'add_bos_token'"), e.getMessage());
    }

    @Test
    void decodeChecksIdsAndClosedTokenizerRefusesWork() throws IOException {
        HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(resource("families/gemma2/model"));
        var e = assertThrows(IllegalArgumentException.class, () -> tok.decode(new long[] {3, 620}));
        assertTrue(e.getMessage().contains("620") && e.getMessage().contains("index 1"), e.getMessage());
        tok.close();
        tok.close();  // idempotent
        var closed = assertThrows(IllegalStateException.class, () -> tok.encode("When"));
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }

    @Test
    void concurrentEncodingGivesTheSameIds() throws Exception {
        List<String> texts = new ArrayList<>(datasetStrings()).subList(0, 400);
        List<long[]> expected = new ArrayList<>();
        for (String t : texts) expected.add(gpt2.encode(t));
        var pool = java.util.concurrent.Executors.newFixedThreadPool(4);
        try {
            List<java.util.concurrent.Future<List<long[]>>> runs = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                runs.add(pool.submit(() -> {
                    List<long[]> out = new ArrayList<>();
                    for (String t : texts) out.add(gpt2.encode(t));
                    return out;
                }));
            }
            for (var run : runs) {
                List<long[]> got = run.get();
                for (int i = 0; i < texts.size(); i++) assertArrayEquals(expected.get(i), got.get(i), texts.get(i));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    /** A complete BPE tokenizer.json over {a, b, ab} with the given merge. */
    private static String tinyBpe(String merge) {
        return "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\"normalizer\":null,"
            + "\"pre_tokenizer\":null,\"post_processor\":null,\"decoder\":null,\"model\":{\"type\":\"BPE\",\"dropout\":null,"
            + "\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,"
            + "\"byte_fallback\":false,\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[" + merge + "]}}";
    }

    private static void copyTokenizer(Path from, Path to) throws IOException {
        Files.copy(from.resolve("tokenizer.json"), to.resolve("tokenizer.json"));
    }

    private static long[] ids(JsonNode array) {
        long[] out = new long[array.size()];
        for (int i = 0; i < out.length; i++) out[i] = array.get(i).asLong();
        return out;
    }
}
