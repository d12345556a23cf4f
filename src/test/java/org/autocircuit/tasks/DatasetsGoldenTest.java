package org.autocircuit.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The loader and GPT-2 tokenizer against the token ids AutoCircuit itself produced for the IOI fixture
 * ({@code fixtures/golden/clean_logits.json}: batch 8, train_test_size (16, 16), prepend_bos,
 * return_seq_length, shuffle False).
 */
@Tag("golden")
class DatasetsGoldenTest {
    static Path resource(String name) throws Exception {
        return Path.of(DatasetsGoldenTest.class.getResource("/fixtures/" + name).toURI());
    }

    static LoaderOptions goldenOptions() {
        return LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(16, 16).returnSeqLength(true)
            .tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build();
    }

    @Test
    void batchesMatchAutoCircuit() throws Exception {
        JsonNode golden = new ObjectMapper().readTree(resource("golden/clean_logits.json").toFile());
        JsonNode header = golden.get("header").get("load_datasets_from_json");
        assertEquals(8, header.get("batch_size").asInt());
        assertEquals(16, header.get("train_test_size").get(0).asInt());
        assertTrue(header.get("return_seq_length").asBoolean());

        Datasets.LoadedDatasets data = Datasets.load(resource("datasets/ioi-32.json"), goldenOptions(), new Gpt2Tokenizer());
        for (String split : List.of("train", "test")) {
            PromptDataLoader loader = split.equals("train") ? data.train() : data.test();
            JsonNode batches = golden.get(split).get("batches");
            assertEquals(batches.size(), loader.size(), split);
            assertEquals(8, loader.batchSize());
            assertEquals(16, loader.nPrompts());
            assertEquals(OptionalInt.of(15), loader.seqLen());
            assertEquals(0, loader.divergeIdx());
            assertTrue(loader.kvPrefix().isEmpty());
            for (int b = 0; b < batches.size(); b++) {
                PromptPairBatch batch = loader.batches().get(b);
                JsonNode g = batches.get(b);
                String at = split + " batch " + b;
                assertTensor(g.get("clean"), batch.clean(), at + " clean");
                assertTensor(g.get("corrupt"), batch.corrupt(), at + " corrupt");
                assertTrue(batch.answers() instanceof Answers.Stacked, at);
                assertTensor(g.get("answers"), ((Answers.Stacked) batch.answers()).values(), at + " answers");
                assertTensor(g.get("wrong_answers"), ((Answers.Stacked) batch.wrongAnswers()).values(), at + " wrong");
                assertNull(batch.cleanPadding(), at);
                assertNull(batch.corruptPadding(), at);
                assertEquals(2, batch.batchDivergeIdx(), at + ": IOI clean and corrupt differ first at the IO name");
            }
        }
        assertNotEquals(data.train().batches().get(0).key(), data.train().batches().get(1).key());
    }

    @Test
    void labelsAndWordIdxsAreShiftedForBos() throws Exception {
        PromptDataLoader train = Datasets.load(resource("datasets/ioi-32.json"), goldenOptions(), new Gpt2Tokenizer()).train();
        assertEquals(15, train.seqLabels().size());
        assertEquals(List.of("<|BOS|>", "When", "Mary"), train.seqLabels().subList(0, 3));
        assertEquals(Map.of("IO", 2, "IO-1", 1, "IO+1", 3, "S1", 4, "S1-1", 3, "S1+1", 5, "S2", 10, "end", 14,
            "starts", 1, "punct", 9), train.wordIdxs());
    }

    @Test
    void loadingTwiceGivesEqualBatchesAndKeys() throws Exception {
        var a = Datasets.load(resource("datasets/ioi-32.json"), goldenOptions(), new Gpt2Tokenizer());
        var b = Datasets.load(resource("datasets/ioi-32.json"), goldenOptions(), new Gpt2Tokenizer());
        assertEquals(a.train().batches(), b.train().batches());
        assertEquals(a.test().batches(), b.test().batches());
    }

    static void assertTensor(JsonNode expected, HostTensor actual, String what) {
        assertEquals(HostTensor.DType.INT64, actual.dtype(), what);
        long[] shape = actual.shape();
        assertEquals(2, shape.length, what);
        assertEquals(expected.size(), shape[0], what);
        long[] values = actual.longs();
        int cols = (int) shape[1];
        for (int r = 0; r < expected.size(); r++) {
            long[] row = new long[expected.get(r).size()];
            for (int c = 0; c < row.length; c++) row[c] = expected.get(r).get(c).asLong();
            long[] got = java.util.Arrays.copyOfRange(values, r * cols, (r + 1) * cols);
            assertArrayEquals(row, got, what + " row " + r);
        }
    }
}
