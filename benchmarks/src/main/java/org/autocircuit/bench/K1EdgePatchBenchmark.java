package org.autocircuit.bench;

import java.util.concurrent.TimeUnit;
import org.autocircuit.kernels.CudaSupport;
import org.autocircuit.kernels.Device;
import org.autocircuit.kernels.KernelSelection;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.kernels.MaskLayout;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
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
 * K1 (README): the masked-difference step alone at GPT-2-small shapes: one call that patches the Q, K and
 * V inputs of all 12 heads of the last layer (nIn = 144 incoming sources, d_model 768, three masks [12, 144]),
 * forward only (no grad), for B·S tokens (batch 16). {@code path} picks the reference ({@code TorchKernels}) or the
 * native kernels; {@code masks} is {@code dense} (values in [0, 1): mask gradients, integrated gradients) or
 * {@code binary} (0/1 with 5% of each row differing from its majority, as run_circuits and ACDC set them: the
 * native sparse path).
 *
 * <p>{@code device} is {@code cpu} (the default) or {@code cuda}/{@code cuda:N} (needs the {@code gpu} build:
 * docs/native.md, "GPU"): every tensor is made there, the native path is {@code Kernels.forDevice(device)}, each call
 * is followed by a device synchronisation, and tear-down prints the achieved GB/s of compulsory traffic (read
 * patch, curr and input once, write each output once) and, on CUDA, its fraction of the device's peak bandwidth
 * (memory clock x bus width, from the JavaCPP CUDA presets).
 *
 * <p>Setup first checks the native result against the reference (max |diff| within 1e-4 in float32, 3e-2 of the
 * largest value in bfloat16) and refuses to time a wrong answer.
 *
 * <pre>flock /work/heavy.lock benchmarks/run K1 -p tokens=256,800</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Fork(value = 1, jvmArgsAppend = {"-Xmx2g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0",
    "-Dorg.bytedeco.javacpp.maxBytes=0"})
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 3)
public class K1EdgePatchBenchmark {
    static final int BATCH = 16;
    static final int D_MODEL = 768;
    static final int HEADS = 12;
    static final int N_IN = 1 + 11 * (HEADS + 1);  // embed + 11 layers of 12 heads and an MLP: 144

    @Param({"reference", "native"})
    public String path;

    @Param({"256", "800", "4096"})
    public int tokens;

    @Param({"float32", "bfloat16"})
    public String dtype;

    @Param({"dense"})
    public String masks;

    @Param({"cpu"})
    public String device;

    private Device where;

    private PointerScope scope;
    private Kernels kernels;
    private Tensor input;
    private Tensor patch;
    private Tensor curr;
    private Tensor[] qkvMasks;
    private final MaskLayout layout = new MaskLayout(false, false, true);

