package org.autocircuit.testing;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.kernels.NativeKernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;

/**
 * The test fixtures (src/test/resources/fixtures, copied from the golden set AutoCircuit produced; see its
 * README): the 2-layer GPT-2-architecture model, the 32 IOI prompts, and the golden JSON files.
 */
public final class Fixtures {
    private Fixtures() {}

    public static Path resource(String path) {
        try {
            var url = Fixtures.class.getResource("/fixtures/" + path);
            if (url == null) throw new IllegalStateException("missing test resource fixtures/" + path);
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The kernels of a parameterised test's path: {@code "reference"}, or {@code "native"}, which, when the native
     * library is unavailable, fails the calling test where this run expects native kernels and skips it, saying why,
     * elsewhere ({@link NativeExpectation}; docs/testing.md lists those skips).
     */
    public static Kernels kernels(String path) {
        if (path.equals("reference")) return Kernels.reference();
        if (!path.equals("native")) throw new IllegalArgumentException("kernel path must be reference or native, got " + path);
        NativeExpectation.requireNativeKernels();
        return NativeKernels.instance();
    }

    public static Path modelDir() {
        return resource("models/gpt2-tiny-random");
    }

    public static HookedTransformer model() {
        try {
            return HookedTransformer.fromPretrained(modelDir());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The golden files' loader options: BOS, batch 8, (16, 16), seq length, no shuffle. */
    public static LoaderOptions ioiOptions() {
        return LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(16, 16)
            .returnSeqLength(true).tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build();
    }

    public static Datasets.LoadedDatasets ioi() {
        try {
            return Datasets.load(resource("datasets/ioi-32.json"), ioiOptions(), new Gpt2Tokenizer());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The 32 mixed-template IOI prompts (15–21 tokens with BOS, left-padded), loaded with the options the padded golden
     * files record in their header ({@code golden/padded/clean_logits.json}: no seq length, otherwise as {@link #ioi()}).
     */
    public static Datasets.LoadedDatasets ioiPadded() {
        JsonNode o = golden("padded/clean_logits.json").get("header").get("load_datasets_from_json");
        LoaderOptions options = LoaderOptions.builder().prependBos(o.get("prepend_bos").asBoolean())
            .batchSize(o.get("batch_size").asInt())
            .trainTestSize(o.get("train_test_size").get(0).asInt(), o.get("train_test_size").get(1).asInt())
            .returnSeqLength(o.get("return_seq_length").asBoolean()).tailDivergence(o.get("tail_divergence").asBoolean())
            .shuffle(o.get("shuffle").asBoolean()).randomSeed(o.get("random_seed").asInt()).pad(o.get("pad").asBoolean())
            .build();
        try {
            return Datasets.load(resource("datasets/ioi-32-padded.json"), options, new Gpt2Tokenizer());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static JsonNode golden(String name) {
        try (InputStream in = Fixtures.class.getResourceAsStream("/fixtures/golden/" + name)) {
            if (in == null) throw new IllegalStateException("missing golden file " + name);
            return new ObjectMapper().readTree(in);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A golden {@code {dest_module: nested list}} prune-score object as PruneScores of {@code graph}. */
    public static PruneScores pruneScores(Graph graph, JsonNode byModule) {
        Map<String, float[]> out = new LinkedHashMap<>();
        byModule.fields().forEachRemaining(e -> {
            java.util.List<Float> flat = new java.util.ArrayList<>();
            flatten(e.getValue(), flat);
            float[] f = new float[flat.size()];
            for (int i = 0; i < f.length; i++) f[i] = flat.get(i);
            out.put(e.getKey(), f);
        });
        return PruneScores.of(graph, out);
    }

    private static void flatten(JsonNode n, java.util.List<Float> out) {
        if (n.isArray()) {
            for (JsonNode c : n) flatten(c, out);
        } else if (n.isTextual()) {
            out.add(n.asText().contains("-") ? Float.NEGATIVE_INFINITY : Float.POSITIVE_INFINITY);
        } else {
            out.add((float) n.asDouble());
        }
    }
}
