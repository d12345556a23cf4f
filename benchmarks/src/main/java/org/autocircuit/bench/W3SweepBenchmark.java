package org.autocircuit.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.KernelSelection;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
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
import org.openjdk.jmh.annotations.Timeout;
import org.openjdk.jmh.annotations.Warmup;

/**
 * W3 (README): run_circuits on a GPT-2-small-shaped model with random weights (12 layers, d_model 768,
 * 12 heads, d_mlp 3072, vocab 50,257; factorized graph with Q/K/V split, 32,491 edges), the 32 IOI prompts of
 * datasets/ioi-32.json in batches of 16, edge counts [1, 10, 100, 1000, 10000, all], EDGE_PATCH, resample
 * ablation, edges ranked by EAP scores (W1's, computed once in setup on the reference path so both paths measure
 * the same circuits). {@code path} picks the edge-patching kernels: AutoCircuit took 48.2 s for this on a machine
 * of this kind.
 *
 * <p>Setup first runs the sweep on the reference path and, for the native path, checks every circuit's logits
 * against it (max |diff| within 1e-3) before anything is timed.
 *
 * <pre>flock /work/heavy.lock benchmarks/run W3</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx3g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0",
    "-Dorg.bytedeco.javacpp.maxBytes=0"})
@Warmup(iterations = 1)
@Measurement(iterations = 3)
// a reference sweep takes minutes on a loaded 2-core machine; JMH's default limit is 10 minutes per iteration
@Timeout(time = 40, timeUnit = TimeUnit.MINUTES)
public class W3SweepBenchmark {
    static final ModelConfig GPT2_SMALL = new ModelConfig("GPT2LMHeadModel", 12, 768, 12, 64, 3072,
            Gpt2Tokenizer.VOCAB_SIZE, 1024, 1e-5, ModelConfig.ActFn.GELU_NEW, false, false, true,
            Gpt2Tokenizer.END_OF_TEXT_ID);
    static final long SEED = 0;
    static final Path DATASET = Path.of("datasets/ioi-32.json");

    @Param({"reference", "native"})
    public String path;

    private PatchableModel model;
    private List<PromptPairBatch> batches;
    private PruneScores scores;
    private List<Integer> counts;

    @Setup(Level.Trial)
    public void setUp() throws IOException {
        if (!Files.isRegularFile(DATASET)) {
            throw new IllegalStateException(DATASET.toAbsolutePath() + " not found: run from the repository root");
        }
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(16).trainTestSize(32, 0)
                .shuffle(false).build();
        batches = Datasets.load(DATASET, options, new Gpt2Tokenizer()).train().batches();
        CircuitOutputs expected;
        try (PatchableModel reference = newModel(Kernels.reference())) {
            scores = MaskGradient.scores(reference, batches, MaskGradient.Options.eap());
            counts = List.of(1, 10, 100, 1000, 10000, reference.graph().nEdges());
            expected = sweep(reference);
        }
        model = newModel(KernelSelection.select(KernelSelection.Mode.parse(path)));
        if (model.kernels() != Kernels.reference()) check(expected, sweep(model));
    }

    private static PatchableModel newModel(Kernels kernels) {
        return PatchableModel.of(HookedTransformer.randomInit(GPT2_SMALL, SEED, 0.02), true, OutputSlice.LAST_SEQ,
                null, true, kernels);
    }

    private CircuitOutputs sweep(PatchableModel m) {
        return RunCircuits.run(m, batches, counts, scores, PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
    }

    private void check(CircuitOutputs expected, CircuitOutputs actual) {
        List<Integer> keys = new ArrayList<>(expected.edgeCounts());
        if (!keys.equals(new ArrayList<>(actual.edgeCounts()))) {
            throw new IllegalStateException("W3 " + path + ": edge counts " + actual.edgeCounts() + ", reference " + keys);
        }
        for (int k : keys) {
            for (var e : expected.batchOutputs(k).entrySet()) {
                float[] want = e.getValue().floats();
                float[] got = actual.output(k, e.getKey()).floats();
                double max = 0;
                for (int i = 0; i < want.length; i++) max = Math.max(max, Math.abs(want[i] - got[i]));
                if (!(max <= 1e-3)) {
                    throw new IllegalStateException("W3 " + path + ": logits of the " + k + "-edge circuit, batch "
                            + e.getKey() + ", differ from the reference by " + max);
                }
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        model.close();
    }

    @Benchmark
    public CircuitOutputs runCircuits() {
        return sweep(model);
    }
}
