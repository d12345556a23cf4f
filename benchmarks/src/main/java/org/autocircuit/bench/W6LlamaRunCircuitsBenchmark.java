package org.autocircuit.bench;

import java.util.List;
import org.autocircuit.algorithms.RandomScores;
import org.autocircuit.bench.state.LlamaBenchmarkState;
import org.autocircuit.bench.state.LlamaWorkload;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.RunCircuits;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.State;

/**
 * W6: run_circuits on W5's random Llama-3.2-1B-shaped model ({@link LlamaWorkload}), 32 IOI prompts in batches of 4,
 * at 6 edge counts [1, 10, 100, 1000, 10000, all], EDGE_PATCH, resample ablation, in both grouped-query layouts. The
 * edges are ranked by seeded random scores (seed 0), not EAP: the ranking decides which circuits are run, not what a
 * patched pass costs, and it keeps W6 from repeating W5's minutes. One timed shot per layout; peak RSS written as W5's;
 * {@code -p dtype=bfloat16} and {@code -p prompts=N} as for W5 ({@link LlamaBenchmarkState}).
 *
 * <pre>benchmarks/run W6 -f 1</pre>
 */
@State(Scope.Benchmark)
public class W6LlamaRunCircuitsBenchmark extends LlamaBenchmarkState {
    PruneScores scores;
    List<Integer> counts;

    @Override
    protected void afterSetUp() {
        scores = RandomScores.scores(workload.model.graph(), 0L);
        counts = List.of(1, 10, 100, 1000, 10000, workload.model.graph().nEdges());
    }

    @Benchmark
    public CircuitOutputs runCircuits() {
        return RunCircuits.run(workload.model, workload.batches, counts, scores, PatchType.EDGE_PATCH,
            AblationType.RESAMPLE, false);
    }

    @Override
    protected String benchmarkName() {
        return "W6LlamaRunCircuitsBenchmark";
    }
}
