package org.autocircuit.bench;

import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.bench.state.LlamaBenchmarkState;
import org.autocircuit.bench.state.LlamaWorkload;
import org.autocircuit.graph.PruneScores;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * W5: Edge Attribution Patching (mask-gradient scores at mask 0, logit difference, resample ablation from the corrupt
 * prompts) on a random Llama-3.2-1B-shaped model ({@link LlamaWorkload}: bf16-valued weights, real 128,256-row
 * vocabulary), 32 IOI prompts, in both grouped-query graph layouts: 386,713 edges ungrouped (one K/V destination per
 * query head, AutoCircuit's and MIB's layout), 195,865 grouped. One timed shot per layout (each is minutes on 2
 * cores); the peak RSS of the fork is printed and written to {@code results/W5LlamaEapBenchmark-<layout>-peak-rss.txt}.
 *
 * <p>Batches of 4: with one K/V input per query head, the per-head inputs that autograd keeps for one batch are
 * {@code 16 layers × 3 × 32 heads × batch × seq × 2048} floats (0.8 GB at batch 4, 3.4 GB at 16), on top of the
 * 5 GB of weights; this machine's 24 GB are shared. {@code -p dtype=bfloat16} keeps the weights (2.5 GB) and every
 * activation in bfloat16; {@code -p prompts=N} runs the first N prompts only.
 *
 * <pre>benchmarks/run W5 -f 1
 * benchmarks/run W5 -f 1 -p dtype=bfloat16 -p prompts=4</pre>
 */
@State(Scope.Benchmark)
public class W5LlamaEapBenchmark extends LlamaBenchmarkState {
    @Benchmark
    public PruneScores eap() {
        return MaskGradient.scores(workload.model, workload.batches, MaskGradient.Options.eap());
    }

    @Override
    protected String benchmarkName() {
        return "W5LlamaEapBenchmark";
    }
}
