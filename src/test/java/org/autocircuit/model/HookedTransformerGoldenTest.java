package org.autocircuit.model;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.patching.Inputs;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.PromptDataLoader;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** The transformer against AutoCircuit/TransformerLens's own clean logits on every golden fixture (clean_logits.json). */
@Tag("golden")
class HookedTransformerGoldenTest {
    static HookedTransformer model;
    static Datasets.LoadedDatasets data;

    @BeforeAll
    static void load() {
        model = Fixtures.model();
        data = Fixtures.ioi();
    }

    @AfterAll
    static void free() {
        model.close();
    }

    static Stream<GoldenFixture> fixturesWithCleanLogits() {
        return GoldenFixture.all().stream().filter(f -> f.has("clean_logits.json"));
    }

    /**
     * Every fixture's clean_logits.json (with the fixture's weight processing): the prompts' tokens, each prompt's
     * answer and wrong-answer logits, logsumexp, argmax and corrupt logit difference, the first 16 vocabulary
     * logits where recorded, and the split's mean logit differences computed from our logits.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("fixturesWithCleanLogits")
    void cleanLogitsMatchGolden(GoldenFixture fixture) {
        JsonNode golden = fixture.golden("clean_logits.json");
        Datasets.LoadedDatasets data = fixture.data();
        try (HookedTransformer model = fixture.model()) {
            for (String split : List.of("train", "test")) {
                PromptDataLoader loader = split.equals("train") ? data.train() : data.test();
                JsonNode batches = golden.get(split).get("batches");
                assertEquals(batches.size(), loader.size(), split + " batches");
                double sumCleanDiff = 0, sumCorruptDiff = 0;
                for (int b = 0; b < loader.size(); b++) {
                    PromptPairBatch batch = loader.batches().get(b);
                    JsonNode g = batches.get(b);
                    String at = fixture + " " + split + " batch " + b;
                    assertArrayEquals(longs(g.get("clean")), batch.clean().longs(), at + " clean tokens");
                    assertArrayEquals(longs(g.get("corrupt")), batch.corrupt().longs(), at + " corrupt tokens");
                    try (PointerScope scope = new PointerScope()) {
                        Tensor clean = model.forward(Inputs.clean(batch), null, HookPoints.NONE, OutputSlice.LAST_SEQ);
                        Tensor corrupt = model.forward(Inputs.corrupt(batch), null, HookPoints.NONE, OutputSlice.LAST_SEQ);
                        float[] c = HostTensor.of(clean).floats();
                        float[] k = HostTensor.of(corrupt).floats();
                        int vocab = (int) clean.shape()[1];
                        float[] lse = HostTensor.of(clean.logsumexp(new long[] {1}, false)).floats();
                        long[] argmax = HostTensor.of(clean.argmax(new org.bytedeco.pytorch.LongOptional(1), false)).longs();
                        double cleanDiff = 0, corruptDiff = 0;
                        for (int i = 0; i < batch.batchSize(); i++) {
                            int ans = (int) batch.answers().prompt(i).longs()[0];
                            int wrong = (int) batch.wrongAnswers().prompt(i).longs()[0];
                            String p = at + " prompt " + i;
                            assertEquals(g.get("answers").get(i).get(0).asInt(), ans, p + " answer token");
                            assertEquals(g.get("clean_answer_logit").get(i).asDouble(), c[i * vocab + ans], 1e-4, p + " answer logit");
                            assertEquals(g.get("clean_wrong_answer_logit").get(i).asDouble(), c[i * vocab + wrong], 1e-4, p + " wrong logit");
                            assertEquals(g.get("clean_logsumexp").get(i).asDouble(), lse[i], 1e-4, p + " logsumexp");
                            assertEquals(g.get("clean_argmax").get(i).asLong(), argmax[i], p + " argmax");
                            assertEquals(g.get("corrupt_logit_diff_per_prompt").get(i).asDouble(),
                                k[i * vocab + ans] - k[i * vocab + wrong], 1e-4, p + " corrupt logit diff");
                            cleanDiff += c[i * vocab + ans] - c[i * vocab + wrong];
                            corruptDiff += k[i * vocab + ans] - k[i * vocab + wrong];
                            if (g.has("clean_logits_first16_vocab")) {
                                float[] first = new float[16];
                                for (int v = 0; v < 16; v++) first[v] = (float) g.get("clean_logits_first16_vocab").get(i).get(v).asDouble();
                                float[] ours = java.util.Arrays.copyOfRange(c, i * vocab, i * vocab + 16);
                                assertClose(first, ours, 1e-4, 0, p + " first 16 logits");
                            }
                        }
                        sumCleanDiff += cleanDiff / batch.batchSize();
                        sumCorruptDiff += corruptDiff / batch.batchSize();
                    }
                }
                assertEquals(golden.get(split).get("clean_logit_diff").asDouble(), sumCleanDiff / loader.size(), 1e-5,
                    fixture + " " + split + " clean logit diff");
                assertEquals(golden.get(split).get("corrupt_logit_diff").asDouble(), sumCorruptDiff / loader.size(), 1e-5,
                    fixture + " " + split + " corrupt logit diff");
            }
        }
    }

    static long[] longs(JsonNode nested) {
        List<Long> out = new java.util.ArrayList<>();
        flattenLongs(nested, out);
        return out.stream().mapToLong(Long::longValue).toArray();
    }

    private static void flattenLongs(JsonNode n, List<Long> out) {
        if (n.isArray()) n.forEach(c -> flattenLongs(c, out));
        else out.add(n.asLong());
    }

    /** Left padding (TL semantics: masked keys, shifted positions) leaves the last position's logits unchanged. */
    @Test
    void leftPaddingDoesNotChangeTheLastPosition() {
        PromptPairBatch batch = data.train().batches().get(0);
        try (PointerScope scope = new PointerScope()) {
            Tensor tokens = Inputs.clean(batch).narrow(0, 0, 2);                                // [2, seq]
            long seq = tokens.shape()[1];
            Tensor plain = model.forward(tokens, null, HookPoints.NONE, OutputSlice.LAST_SEQ);
            Tensor pads = torch.full(new long[] {2, 3}, new org.bytedeco.pytorch.Scalar(50256L),
                new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long));
            Tensor padded = torch.cat(new TensorVector(pads, tokens), 1);                     // [2, 3 + seq]
            Tensor mask = torch.cat(new TensorVector(torch.zeros(new long[] {2, 3}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long)),
                torch.ones(new long[] {2, seq}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long))), 1);
            Tensor out = model.forward(padded, mask, HookPoints.NONE, OutputSlice.LAST_SEQ);
            assertClose(plain, out, 1e-4, "padded vs unpadded last-position logits");
        }
    }

    /**
     * Hooks that do not observe the attention pattern get libtorch's fused attention, hooks that do get the pattern
     * formed explicitly: the two give the same logits at every position, with left padding (whose fully masked
     * rows both paths set to 0) and without.
     */
    @Test
    void fusedAttentionEqualsThePatternPath() {
        PromptPairBatch batch = data.train().batches().get(0);
        try (PointerScope scope = new PointerScope()) {
            Tensor tokens = Inputs.clean(batch).narrow(0, 0, 4);                                // [4, seq]
            Tensor mask = torch.ones(new long[] {4, tokens.shape()[1]}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long));
            mask.narrow(0, 0, 2).narrow(1, 0, 3).zero_();                                     // two prompts padded by 3
            int[] patterns = {0};
            HookPoints observing = (name, value) -> {
                if (name.endsWith("attn.hook_pattern")) patterns[0]++;
                return value;
            };
            for (Tensor m : new Tensor[] {null, mask}) {
                Tensor fused = model.forward(tokens, m, HookPoints.NONE, OutputSlice.ALL);
                Tensor explicit = model.forward(tokens, m, observing, OutputSlice.ALL);
                assertClose(explicit, fused, 1e-4, (m == null ? "unpadded" : "padded") + " logits, fused vs pattern attention");
            }
            assertEquals(2 * model.config().nLayers(), patterns[0], "the observing hooks saw every block's pattern");
        }
    }

    /** A frozen cache of the shared prefix gives the same logits as running the whole prompt. */
    @Test
    void kvCacheOfAPrefixMatchesTheFullPass() {
        PromptPairBatch batch = data.train().batches().get(0);
        try (PointerScope scope = new PointerScope()) {
            Tensor tokens = Inputs.clean(batch);                                                 // [8, 15]
            Tensor full = model.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);        // [batch, seq, V]
            long seq = tokens.shape()[1];
            int prefix = 2;
            try (KvCache cache = model.buildKvCache(tokens.narrow(1, 0, prefix).contiguous(), null)) {
                Tensor tail = model.forward(tokens.narrow(1, prefix, seq - prefix).contiguous(), null, cache,
                    HookPoints.NONE, OutputSlice.ALL, null);
                assertClose(full.narrow(1, prefix, seq - prefix), tail, 1e-4, "cached tail vs full pass");
            }
        }
    }

    @Test
    void badModelFoldersNameTheProblem(@TempDir Path dir) throws Exception {
        IllegalArgumentException missing = assertThrows(IllegalArgumentException.class,
            () -> HookedTransformer.fromPretrained(dir.resolve("nope")));
        assertTrue(missing.getMessage().contains("nope"), missing.getMessage());

        Path noWeights = Files.createDirectories(dir.resolve("noweights"));
        Files.copy(Fixtures.modelDir().resolve("config.json"), noWeights.resolve("config.json"));
        IllegalArgumentException lacks = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(noWeights));
        assertTrue(lacks.getMessage().contains("model.safetensors"), lacks.getMessage());

        Path unknownArch = Files.createDirectories(dir.resolve("arch"));
        Files.writeString(unknownArch.resolve("config.json"), "{\"architectures\": [\"BloomForCausalLM\"], \"n_embd\": 64}");
        Files.copy(Fixtures.modelDir().resolve("model.safetensors"), unknownArch.resolve("model.safetensors"));
        IllegalArgumentException arch = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(unknownArch));
        assertTrue(arch.getMessage().contains("architectures") && arch.getMessage().contains("GPT2LMHeadModel")
            && arch.getMessage().contains("LlamaForCausalLM"), arch.getMessage());

        Path wrongShape = Files.createDirectories(dir.resolve("shape"));
        String cfg = Files.readString(Fixtures.modelDir().resolve("config.json")).replace("\"n_inner\": 256", "\"n_inner\": 128");
        Files.writeString(wrongShape.resolve("config.json"), cfg);
        Files.copy(Fixtures.modelDir().resolve("model.safetensors"), wrongShape.resolve("model.safetensors"));
        IllegalArgumentException shape = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(wrongShape));
        assertTrue(shape.getMessage().contains("c_fc"), shape.getMessage());

        Path badJson = Files.createDirectories(dir.resolve("json"));
        Files.writeString(badJson.resolve("config.json"), "{not json");
        Files.copy(Fixtures.modelDir().resolve("model.safetensors"), badJson.resolve("model.safetensors"));
        IllegalArgumentException json = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(badJson));
        assertTrue(json.getMessage().contains("config.json"), json.getMessage());
    }

    @Test
    void closedModelRefusesWork() {
        HookedTransformer m = Fixtures.model();
        m.close();
        m.close();
        try (PointerScope scope = new PointerScope()) {
            Tensor t = AbstractTensor.create(new long[] {50256, 1}, 1, 2);
            assertThrows(IllegalStateException.class, () -> m.forward(t, null, HookPoints.NONE, OutputSlice.ALL));
        }
    }
}
