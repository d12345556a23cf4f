package org.autocircuit.bench;

import java.util.concurrent.TimeUnit;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
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
 * W2: integrated gradients with 10 samples (masks at k/10 for k = 0..10, gradients summed) on W1's model and prompts.
 * AutoCircuit: 244.6 s.
 *
 * <p>Before timing, a tiny-config check (the fixture model's shape, random weights, same prompts): IG-10 must equal the
 * sum of eleven separate mask-gradient runs at the fixed mask values k/10, and the benchmark's own kernels must agree
 * with the reference kernels on it.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 3)
@Fork(value = 1, jvmArgs = {"-Xmx3g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-Dorg.bytedeco.javacpp.maxBytes=0"})
public class W2IgBenchmark {
    @Param({"reference", "native"})
    public String kernels;

    /**
     * libtorch intra-op threads; 0 (the default) keeps libtorch's own choice, one per core. Before idle threads were
     * made to sleep at once (benchmarks/run sets OPENBLAS_THREAD_TIMEOUT and OMP_WAIT_POLICY, docs/native.md
     * "Threads"), spin-waiting OpenMP and OpenBLAS threads made more than one thread slower on 2 cores.
     */
    @Param({"0"})
    public int threads;

    Gpt2SmallWorkload workload;

    @Setup(Level.Trial)
    public void setUp() throws Exception {
        if (threads > 0) org.bytedeco.pytorch.global.torch.set_num_threads(threads);
        System.out.println("torch threads " + org.bytedeco.pytorch.global.torch.get_num_threads()
            + ", OPENBLAS_NUM_THREADS=" + System.getenv("OPENBLAS_NUM_THREADS")
            + ", OPENBLAS_THREAD_TIMEOUT=" + System.getenv("OPENBLAS_THREAD_TIMEOUT")
            + ", OMP_WAIT_POLICY=" + System.getenv("OMP_WAIT_POLICY"));
        var chosen = Gpt2SmallWorkload.kernels(kernels);
        try (Gpt2SmallWorkload tiny = new Gpt2SmallWorkload(Gpt2SmallWorkload.TINY, chosen)) {
            PruneScores ig = MaskGradient.scores(tiny.model, tiny.batches, MaskGradient.Options.integratedGradients(10));
            float[] sum = new float[ig.flat().length];
            for (int k = 0; k <= 10; k++) {
                MaskGradient.Options at = new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                    MaskGradient.AnswerFunction.AVG_DIFF, k / 10.0, null, AblationType.RESAMPLE, Ablations.CleanCorrupt.CORRUPT);
                float[] s = MaskGradient.scores(tiny.model, tiny.batches, at).flat();
                for (int i = 0; i < sum.length; i++) sum[i] += s[i];
            }
            Gpt2SmallWorkload.checkClose(sum, ig.flat(), 1e-5, 1e-3, "W2 tiny IG-10 vs 11 fixed-mask runs");
        }
        if (!kernels.equals("reference")) {
            try (Gpt2SmallWorkload ref = new Gpt2SmallWorkload(Gpt2SmallWorkload.TINY, Gpt2SmallWorkload.kernels("reference"));
                 Gpt2SmallWorkload mine = new Gpt2SmallWorkload(Gpt2SmallWorkload.TINY, chosen)) {
                Gpt2SmallWorkload.checkClose(
                    MaskGradient.scores(ref.model, ref.batches, MaskGradient.Options.integratedGradients(10)).flat(),
                    MaskGradient.scores(mine.model, mine.batches, MaskGradient.Options.integratedGradients(10)).flat(),
                    1e-5, 1e-3, "W2 tiny IG-10, " + kernels + " vs reference kernels");
            }
        }
        workload = new Gpt2SmallWorkload(Gpt2SmallWorkload.GPT2_SMALL, chosen);
    }

    @Benchmark
    public PruneScores integratedGradients() {
        return MaskGradient.scores(workload.model, workload.batches, MaskGradient.Options.integratedGradients(10));
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        Gpt2SmallWorkload.reportPeakRss("W2IgBenchmark", kernels);
        workload.close();
    }
}
