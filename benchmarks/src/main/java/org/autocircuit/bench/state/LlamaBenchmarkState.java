package org.autocircuit.bench.state;

import java.util.concurrent.TimeUnit;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.model.HookedTransformer;
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
 * The JMH state the Llama-shaped workloads (W5, W6) share: their parameters, the {@link LlamaWorkload} built once per
 * trial, and the fork's peak RSS written at the end to {@code results/<benchmark>-<variant>-peak-rss.txt}, where the
 * variant is the layout, then the dtype and the prompt count where they are not the defaults, then the kernels.
 * A benchmark extends it (and is annotated {@code @State(Scope.Benchmark)} itself) and reads {@link #workload}.
 */
@State(Scope.Benchmark)
// one timed shot per layout: a run takes minutes (JMH takes these from the superclass of every W5/W6 benchmark)
@BenchmarkMode(Mode.SingleShotTime)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 0)
@Measurement(iterations = 1)
@Fork(value = 1, jvmArgs = {"-Xmx2g", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0", "-Dorg.bytedeco.javacpp.maxBytes=0"})
@Timeout(time = 40, timeUnit = TimeUnit.MINUTES)
public abstract class LlamaBenchmarkState {
    @Param({"ungrouped", "grouped"})
    public String layout;

    @Param({"4"})
    public int batchSize;

    @Param({"native"})
    public String kernels;

    /** The weights' (and activations') dtype: float32 (bf16-valued weights held as float32) or bfloat16. */
    @Param({"float32"})
    public String dtype;

    /** How many of the 32 IOI prompts: fewer for a shorter run (a 16-bit run on 2 cores takes long). */
    @Param({"32"})
    public int prompts;

    protected LlamaWorkload workload;

    @Setup(Level.Trial)
    public void setUpWorkload() throws Exception {
        workload = new LlamaWorkload(GqaLayout.valueOf(layout.toUpperCase()), batchSize,
            Gpt2SmallWorkload.kernels(kernels), HookedTransformer.parseDtype(dtype), prompts);
        afterSetUp();
    }

    /** What a benchmark prepares beyond the workload (W6: the scores and edge counts). */
    protected void afterSetUp() {}

    /** The benchmark's name in the peak-RSS file's name. */
    protected abstract String benchmarkName();

    @TearDown(Level.Trial)
    public void tearDownWorkload() {
        String variant = layout + (dtype.equals("float32") ? "" : "-" + dtype)
            + (prompts == 32 ? "" : "-" + prompts + "prompts") + "-" + kernels;
        Gpt2SmallWorkload.reportPeakRss(benchmarkName(), variant);
        workload.close();
    }
}
