package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class DatasetsTest {
    private static final Tokenizer GPT2 = new Gpt2Tokenizer();

    @TempDir
    Path dir;

    private Path file(String name, String json) throws IOException {
        Path p = dir.resolve(name);
        Files.writeString(p, json);
        return p;
    }

    private static String textPrompt(String clean, String corrupt, String answers, String wrong) {
        return "{\"clean\": \"" + clean + "\", \"corrupt\": \"" + corrupt + "\", \"answers\": " + answers
            + ", \"wrong_answers\": " + wrong + "}";
    }

    private static LoaderOptions.Builder tokOpts(int batch, int train, int test) {
        return LoaderOptions.builder().batchSize(batch).trainTestSize(train, test).shuffle(false);
    }

    private static Path ioi() throws Exception {
        return DatasetsGoldenTest.resource("datasets/ioi-32.json");
    }

    // ---- shuffling ----

    @Test
    void sameSeedGivesIdenticalLoaders() throws Exception {
        LoaderOptions o = tokOpts(4, 16, 8).shuffle(true).randomSeed(0).build();
        var a = Datasets.load(ioi(), o, GPT2);
        var b = Datasets.load(ioi(), o, GPT2);
        assertEquals(a.train().batches(), b.train().batches());
        assertEquals(a.test().batches(), b.test().batches());
    }

    @Test
    void differentSeedsDifferInEveryBatch() throws Exception {
        var a = Datasets.load(ioi(), tokOpts(4, 16, 8).shuffle(true).randomSeed(0).build(), GPT2);
        var b = Datasets.load(ioi(), tokOpts(4, 16, 8).shuffle(true).randomSeed(1).build(), GPT2);
        for (int split = 0; split < 2; split++) {
            PromptDataLoader la = split == 0 ? a.train() : a.test();
            PromptDataLoader lb = split == 0 ? b.train() : b.test();
            for (int i = 0; i < la.size(); i++) {
                PromptPairBatch x = la.batches().get(i);
                PromptPairBatch y = lb.batches().get(i);
                assertNotEquals(x.clean(), y.clean());
                assertNotEquals(x.corrupt(), y.corrupt());
                assertNotEquals(x.answers(), y.answers());
                assertNotEquals(x.wrongAnswers(), y.wrongAnswers());
                assertNotEquals(x.key(), y.key());
            }
        }
    }

    @Test
    void shuffledSplitMatchesCPython() throws Exception {
        // random.seed(42); l = list(range(32)); random.shuffle(l)  (CPython 3.11)
        int[] order = {26, 5, 10, 15, 25, 11, 22, 6, 19, 12, 16, 9, 28, 14, 24, 20, 30, 1, 13, 18, 2, 17, 21, 3, 29, 4,
            27, 31, 8, 23, 0, 7};
        DatasetFile f = Datasets.readFile(ioi());
        var data = Datasets.load(ioi(), tokOpts(8, 16, 16).shuffle(true).randomSeed(42).build(), GPT2);
        for (int i = 0; i < 32; i++) {
            PromptDataLoader l = i < 16 ? data.train() : data.test();
            int j = i % 16;
            HostTensor row = l.batches().get(j / 8).clean().row(j % 8);
            long[] expected = GPT2.encode("<|endoftext|>" + f.prompts().get(order[i]).clean().textValue());
            assertArrayEquals(expected, row.longs(), "position " + i);
        }
    }

    // ---- tokenized loading ----

    @Test
    void leftPadsToTheLongestPromptAndMasksPadding() throws Exception {
        Path p = file("pad.json", "{\"prompts\": ["
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + ","
            + textPrompt("I really like", "I really hate", "[\" cheese\"]", "[\" bees\"]") + ","
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + ","
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + "]}");
        var data = Datasets.load(p, tokOpts(2, 2, 2).build(), GPT2);
        PromptPairBatch b = data.train().batches().get(0);
        assertArrayEquals(new long[] {2, 4}, b.clean().shape());
        long[] likeIds = GPT2.encode("I like");
        long[] reallyIds = GPT2.encode(" really");
        assertArrayEquals(new long[] {50256, 50256, likeIds[0], likeIds[1], 50256, likeIds[0], reallyIds[0], likeIds[1]},
            b.clean().longs());
        assertArrayEquals(new long[] {0, 1, 1, 1, 1, 1, 1, 1}, b.cleanPadding().longs());
        assertArrayEquals(new long[] {0, 1, 1, 1, 1, 1, 1, 1}, b.corruptPadding().longs());
        assertTrue(data.train().seqLen().isEmpty());
        // the second batch is padded too (to the common length 4), since all prompts share one length
        PromptPairBatch t = data.test().batches().get(0);
        assertArrayEquals(new long[] {2, 4}, t.clean().shape());
        assertNotNull(t.cleanPadding());
    }

    @Test
    void cleanAndCorruptArePaddedToOneLength() throws Exception {
        Path p = file("pad2.json", "{\"prompts\": [" + textPrompt("I like", "I really do hate", "[\" cheese\"]", "[\" bees\"]")
            + "]}");
        PromptPairBatch b = Datasets.load(p, tokOpts(1, 1, 0).build(), GPT2).train().batches().get(0);
        assertArrayEquals(b.clean().shape(), b.corrupt().shape());
        assertNotNull(b.cleanPadding());
        assertNull(b.corruptPadding());
    }

    @Test
    void returnSeqLengthRefusesPadding() throws Exception {
        Path p = file("pad3.json", "{\"prompts\": [" + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + ","
            + textPrompt("I really like", "I really hate", "[\" cheese\"]", "[\" bees\"]") + "]}");
        var e = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(p, tokOpts(1, 2, 0).returnSeqLength(true).build(), GPT2));
        assertTrue(e.getMessage().contains("pad3.json") && e.getMessage().contains("prompts[0].clean")
            && e.getMessage().contains("returnSeqLength"), e.getMessage());
        var e2 = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(p, tokOpts(1, 2, 0).pad(false).build(), GPT2));
        assertTrue(e2.getMessage().contains("pad=true"), e2.getMessage());
    }

    @Test
    void noBosMeansNoShift() throws Exception {
        Path p = file("nobos.json", "{\"seq_labels\": [\"I\", \"like\"], \"word_idxs\": {\"end\": 1}, \"prompts\": ["
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + "]}");
        PromptDataLoader l = Datasets.load(p, tokOpts(1, 1, 0).prependBos(false).returnSeqLength(true).build(), GPT2).train();
        assertArrayEquals(GPT2.encode("I like"), l.batches().get(0).clean().longs());
        assertEquals(List.of("I", "like"), l.seqLabels());
        assertEquals(Map.of("end", 1), l.wordIdxs());
        assertEquals(OptionalInt.of(2), l.seqLen());
    }

    @Test
    void raggedAnswersStayPerPrompt() throws Exception {
        Path p = file("ragged.json", "{\"prompts\": ["
            + textPrompt("I like", "I hate", "[\" cheese\", \" bread\"]", "[\" bees\"]") + ","
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\", \" dogs\", \" ants\"]") + "]}");
        PromptPairBatch b = Datasets.load(p, tokOpts(2, 2, 0).build(), GPT2).train().batches().get(0);
        Answers.Ragged a = assertInstanceOf(Answers.Ragged.class, b.answers());
        assertArrayEquals(new long[] {GPT2.encode(" cheese")[0], GPT2.encode(" bread")[0]}, a.prompt(0).longs());
        assertArrayEquals(new long[] {GPT2.encode(" cheese")[0]}, a.prompt(1).longs());
        Answers.Ragged w = assertInstanceOf(Answers.Ragged.class, b.wrongAnswers());
        assertEquals(3, w.prompt(1).numel());
    }

    @Test
    void tailDivergenceCutsTheCommonPrefix() throws Exception {
        // With BOS every prompt is [BOS, The, cat, sat, on, the, mat]. Clean and corrupt first differ at index 3
        // (sat/ran), 6 (mat/rug), 4 (on/in) and 6, so diverge_idx = 3.
        Path p = file("tail.json", "{\"seq_labels\": [\"The\", \"cat\", \"sat\", \"on\", \"the\", \"mat\"],"
            + "\"word_idxs\": {\"end\": 5},\"prompts\": ["
            + textPrompt("The cat sat on the mat", "The cat ran on the mat", "[\" and\"]", "[\" or\"]") + ","
            + textPrompt("The cat sat on the mat", "The cat sat on the rug", "[\" and\"]", "[\" or\"]") + ","
            + textPrompt("The cat sat on the mat", "The cat sat in the mat", "[\" and\"]", "[\" or\"]") + ","
            + textPrompt("The cat sat on the mat", "The cat sat on the rug", "[\" and\"]", "[\" or\"]") + "]}");
        LoaderOptions base = tokOpts(2, 2, 2).returnSeqLength(true).build();
        var full = Datasets.load(p, base, GPT2);
        var cut = Datasets.load(p, base.toBuilder().tailDivergence(true).build(), GPT2);
        PromptDataLoader t = cut.train();
        assertEquals(3, t.divergeIdx());
        assertEquals(3, cut.test().divergeIdx());
        assertEquals(OptionalInt.of(7), full.train().seqLen());
        assertEquals(OptionalInt.of(4), t.seqLen());
        assertEquals(List.of("sat", "on", "the", "mat"), t.seqLabels());
        assertEquals(Map.of("end", 6), t.wordIdxs(), "word_idxs stay in uncut coordinates");
        for (int split = 0; split < 2; split++) {
            PromptDataLoader f = split == 0 ? full.train() : full.test();
            PromptDataLoader c = split == 0 ? cut.train() : cut.test();
            for (int i = 0; i < f.size(); i++) {
                assertArrayEquals(new long[] {2, 4}, c.batches().get(i).clean().shape());
                for (boolean clean : new boolean[] {true, false}) {
                    long[] fv = (clean ? f.batches().get(i).clean() : f.batches().get(i).corrupt()).longs();
                    long[] cv = (clean ? c.batches().get(i).clean() : c.batches().get(i).corrupt()).longs();
                    for (int r = 0; r < 2; r++) {
                        for (int s = 0; s < 4; s++) assertEquals(fv[r * 7 + 3 + s], cv[r * 4 + s]);
                    }
                }
            }
        }
        // the KV prefix is clean[:batchSize, :diverge_idx] of the kept prompts
        long[] prefix = GPT2.encode("<|endoftext|>The cat");
        assertArrayEquals(new long[] {2, 3}, t.kvPrefix().orElseThrow().shape());
        assertArrayEquals(new long[] {prefix[0], prefix[1], prefix[2], prefix[0], prefix[1], prefix[2]},
            t.kvPrefix().orElseThrow().longs());
        assertTrue(t.kvPrefixPadding().isEmpty());
        assertTrue(full.train().kvPrefix().isEmpty());
        // batch diverge indices are computed on the cut prompts: train rows differ at cut 0 and 3, test at 1 and 3
        assertEquals(0, t.batches().get(0).batchDivergeIdx());
        assertEquals(1, cut.test().batches().get(0).batchDivergeIdx());
        assertEquals(4, full.test().batches().get(0).batchDivergeIdx());
    }

    // ---- models without a tokenizer ----

    private static final String MICRO_PROMPT = "{\"clean\": [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], "
        + "\"corrupt\": [[-1.0, -1.0], [-2.0, -2.0], [-3.0, -3.0]], \"answers\": [1], \"wrong_answers\": [0]}";

    @Test
    void microPromptsBecomeFloatTensors() throws Exception {
        Path p = file("micro.json", "{\"prompts\": [" + String.join(",", java.util.Collections.nCopies(6, MICRO_PROMPT))
            + "]}");
        LoaderOptions o = LoaderOptions.builder().prependBos(false).batchSize(2).trainTestSize(4, 2).shuffle(false).build();
        var data = Datasets.load(p, o, null);
        PromptDataLoader train = data.train();
        assertEquals(2, train.size());
        assertEquals(OptionalInt.of(3), train.seqLen(), "seq_len is set even without returnSeqLength");
        PromptPairBatch b = train.batches().get(0);
        assertEquals(HostTensor.DType.FLOAT32, b.clean().dtype());
        assertArrayEquals(new long[] {2, 3, 2}, b.clean().shape());
        assertArrayEquals(new float[] {1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}, b.clean().floats());
        Answers.Stacked a = assertInstanceOf(Answers.Stacked.class, b.answers());
        assertEquals(HostTensor.DType.INT64, a.values().dtype());
        assertArrayEquals(new long[] {2, 1}, a.values().shape());
        assertArrayEquals(new long[] {1, 1}, a.values().longs());
        assertEquals(0, b.batchDivergeIdx());
        assertNull(b.cleanPadding());
        // identical batches share a key, across loaders too
        assertEquals(b.key(), train.batches().get(1).key());
        assertEquals(b.key(), data.test().batches().get(0).key());
    }

    @Test
    void tracrPromptsBecomeLongTensors() throws Exception {
        Path p = file("tracr.json", "{\"prompts\": ["
            + "{\"clean\": [0, 1, 2, 3], \"corrupt\": [0, 1, 3, 3], \"answers\": [[3], [2], [1]], \"wrong_answers\": [[3], [3], [1]]},"
            + "{\"clean\": [0, 2, 2, 3], \"corrupt\": [0, 1, 2, 3], \"answers\": [[3], [2], [2]], \"wrong_answers\": [[3], [2], [1]]}"
            + "]}");
        LoaderOptions o = LoaderOptions.builder().prependBos(false).batchSize(2).trainTestSize(2, 0).shuffle(false).build();
        var data = Datasets.load(p, o, null);
        PromptPairBatch b = data.train().batches().get(0);
        assertEquals(HostTensor.DType.INT64, b.clean().dtype());
        assertArrayEquals(new long[] {2, 4}, b.clean().shape());
        assertArrayEquals(new long[] {2, 3, 1}, ((Answers.Stacked) b.answers()).values().shape());
        assertEquals(1, b.batchDivergeIdx());
        assertEquals(0, data.test().size(), "the test set may be empty");
        assertEquals(0, data.test().nPrompts());
    }

    @Test
    void untokenizedRejectsBosStringsAndTailDivergence() throws Exception {
        Path micro = file("micro1.json", "{\"prompts\": [" + MICRO_PROMPT + "]}");
        var bos = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(micro, LoaderOptions.builder().batchSize(1).trainTestSize(1, 0).build(), null));
        assertTrue(bos.getMessage().contains("prependBos"), bos.getMessage());
        var tail = assertThrows(IllegalArgumentException.class, () -> Datasets.load(micro,
            LoaderOptions.builder().prependBos(false).tailDivergence(true).batchSize(1).trainTestSize(1, 0).build(), null));
        assertTrue(tail.getMessage().contains("tailDivergence"), tail.getMessage());
        Path text = file("text.json", "{\"prompts\": [" + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + "]}");
        var str = assertThrows(IllegalArgumentException.class, () -> Datasets.load(text,
            LoaderOptions.builder().prependBos(false).batchSize(1).trainTestSize(1, 0).build(), null));
        assertMessage(str, "text.json", "prompts[0].clean", "no tokenizer");
        var num = assertThrows(IllegalArgumentException.class,
            () -> Datasets.load(micro, tokOpts(1, 1, 0).build(), GPT2));
        assertMessage(num, "micro1.json", "prompts[0].clean", "expected a string");
        Path shapes = file("shapes.json", "{\"prompts\": [" + MICRO_PROMPT + ", {\"clean\": [[1.0, 1.0]], "
            + "\"corrupt\": [[1.0, 1.0]], \"answers\": [1], \"wrong_answers\": [0]}]}");
        var sh = assertThrows(IllegalArgumentException.class, () -> Datasets.load(shapes,
            LoaderOptions.builder().prependBos(false).batchSize(1).trainTestSize(2, 0).build(), null));
        assertMessage(sh, "shapes.json", "prompts[1].clean", "one shape");
    }

    // ---- files ----

    @Test
    void laterFilesContributeOnlyPrompts() throws Exception {
        Path a = file("a.json", "{\"word_idxs\": {\"end\": 1}, \"prompts\": ["
            + textPrompt("I like", "I hate", "[\" cheese\"]", "[\" bees\"]") + "]}");
        Path b = file("b.json", "{\"word_idxs\": {\"end\": 7}, \"prompts\": ["
            + textPrompt("You like", "You hate", "[\" bread\"]", "[\" ants\"]") + "]}");
        var data = Datasets.load(List.of(a, b), tokOpts(1, 1, 1).build(), GPT2);
        assertEquals(Map.of("end", 2), data.train().wordIdxs());
        assertArrayEquals(GPT2.encode("<|endoftext|>I like"), data.train().batches().get(0).clean().longs());
        assertArrayEquals(GPT2.encode("<|endoftext|>You like"), data.test().batches().get(0).clean().longs());
    }

    @Test
    void writeThenReadRoundTrips() throws Exception {
        DatasetFile original = Datasets.readFile(ioi());
        Path out = dir.resolve("sub/copy.json");
        Datasets.write(out, original);
        DatasetFile back = Datasets.readFile(out);
        assertEquals(original, back);
        assertEquals(List.of("IO", "IO-1", "IO+1", "S1", "S1-1", "S1+1", "S2", "end", "starts", "punct"),
            new ArrayList<>(back.wordIdxs().keySet()), "word_idxs keep file order");
        try (var files = Files.list(out.getParent())) {
            assertEquals(1, files.count(), "no temporary file is left behind");
        }
        DatasetFile generated = DatasetFile.of(List.of(RawPromptPair.ofText("I like", "I hate", List.of(" cheese"),
            List.of(" bees"))));
        Datasets.write(out, generated);
        assertEquals(generated, Datasets.readFile(out));
        assertFalse(Files.readString(out).contains("seq_labels"));
    }

    @Test
    void droppedRemainderAndCounts() throws Exception {
        var data = Datasets.load(ioi(), tokOpts(5, 12, 4).build(), GPT2);
        assertEquals(2, data.train().size(), "12 prompts in batches of 5: drop_last keeps 2");
        assertEquals(12, data.train().nPrompts());
        assertEquals(0, data.test().size());
        int n = 0;
        for (PromptPairBatch b : data.train()) n += b.batchSize();
        assertEquals(10, n);
        var tuple = Datasets.load(ioi(), tokOpts(1, 8, 4).batchSize(4, 2).build(), GPT2);
        assertEquals(2, tuple.train().size());
        assertEquals(2, tuple.test().size());
        assertEquals(2, tuple.test().batchSize());
    }

    // ---- bad input ----

    @Test
    void invalidJsonNamesTheFile() throws Exception {
        Path p = file("broken.json", "{\"prompts\": [ {\"clean\": \"a\", }");
        var e = assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(p));
        assertMessage(e, "broken.json", "not valid JSON", "line 1");
    }

    @Test
    void missingFieldNamesFileIndexAndField() throws Exception {
        Path p = file("missing.json", "{\"prompts\": [" + textPrompt("a", "b", "[\" c\"]", "[\" d\"]") + ","
            + "{\"clean\": \"a\", \"answers\": [\" c\"], \"wrong_answers\": [\" d\"]}]}");
        var e = assertThrows(IllegalArgumentException.class, () -> Datasets.load(p, tokOpts(1, 1, 0).build(), GPT2));
        assertMessage(e, "missing.json", "prompts[1]", "missing field \"corrupt\"");
    }

    @Test
    void twoTokenAnswerNamesFileIndexFieldAndAnswer() throws Exception {
        Path p = file("answers.json", "{\"prompts\": [" + textPrompt("a", "b", "[\" c\"]", "[\" d\"]") + ","
            + textPrompt("a", "b", "[\" c\"]", "[\" d\", \" Marco Polo\"]") + "]}");
        var e = assertThrows(IllegalArgumentException.class, () -> Datasets.load(p, tokOpts(1, 2, 0).build(), GPT2));
        assertMessage(e, "answers.json", "prompts[1].wrong_answers[1]", "\" Marco Polo\"", "2 tokens", "exactly 1");
    }

    @Test
    void unknownKeysAreRejected() throws Exception {
        Path top = file("top.json", "{\"prompts\": [" + textPrompt("a", "b", "[\" c\"]", "[\" d\"]") + "], \"labels\": []}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(top)),
            "top.json", "unknown key \"labels\"");
        Path inner = file("inner.json", "{\"prompts\": [{\"clean\": \"a\", \"corrupt\": \"b\", \"answers\": [\" c\"], "
            + "\"wrong_answers\": [\" d\"], \"answer\": [\" c\"]}]}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(inner)),
            "inner.json", "prompts[0]", "unknown key \"answer\"");
    }

    @Test
    void emptyPromptsAreRejected() throws Exception {
        Path p = file("empty.json", "{\"prompts\": []}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(p)),
            "empty.json", "\"prompts\" is empty");
        Path none = file("none.json", "{\"seq_labels\": []}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(none)),
            "none.json", "missing field \"prompts\"");
        Path blank = file("blank.json", "");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(blank)), "blank.json", "empty");
        Path emptyText = file("emptytext.json", "{\"prompts\": [" + textPrompt("", "", "[\" c\"]", "[\" d\"]") + "]}");
        assertMessage(assertThrows(IllegalArgumentException.class,
                () -> Datasets.load(emptyText, tokOpts(1, 1, 0).prependBos(false).build(), GPT2)),
            "emptytext.json", "prompts[0].clean", "no tokens");
    }

    @Test
    void badValuesNameTheirField() throws Exception {
        Path mixed = file("mixed.json", "{\"prompts\": [{\"clean\": \"a\", \"corrupt\": [1, 2], \"answers\": [1], "
            + "\"wrong_answers\": [0]}]}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(mixed)), "mixed.json", "prompts[0]");
        Path ragged = file("ragged2.json", "{\"prompts\": [{\"clean\": [[1.0], [2.0, 3.0]], \"corrupt\": [[1.0], [2.0]], "
            + "\"answers\": [1], \"wrong_answers\": [0]}]}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(ragged)),
            "ragged2.json", "prompts[0].clean", "rectangular");
        Path words = file("words.json", "{\"word_idxs\": {\"IO\": \"one\"}, \"prompts\": ["
            + textPrompt("a", "b", "[\" c\"]", "[\" d\"]") + "]}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(words)), "words.json", "word_idxs.IO");
        Path noAnswers = file("noanswers.json", "{\"prompts\": [" + textPrompt("a", "b", "[]", "[\" d\"]") + "]}");
        assertMessage(assertThrows(IllegalArgumentException.class, () -> Datasets.readFile(noAnswers)),
            "noanswers.json", "prompts[0].answers", "empty");
    }

    @Test
    void tooFewPromptsIsAnError() throws Exception {
        var e = assertThrows(IllegalArgumentException.class, () -> Datasets.load(ioi(), tokOpts(8, 32, 8).build(), GPT2));
        assertMessage(e, "ioi-32.json", "32 prompts", "40");
    }

    @Test
    void missingFileIsAnIoException() {
        assertThrows(IOException.class, () -> Datasets.readFile(dir.resolve("nope.json")));
    }

    @Test
    void optionsAreValidated() {
        assertThrows(IllegalArgumentException.class, () -> LoaderOptions.builder().batchSize(0).build());
        assertThrows(IllegalArgumentException.class, () -> LoaderOptions.builder().trainTestSize(-1, 2).build());
        assertThrows(IllegalArgumentException.class, () -> LoaderOptions.builder().trainTestSize(0, 0).build());
        LoaderOptions d = LoaderOptions.builder().build();
        assertEquals(new LoaderOptions(true, 32, 32, 128, 128, false, false, true, 42, true), d);
        assertEquals(d, d.toBuilder().build());
    }

    static void assertMessage(Throwable e, String... parts) {
        for (String part : parts) {
            assertTrue(e.getMessage() != null && e.getMessage().contains(part),
                "message lacks \"" + part + "\": " + e.getMessage());
        }
    }
}
