package org.autocircuit.testing;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.tasks.Tokenizers;
import org.junit.jupiter.params.provider.Arguments;

/**
 * One folder of AutoCircuit golden files with the model and prompts they were made from. Everything a golden test
 * needs to know about the fixture (weight processing, loader options, graph options per graph kind, sequence
 * length, shapes and counts) is read from the golden files' headers, so that every golden test runs unchanged on
 * every fixture in {@link #all()}; a new fixture folder (another model family, another graph layout) is one line
 * there.
 *
 * @param name      how test names show the fixture
 * @param goldenDir the golden folder, relative to the test resources' {@code fixtures/}
 * @param modelDir  the model folder (Hugging Face format), relative to {@code fixtures/}
 * @param dataset   the dataset JSON, relative to {@code fixtures/}
 */
public record GoldenFixture(String name, String goldenDir, String modelDir, String dataset) {
    // before the fixtures below, which read their headers when the class initialises
    private static final ObjectMapper LENIENT =
        new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature());
    private static final Map<String, JsonNode> CACHE = new ConcurrentHashMap<>();


    /** Processing {@code none}, factorized graph with separate Q/K/V: the primary golden set. */
    public static final GoldenFixture PRIMARY = fromHeader("golden");
    /** TransformerLens's weight processing, as AutoCircuit's {@code load_tl_model} does. */
    public static final GoldenFixture TL_DEFAULT = fromHeader("golden/tl_default");
    /** The unfactorized (node) graph. */
    public static final GoldenFixture NODE = fromHeader("golden/node");
    /** One attention-input destination per head instead of Q, K and V (graph and forward pass only). */
    public static final GoldenFixture COMBINED_QKV = fromHeader("golden/combined_qkv");

    /**
     * A tiny random Llama (grouped-query attention, 4 query / 2 key-value heads, RMSNorm, SwiGLU, rotary; bf16
     * weights), ungrouped graph layout (one K and one V destination per query head, as AutoCircuit builds it).
     */
    public static final GoldenFixture LLAMA = fromHeader("families/llama/golden");
    /** A tiny random GPT-NeoX / Pythia (parallel attention and MLP, partial rotary, untied 50,304-row unembedding). */
    public static final GoldenFixture NEOX = fromHeader("families/neox/golden");

    /** Every golden fixture the golden suite runs on: the GPT-2 fixture's four folders and the other families. */
    public static List<GoldenFixture> all() {
        return List.of(PRIMARY, TL_DEFAULT, NODE, COMBINED_QKV, LLAMA, NEOX);
    }

    /**
     * Whether the fixture is the primary GPT-2 model seen another way (processed weights, another graph layout): its
     * costliest cases repeat the primary's code paths and may go to the slow run.
     */
    public boolean isVariantOfPrimary() {
        return this != PRIMARY && modelDir.equals(PRIMARY.modelDir);
    }

    /** The graph options AutoCircuit used for one graph kind ({@code component}, {@code token}). */
    public record GraphOptions(boolean factorized, boolean separateQkv, Integer seqLen) {}

    /**
     * The fixture of golden folder {@code goldenDir} (relative to {@code fixtures/}): model folder and dataset are
     * the paths the header of its {@code graph.json} records, relative to {@code fixtures/} once a leading
     * {@code fixtures/} or {@code reference/} (where the generating script kept them) is dropped; e.g.
     * {@code fixtures/models/gpt2-tiny-random} or {@code families/llama/model}.
     */
    public static GoldenFixture fromHeader(String goldenDir) {
        JsonNode header = read(goldenDir + "/graph.json").get("header");
        // golden -> primary, golden/node -> node, families/llama/golden -> llama
        String name = goldenDir.equals("golden") ? "primary"
            : goldenDir.replaceFirst("^golden/", "").replaceFirst("^families/", "").replaceFirst("/golden$", "")
                .replace('/', '-');
        return new GoldenFixture(name, goldenDir, relative(header.get("model").asText()),
            relative(header.get("dataset").asText()));
    }

    private static String relative(String recorded) {
        return recorded.replaceFirst("^(fixtures|reference)/", "");
    }

    @Override
    public String toString() {
        return name;
    }

    /** Whether the fixture has golden file {@code file}. */
    public boolean has(String file) {
        return GoldenFixture.class.getResource("/fixtures/" + goldenDir + "/" + file) != null;
    }

    /** Golden file {@code file} (a bare {@code Infinity}, as ACDC's files write +∞, is accepted). */
    public JsonNode golden(String file) {
        return read(goldenDir + "/" + file);
    }

    /** The header of graph.json, which every golden file of the folder shares. */
    public JsonNode header() {
        return golden("graph.json").get("header");
    }

    /** The graph kinds of the fixture, in graph.json's order (e.g. component, token). */
    public List<String> graphKinds() {
        List<String> kinds = new ArrayList<>();
        golden("graph.json").fieldNames().forEachRemaining(k -> {
            if (!k.equals("header")) kinds.add(k);
        });
        return kinds;
    }

    public GraphOptions graph(String kind) {
        JsonNode g = header().get("graphs").get(kind);
        if (g == null) throw new IllegalArgumentException(goldenDir + "/graph.json header has no graph '" + kind + "'");
        if (!g.get("slice_output").asText().equals("last_seq")) {
            throw new IllegalArgumentException(goldenDir + ": slice_output " + g.get("slice_output") + " is not last_seq");
        }
        JsonNode seq = g.get("seq_len");
        return new GraphOptions(g.get("factorized").asBoolean(), g.get("separate_qkv").asBoolean(),
            seq == null || seq.isNull() ? null : seq.asInt());
    }

    /** The TransformerLens weight processing of the header: all four flags off ({@code none}) or on ({@code tl}). */
    public WeightProcessing weightProcessing() {
        JsonNode p = header().get("transformer_lens_weight_processing");
        boolean[] flags = {p.get("fold_ln").asBoolean(), p.get("center_writing_weights").asBoolean(),
            p.get("center_unembed").asBoolean(), p.get("fold_value_biases").asBoolean()};
        boolean all = true, none = true;
        for (boolean f : flags) {
            all &= f;
            none &= !f;
        }
        if (p.path("refactor_factored_attn_matrices").asBoolean(false) || !(all || none)) {
            throw new IllegalArgumentException(goldenDir + ": weight processing " + p + " is neither none nor tl");
        }
        return none ? WeightProcessing.NONE : WeightProcessing.TL;
    }

    /** The loader options of the header's {@code load_datasets_from_json}. */
    public LoaderOptions loaderOptions() {
        JsonNode o = header().get("load_datasets_from_json");
        return LoaderOptions.builder().prependBos(o.get("prepend_bos").asBoolean())
            .batchSize(o.get("batch_size").asInt())
            .trainTestSize(o.get("train_test_size").get(0).asInt(), o.get("train_test_size").get(1).asInt())
            .returnSeqLength(o.get("return_seq_length").asBoolean()).tailDivergence(o.get("tail_divergence").asBoolean())
            .shuffle(o.get("shuffle").asBoolean()).randomSeed(o.get("random_seed").asLong()).pad(o.get("pad").asBoolean())
            .build();
    }

    public Path modelPath() {
        return Fixtures.resource(modelDir);
    }

    /** The model, with the fixture's weight processing. */
    public HookedTransformer model() {
        try {
            return HookedTransformer.fromPretrained(modelPath(), weightProcessing());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The dataset, tokenized as AutoCircuit tokenized it: by the model folder's own tokenizer, or, for the family
     * folders that hold none (their goldens were made with GPT-2's tokenizer, the fixtures README says), GPT-2's.
     * The golden tests check the token ids against the golden files, so a wrong choice fails there.
     */
    public Datasets.LoadedDatasets data() {
        try {
            boolean ownTokenizer = java.nio.file.Files.exists(modelPath().resolve("tokenizer.json"))
                || java.nio.file.Files.exists(modelPath().resolve("vocab.txt"))
                || java.nio.file.Files.exists(modelPath().resolve("vocab.json"));
            return Datasets.load(Fixtures.resource(dataset), loaderOptions(),
                ownTokenizer ? Tokenizers.forModel(modelPath()) : new org.autocircuit.tasks.Gpt2Tokenizer());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * The graph of kind {@code kind} as AutoCircuit built it, from the model's config.json alone (no weights loaded;
     * the graph tests check every fixture's graphs this way).
     */
    public Graph buildGraph(String kind) {
        GraphOptions g = graph(kind);
        TransformerShape shape;
        try {
            shape = ModelConfig.fromHuggingFace(modelPath().resolve("config.json")).shape();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return g.factorized() ? Graph.transformerFactorized(shape, g.separateQkv(), g.seqLen())
            : Graph.transformerUnfactorized(shape, g.seqLen());
    }

    /** The patchable model of graph kind {@code kind}, as AutoCircuit built it. */
    public PatchableModel patchable(String kind, Kernels kernels) {
        GraphOptions g = graph(kind);
        return PatchableModel.of(model(), g.factorized(), OutputSlice.LAST_SEQ, g.seqLen(), g.separateQkv(), kernels);
    }

    /**
     * Arguments (fixture, graph kind, kernel path) for every fixture and graph kind that has the golden file
     * {@code fileTemplate} ({@code {graph}} stands for the kind), on both kernel paths.
     */
    public static Stream<Arguments> casesWithKernels(String fileTemplate) {
        List<Arguments> out = new ArrayList<>();
        for (GoldenFixture f : all()) {
            for (String kind : f.graphKinds()) {
                if (!f.has(fileTemplate.replace("{graph}", kind))) continue;
                for (String path : List.of("reference", "native")) out.add(Arguments.of(f, kind, path));
            }
        }
        return out.stream();
    }

    /** Arguments (fixture, graph kind) for every fixture and graph kind that has {@code fileTemplate}. */
    public static Stream<Arguments> cases(String fileTemplate) {
        List<Arguments> out = new ArrayList<>();
        for (GoldenFixture f : all()) {
            for (String kind : f.graphKinds()) {
                if (f.has(fileTemplate.replace("{graph}", kind))) out.add(Arguments.of(f, kind));
            }
        }
        return out.stream();
    }

    private static JsonNode read(String path) {
        return CACHE.computeIfAbsent(path, p -> {
            try (InputStream in = GoldenFixture.class.getResourceAsStream("/fixtures/" + p)) {
                if (in == null) throw new IllegalStateException("missing test resource fixtures/" + p);
                return LENIENT.readTree(in);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        });
    }
}
