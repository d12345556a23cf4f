package org.autocircuit.tasks.generators;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.tasks.RawPromptPair;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class DatasetGeneratorsTest {

    private static final Gpt2Tokenizer TOK = new Gpt2Tokenizer();

    /** The committed files: name, generator, prompt count, seed (as docs/tasks.md says). */
    static Stream<Arguments> committed() {
        return Stream.of(
            Arguments.of("ioi.json", new IoiGenerator(), 400, 1L),
            Arguments.of("greater-than.json", new GreaterThanGenerator(), 256, 1L),
            Arguments.of("docstring.json", new DocstringGenerator(), 512, 1L));
    }

    static Stream<DatasetGenerator> generators() {
        return Stream.of(new IoiGenerator(), new IoiGenerator("mixed"), new IoiGenerator("abba:7"),
            new IoiGenerator("baba:14"), new GreaterThanGenerator(), new DocstringGenerator());
    }

    private static long[] ids(JsonNode text) {
        return TOK.encode(text.asText());
    }

    @ParameterizedTest
    @MethodSource("generators")
    void deterministicPerSeed(DatasetGenerator g) {
        assertEquals(g.generate(20, 5), g.generate(20, 5));
        assertNotEquals(g.generate(20, 5).prompts(), g.generate(20, 6).prompts());
    }

    @ParameterizedTest
    @MethodSource("generators")
    void answersAreSingleTokensAndCorruptHasTheCleanLength(DatasetGenerator g) {
        DatasetFile f = g.generate(200, 3);
        int len = -1;
        for (RawPromptPair p : f.prompts()) {
            long[] clean = ids(p.clean());
            assertEquals(clean.length, ids(p.corrupt()).length, p.clean() + " / " + p.corrupt());
            if (!f.wordIdxs().isEmpty()) {
                // One layout for every prompt, which word_idxs and token circuits rely on.
                if (len < 0) len = clean.length;
                assertEquals(len, clean.length, p.clean().asText());
                assertEquals(f.seqLabels().size(), clean.length);
            }
            assertFalse(p.answers().isEmpty());
            for (JsonNode a : p.answers()) assertEquals(1, ids(a).length, "answer " + a + " of " + p.clean());
            for (JsonNode a : p.wrongAnswers()) assertEquals(1, ids(a).length, "wrong answer " + a + " of " + p.clean());
            for (JsonNode a : p.answers()) {
                for (JsonNode w : p.wrongAnswers()) assertNotEquals(a.asText(), w.asText(), p.clean().asText());
            }
        }
    }

    @Test
    void ioiWordIdxsPointAtTheNames() {
        for (String template : List.of("vanilla", "baba:0", "abba:13")) {
            DatasetFile f = new IoiGenerator(template).generate(50, 9);
            Map<String, Integer> w = f.wordIdxs();
            for (RawPromptPair p : f.prompts()) {
                long[] clean = ids(p.clean());
                long io = TOK.encode(p.answers().get(0).asText())[0];
                long s = TOK.encode(p.wrongAnswers().get(0).asText())[0];
                assertEquals(io, clean[w.get("IO")], template + ": " + p.clean());
                assertEquals(s, clean[w.get("S1")], template + ": " + p.clean());
                assertEquals(s, clean[w.get("S2")], template + ": " + p.clean());
                assertEquals(clean.length - 1, (int) w.get("end"));
                // ABC corrupt: all three names differ from the clean ones, and S2 differs from S1.
                long[] bad = ids(p.corrupt());
                assertNotEquals(bad[w.get("S1")], bad[w.get("S2")]);
                for (String k : List.of("IO", "S1", "S2")) {
                    assertNotEquals(io, bad[w.get(k)]);
                    assertNotEquals(s, bad[w.get(k)]);
                }
            }
        }
        assertEquals(Map.of("IO", 1, "IO-1", 0, "IO+1", 2, "S1", 3, "S1-1", 2, "S1+1", 4, "S2", 9, "end", 13,
            "starts", 0), new IoiGenerator().generate(1, 0).wordIdxs(), "AutoCircuit's vanilla word_idxs");
    }

    @Test
    void greaterThanAnswersSplitAtTheYear() {
        DatasetFile f = new GreaterThanGenerator().generate(100, 2);
        for (RawPromptPair p : f.prompts()) {
            String clean = p.clean().asText();
            int yy = Integer.parseInt(clean.substring(clean.indexOf("year ") + 7, clean.indexOf("year ") + 9));
            assertTrue(yy >= 2 && yy <= 98, clean);
            assertEquals(99 - yy, p.answers().size(), clean);
            assertEquals(yy + 1, p.wrongAnswers().size(), clean);
            assertEquals(String.format("%02d", yy + 1), p.answers().get(0).asText());
            assertTrue(p.corrupt().asText().contains(clean.substring(clean.indexOf("year ") + 5, clean.indexOf("year ") + 7)
                + "01 to"), p.corrupt().asText());
            long[] ids = ids(p.clean());
            assertEquals(TOK.encode(String.format("%02d", yy))[0], ids[f.wordIdxs().get("YY")]);
        }
    }

    @Test
    void docstringWordIdxsPointAtTheParameters() {
        DatasetFile f = new DocstringGenerator().generate(50, 4);
        Map<String, Integer> w = f.wordIdxs();
        for (RawPromptPair p : f.prompts()) {
            long[] clean = ids(p.clean());
            long c = TOK.encode(p.answers().get(0).asText())[0];
            long a = TOK.encode(p.wrongAnswers().get(0).asText())[0];
            long b = TOK.encode(p.wrongAnswers().get(1).asText())[0];
            assertEquals(c, clean[w.get("C_def")]);
            assertEquals(a, clean[w.get("A_def")]);
            assertEquals(a, clean[w.get("A_doc")]);
            assertEquals(b, clean[w.get("B_def")]);
            assertEquals(b, clean[w.get("B_doc")]);
            assertEquals(clean.length - 1, (int) w.get("param_3"));
            assertEquals("param", TOK.decode(new long[] {clean[w.get("param_2")]}));
            // The answer appears nowhere in the corrupt prompt.
            assertFalse(Arrays.stream(ids(p.corrupt())).anyMatch(id -> id == c), p.corrupt().asText());
        }
    }

    @ParameterizedTest
    @MethodSource("committed")
    void committedFilesAreTheGeneratorOutput(String name, DatasetGenerator g, int n, long seed, @TempDir Path tmp)
            throws IOException {
        Path committed = Path.of("datasets").resolve(name);
        assertTrue(Files.isRegularFile(committed), committed + " is missing");
        Path fresh = tmp.resolve(name);
        Datasets.write(fresh, g.generate(n, seed));
        assertEquals(Files.readString(fresh), Files.readString(committed),
            committed + " differs from `autocircuit generate " + g.key() + " --n " + n + " --seed " + seed + "`");
    }

    @ParameterizedTest
    @MethodSource("committed")
    void committedFilesLoadAsTokenCircuits(String name, DatasetGenerator g, int n, long seed) throws IOException {
        LoaderOptions opts = LoaderOptions.builder().batchSize(8).trainTestSize(16, 16).returnSeqLength(true)
            .tailDivergence(true).build();
        Datasets.LoadedDatasets d = Datasets.load(Path.of("datasets").resolve(name), opts, TOK);
        DatasetFile f = Datasets.readFile(Path.of("datasets").resolve(name));
        int promptLen = TOK.encode(f.prompts().get(0).clean().asText()).length;
        // BOS + prompt, minus the shared prefix cut by tail divergence (the first word that differs).
        assertEquals(promptLen + 1 - d.train().divergeIdx(), d.train().seqLen().getAsInt());
        assertTrue(d.train().divergeIdx() > 0);
        assertEquals(2, d.train().size());
    }

    @Test
    void badArgumentsAreNamed() {
        assertThrows(IllegalArgumentException.class, () -> new IoiGenerator("baba:15"));
        assertThrows(IllegalArgumentException.class, () -> new IoiGenerator("abc"));
        assertThrows(IllegalArgumentException.class, () -> new GreaterThanGenerator().generate(0, 1));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DatasetGenerators.byKey("sports"));
        assertTrue(e.getMessage().contains("ioi") && e.getMessage().contains("docstring"), e.getMessage());
        assertArrayEquals(new String[] {"ioi", "greater-than", "docstring"},
            DatasetGenerators.all().stream().map(DatasetGenerator::key).toArray());
    }
}