    @Setup(Level.Trial)
    public void setUp() {
        if (tokens % BATCH != 0) throw new IllegalArgumentException("tokens must be a multiple of " + BATCH);
        scope = new PointerScope();
        where = Device.parse(device);
        where.ensureAvailable();
        KernelSelection.Mode mode = KernelSelection.Mode.parse(path);
        kernels = mode == KernelSelection.Mode.REFERENCE ? Kernels.reference()
            : where.isCuda() ? Kernels.forDevice(where) : KernelSelection.select(mode);
        torch.ScalarType type = switch (dtype) {
            case "float32" -> torch.ScalarType.Float;
            case "bfloat16" -> torch.ScalarType.BFloat16;
            default -> throw new IllegalArgumentException("dtype must be float32 or bfloat16, got " + dtype);
        };
        long seq = tokens / BATCH;
        torch.manual_seed(1);
        org.bytedeco.pytorch.Device dev = where.toTorch();
        input = torch.randn(BATCH, seq, D_MODEL).to(dev, type);             // [batch, seq, dModel]
        patch = torch.randn(N_IN, BATCH, seq, D_MODEL).to(dev, type);       // [nIn, batch, seq, dModel]
        curr = torch.randn(N_IN, BATCH, seq, D_MODEL).to(dev, type);
        qkvMasks = new Tensor[3];
        for (int m = 0; m < 3; m++) {
            Tensor r = torch.rand(HEADS, N_IN);                              // [head, nIn]
            qkvMasks[m] = switch (masks) {
                case "dense" -> r;
                // each row's majority is 1 (ablated) in even heads and 0 in odd ones; 5% of entries differ
                case "binary" -> r.lt(new org.bytedeco.pytorch.Scalar(0.05)).to(torch.ScalarType.Float);
                default -> throw new IllegalArgumentException("masks must be dense or binary, got " + masks);
            };
            if (masks.equals("binary")) {
                Tensor even = qkvMasks[m].slice(0, new org.bytedeco.pytorch.LongOptional(0),
                        new org.bytedeco.pytorch.LongOptional(HEADS), 2);
                even.copy_(even.neg().add(new org.bytedeco.pytorch.Scalar(1.0)));
            }
            qkvMasks[m] = qkvMasks[m].to(dev, torch.ScalarType.Float);
        }
        checkAgainstReference(type);
    }

    private void checkAgainstReference(torch.ScalarType type) {
        if (kernels == Kernels.reference()) return;
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor[] expected = Kernels.reference().edgePatch(input, qkvMasks, patch, curr, layout);
            Tensor[] actual = kernels.edgePatch(input, qkvMasks, patch, curr, layout);
            for (int m = 0; m < expected.length; m++) {
                Tensor e = expected[m].to(torch.ScalarType.Float);
                double diff = actual[m].to(torch.ScalarType.Float).sub(e).abs().max().item_double();
                double scale = Math.max(1.0, e.abs().max().item_double());
                double allowed = type == torch.ScalarType.Float ? 1e-4 : 3e-2 * scale;
                if (!(diff <= allowed)) {
                    throw new IllegalStateException("K1 " + path + " " + dtype + " tokens " + tokens + ": output " + m
                            + " differs from the reference by " + diff + " (allowed " + allowed + ")");
                }
            }
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        reportBandwidth();
        scope.close();
    }

    /** Bytes one call must move at least: patch and curr read once, input once, each of the 36 outputs written once. */
    double compulsoryBytes() {
        double element = input.element_size();
        double td = (double) tokens * D_MODEL;
        return element * (2.0 * N_IN * td + td + 3.0 * HEADS * td);
    }

    /** Times 20 more calls itself and prints GB/s (and on CUDA the fraction of the device's peak). */
    private void reportBandwidth() {
        int calls = 20;
        long start = System.nanoTime();
        for (int k = 0; k < calls; k++) edgePatch();
        double ms = (System.nanoTime() - start) / 1e6 / calls;
        double gbs = compulsoryBytes() / (ms * 1e-3) / 1e9;
        String peak = "";
        if (where.isCuda()) {
            int index = Math.max(0, where.index());
            var devices = CudaSupport.runtime().devices();
            if (index < devices.size()) {
                var d = devices.get(index);
                peak = String.format(", %.1f%% of %s's peak %.0f GB/s", 100 * gbs / d.peakBandwidthGBs(), d.name(),
                    d.peakBandwidthGBs());
            } else {
                peak = ", peak unknown (no device information from the JavaCPP CUDA presets)";
            }
        }
        System.out.printf("%nK1 %s %s %s tokens=%d on %s: %.3f ms/call, %.1f GB/s%s%n", path, dtype, masks, tokens, where,
            ms, gbs, peak);
    }

    @Benchmark
    public long edgePatch() {
        try (PointerScope s = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor[] out = kernels.edgePatch(input, qkvMasks, patch, curr, layout);
            if (where.isCuda()) torch.cuda_synchronize();  // time the kernels, not their launch
            return out[out.length - 1].numel();
        }
    }
}
