package org.autocircuit.bench;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.concurrent.TimeUnit;
import org.autocircuit.algorithms.Acdc;
import org.autocircuit.algorithms.PruneRun;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.data.PromptPairBatch;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * W4 / W4c (README): ACDC on the 2-layer fixture model, the first train batch (8 prompts) of ioi-32.json,
 * τ = 1e-3, KL divergence, on the token graph (seq_len 15, 1,650 edges) and the component graph (110 edges).
 * AutoCircuit takes 28.0 s (W4) and 1.89 s (W4c) on this kind of machine.
 *
 * <p>Setup first runs ACDC with AutoCircuit's recorded visit order and checks the kept edges against the golden
 * file (src/test/resources/fixtures/golden/acdc_{token,component}.json, τ = 1e-3), and checks that the library's
 * own order (the one timed) gives the same scores on both paths.
 * {@code path=fast} is the default (skipped and batched trials), {@code path=sequential} times one forward pass per edge
 * restarted at its block, which is AutoCircuit's own algorithm.
 *
 * <pre>flock /work/heavy.lock benchmarks/run AcdcBenchmark</pre>
 * Run from the repository root (it reads the fixture model and golden files from there).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0",
    "-Dorg.bytedeco.javacpp.maxBytes=0"})
@Warmup(iterations = 1)
@Measurement(iterations = 3)
public class AcdcBenchmark {
    @Param({"token", "component"})
    public String graph;

    @Param({"fast", "sequential"})
    public String path;

    /** The edge-patching kernels: the plain-libtorch reference or the native ones (checked against the golden edges). */
    @Param({"reference", "native"})
    public String kernels;

    private PatchableModel model;
    private List<PromptPairBatch> train;
    private Acdc.Options options;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        Path root = Path.of(System.getProperty("autocircuit.root", "."));
        Integer seqLen = graph.equals("token") ? 15 : null;
        model = PatchableModel.of(HookedTransformer.fromPretrained(root.resolve("datasets/models/gpt2-tiny-random")),
            true, OutputSlice.LAST_SEQ, seqLen, true, Gpt2SmallWorkload.kernels(kernels));
        LoaderOptions loader = LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(16, 16)
            .returnSeqLength(true).tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build();
        train = Datasets.load(root.resolve("src/test/resources/fixtures/datasets/ioi-32.json"), loader,
            new Gpt2Tokenizer()).train().batches();
        options = Acdc.Options.of(List.of(1e-3), Acdc.Faithfulness.KL_DIV);

        JsonNode golden = new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature())
            .readTree(Files.readString(root.resolve("src/test/resources/fixtures/golden/acdc_" + graph + ".json")));
        JsonNode run = null;
        for (JsonNode r : golden.get("runs")) {
            if (r.get("taus").size() == 1 && r.get("taus").get(0).asDouble() == 1e-3) run = r;
        }
        List<String> expected = new ArrayList<>();
        for (JsonNode e : run.get("kept_edges")) {
            expected.add(Acdc.edgeKey(e.get(1).asText(), e.get(0).isNull() ? OptionalInt.empty() : OptionalInt.of(e.get(0).asInt())));
        }
        expected.sort(null);
        List<String> order = new ArrayList<>();
        for (JsonNode e : golden.get("edge_visit_order")) {
            JsonNode s = e.get("seq_idx");
            order.add(Acdc.edgeKey(e.get("name").asText(), s.isNull() ? OptionalInt.empty() : OptionalInt.of(s.asInt())));
        }
        List<String> kept = Acdc.keptEdges(Acdc.scores(PruneRun.of(model, train), options.withVisitOrder(order)));
        if (!kept.equals(expected)) {
            throw new IllegalStateException("ACDC " + graph + " kept " + kept + ", AutoCircuit kept " + expected);
        }
        float[] fast = Acdc.scores(PruneRun.of(model, train), options).flat();
        float[] sequential = Acdc.scores(PruneRun.of(model, train), options, null, 1, false).flat();
        if (!java.util.Arrays.equals(fast, sequential)) {
            throw new IllegalStateException("ACDC " + graph + ": the fast path's scores differ from the sequential path's");
        }
    }

    @Benchmark
    public PruneScores acdc() {
        return path.equals("fast")
            ? Acdc.scores(PruneRun.of(model, train), options)
            : Acdc.scores(PruneRun.of(model, train), options, null, 1, false);
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        model.close();
    }
}
