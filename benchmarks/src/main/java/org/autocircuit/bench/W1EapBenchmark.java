package org.autocircuit.bench;

import java.util.concurrent.TimeUnit;
import org.autocircuit.algorithms.EdgeAttributionPatching;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Device;
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
 * W1: Edge Attribution Patching (mask-gradient scores at mask 0, logit difference, resample ablation from the corrupt
 * prompts) on a GPT-2-small-shaped model, 32 IOI prompts in 2 batches of 16, 32,491 edges. AutoCircuit: 37.3 s.
 *
 * <p>Before timing, the scores are checked against the exact EAP form (gradients at the destination inputs times
 * corrupt − clean source outputs), a separate computation that must give the same numbers.
 *
 * <p>{@code device} is {@code cpu} (the default) or {@code cuda}/{@code cuda:N} (needs the {@code gpu} build,
 * docs/native.md "GPU"): the model, its masks and every intermediate are made there; each timed call ends with the
 * scores copied to the host, which waits for the device.
 *
 * <pre>benchmarks/run W1 -p device=cuda</pre>
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 1)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgs = {"-Xmx3g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-Dorg.bytedeco.javacpp.maxBytes=0"})
public class W1EapBenchmark {
    @Param({"reference", "native"})
    public String kernels;

    /**
     * libtorch intra-op threads; 0 (the default) keeps libtorch's own choice, one per core. Before idle threads were
     * made to sleep at once (benchmarks/run sets OPENBLAS_THREAD_TIMEOUT and OMP_WAIT_POLICY, docs/native.md
     * "Threads"), spin-waiting OpenMP and OpenBLAS threads made more than one thread slower on 2 cores.
     */
    @Param({"0"})
    public int threads;

    @Param({"cpu"})
    public String device;

    Gpt2SmallWorkload workload;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        if (threads > 0) org.bytedeco.pytorch.global.torch.set_num_threads(threads);
        System.out.println("torch threads " + org.bytedeco.pytorch.global.torch.get_num_threads()
            + ", OPENBLAS_NUM_THREADS=" + System.getenv("OPENBLAS_NUM_THREADS")
            + ", OPENBLAS_THREAD_TIMEOUT=" + System.getenv("OPENBLAS_THREAD_TIMEOUT")
            + ", OMP_WAIT_POLICY=" + System.getenv("OMP_WAIT_POLICY"));
        Device where = Device.parse(device);
        where.ensureAvailable();
        workload = new Gpt2SmallWorkload(Gpt2SmallWorkload.GPT2_SMALL, Gpt2SmallWorkload.kernels(kernels, where), where);
        System.out.println("W1 on " + where + " with kernels " + workload.model.kernels().name());
        PruneScores fast = MaskGradient.scores(workload.model, workload.batches, MaskGradient.Options.eap());
        // the check's exact EAP in parts of 4 prompts: the same scores (to float rounding), a quarter of the gradients
        // of a 16-prompt batch kept at once (the whole batch made it the fork's peak, about 1 GB above W1's own)
        PruneScores exact = EdgeAttributionPatching.scores(workload.model, workload.batches,
            EdgeAttributionPatching.Options.defaults().withPromptsPerPass(4), org.autocircuit.util.Progress.NONE);
        Gpt2SmallWorkload.checkClose(exact.flat(), fast.flat(), 1e-5, 1e-3, "W1 mask-gradient EAP vs exact EAP");
    }

    @Benchmark
    public PruneScores eap() {
        return MaskGradient.scores(workload.model, workload.batches, MaskGradient.Options.eap());
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Gpt2SmallWorkload.reportPeakRss("W1EapBenchmark", kernels + (device.equals("cpu") ? "" : "-" + device));
        workload.close();
    }
}
