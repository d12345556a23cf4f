package org.autocircuit.bench.state;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.kernels.Device;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.data.PromptPairBatch;

/**
 * The model and prompts of workloads W1/W2 (README's performance table): a GPT-2-small-shaped model with random weights
 * (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50,257; seed 0, HF init range 0.02), the 32 IOI prompts of
 * datasets/ioi-32.json in 2 batches of 16, and the factorized graph with Q/K/V split (32,491 edges), last position.
 */
public final class Gpt2SmallWorkload implements AutoCloseable {
    public static final ModelConfig GPT2_SMALL = new ModelConfig("GPT2LMHeadModel", 12, 768, 12, 64, 3072, 50257, 1024,
        1e-5, ModelConfig.ActFn.GELU_NEW, false, false, true, 50256);
    /** The fixture model's shape (2 layers, d_model 64, 4 heads), for quick reference checks. */
    public static final ModelConfig TINY = new ModelConfig("GPT2LMHeadModel", 2, 64, 4, 16, 256, 50257, 64,
        1e-5, ModelConfig.ActFn.GELU_NEW, false, false, true, 50256);

    public final PatchableModel model;
    public final List<PromptPairBatch> batches;

    public Gpt2SmallWorkload(ModelConfig cfg, Kernels kernels) throws IOException {
        this(cfg, kernels, Device.CPU);
    }

    /**
     * The workload with the model on {@code device} (the same weights on every device: drawn on the host with seed 0,
     * then copied); the prompts stay on the host, and the model moves each batch's tokens.
     */
    public Gpt2SmallWorkload(ModelConfig cfg, Kernels kernels, Device device) throws IOException {
        this.batches = ioiBatches();
        this.model = PatchableModel.of(HookedTransformer.randomInit(cfg, 0, 0.02, device), true, OutputSlice.LAST_SEQ,
            null, true, kernels);
    }

    /**
     * A benchmark's {@code kernels} parameter on {@code device}: on the CPU as {@link #kernels(String)}; on CUDA
     * "reference" is libtorch's own CUDA ops and "native" the CUDA kernels ({@link Kernels#forDevice}, which falls
     * back to the reference when the native library was built without CUDA).
     */
    public static Kernels kernels(String path, Device device) {
        if (!device.isCuda()) return kernels(path);
        if (path.equals("reference")) return Kernels.reference();
        if (!path.equals("native")) throw new IllegalArgumentException("kernels must be reference or native, got " + path);
        return Kernels.forDevice(device);
    }

    /** The 32 prompts, batch 16, in file order. */
    public static List<PromptPairBatch> ioiBatches() throws IOException {
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(16).trainTestSize(32, 0)
            .returnSeqLength(false).tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build();
        return Datasets.load(datasetPath(), options, new Gpt2Tokenizer()).train().batches();
    }

    /** datasets/ioi-32.json, found from the working directory (the repository root or benchmarks/). */
    static Path datasetPath() {
        for (Path p : new Path[] {Path.of("datasets/ioi-32.json"), Path.of("../datasets/ioi-32.json")}) {
            if (Files.isRegularFile(p)) return p;
        }
        throw new IllegalStateException("datasets/ioi-32.json not found from " + Path.of("").toAbsolutePath()
            + "; run the benchmarks from the repository root");
    }

    /**
     * The kernels of a benchmark's {@code kernels} parameter: "reference" is {@link Kernels#reference()}; "native"
     * sets {@code autocircuit.kernels=native} and takes {@code Kernels.best()} where this build has it (it fails if
     * native kernels are requested but unavailable), else the reference.
     */
    public static Kernels kernels(String path) {
        if (path.equals("reference")) return Kernels.reference();
        if (!path.equals("native")) throw new IllegalArgumentException("kernels must be reference or native, got " + path);
        System.setProperty("autocircuit.kernels", "native");
        try {
            return (Kernels) Kernels.class.getMethod("best").invoke(null);
        } catch (NoSuchMethodException e) {
            return Kernels.reference();
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("native kernels requested but unavailable", e.getCause() != null ? e.getCause() : e);
        }
    }

    /** Peak resident set size of this process so far (VmHWM), in MB. */
    public static long peakRssMb() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmHWM:")) return Long.parseLong(line.replaceAll("\\D", "")) / 1024;
            }
        } catch (IOException e) {
            return -1;
        }
        return -1;
    }

    /** Records the peak RSS next to the JMH results, because JMH itself does not measure it. */
    public static void reportPeakRss(String benchmark, String kernels) {
        long mb = peakRssMb();
        System.out.println(benchmark + " [" + kernels + "] peak RSS of the fork: " + mb + " MiB");
        try {
            Path dir = Path.of(Files.isDirectory(Path.of("benchmarks")) ? "benchmarks/results" : "results");
            Files.createDirectories(dir);
            Files.writeString(dir.resolve(benchmark + "-" + kernels + "-peak-rss.txt"), mb + " MiB\n");
        } catch (IOException e) {
            System.out.println("could not write the peak RSS file: " + e);
        }
    }

    public static void checkClose(float[] expected, float[] actual, double atol, double rtol, String what) {
        if (expected.length != actual.length) throw new IllegalStateException(what + ": length " + actual.length + " vs " + expected.length);
        double worst = 0;
        for (int i = 0; i < expected.length; i++) {
            double diff = Math.abs((double) expected[i] - actual[i]);
            if (diff > atol + rtol * Math.abs(expected[i])) {
                throw new IllegalStateException(what + ": edge " + i + " expected " + expected[i] + ", got " + actual[i]);
            }
            worst = Math.max(worst, diff);
        }
        System.out.println(what + ": " + expected.length + " scores agree, max |diff| " + worst);
    }

    @Override
    public void close() {
        model.close();
    }
}
