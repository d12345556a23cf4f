package org.autocircuit.bench;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.DataParallel;
import org.autocircuit.distributed.ProcessGroupCollective;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.util.Progress;

/**
 * W3 (run_circuits over edge counts [1, 10, 100, 1000, 10000, all] on the GPT-2-small-shaped workload, edges ranked
 * by W1's EAP scores, resample ablation) data-parallel: run in each worker of {@code autocircuit launch}
 * (benchmarks/run-distributed does), or alone for one process. Each worker scores once (data-parallel EAP), sweeps
 * once to warm up, then times {@code repeats} sweeps between barriers; rank 0 checks the gathered outputs against
 * a single-process sweep it made before timing, and prints one line.
 *
 * <p>Arguments: kernels ({@code native} or {@code reference}), repeats.
 */
public final class W3Distributed {
    private W3Distributed() {}

    public static void main(String[] args) throws Exception {
        String kernels = args.length > 0 ? args[0] : "native";
        int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        try (Collective c = ProcessGroupCollective.fromEnvironment();
             Gpt2SmallWorkload w = new Gpt2SmallWorkload(Gpt2SmallWorkload.GPT2_SMALL, Gpt2SmallWorkload.kernels(kernels))) {
            PruneScores scores = MaskGradient.scores(w.model, w.batches, MaskGradient.Options.eap(), Progress.NONE, c);
            List<Integer> counts = List.of(1, 10, 100, 1000, 10000, w.model.graph().nEdges());
            CircuitOutputs reference = c.isLeader() && c.isDistributed()
                ? RunCircuits.run(w.model, w.batches, counts, scores, PatchType.EDGE_PATCH, AblationType.RESAMPLE, false)
                : null;
            c.barrier();
            CircuitOutputs outs = DataParallel.runCircuits(c, w.model, w.batches, counts, scores, PatchType.EDGE_PATCH,
                AblationType.RESAMPLE, false, Progress.NONE);
            if (reference != null) {
                for (int k : counts) {
                    for (var e : reference.batchOutputs(k).entrySet()) {
                        Gpt2SmallWorkload.checkClose(e.getValue().floats(), outs.output(k, e.getKey()).floats(), 1e-4, 1e-4,
                            "W3 on " + c.worldSize() + " ranks vs one process, " + k + " edges");
                    }
                }
            }
            List<Double> seconds = new ArrayList<>();
            for (int i = 0; i < repeats; i++) {
                c.barrier();
                long t0 = System.nanoTime();
                DataParallel.runCircuits(c, w.model, w.batches, counts, scores, PatchType.EDGE_PATCH,
                    AblationType.RESAMPLE, false, Progress.NONE);
                c.barrier();
                seconds.add((System.nanoTime() - t0) / 1e9);
            }
            if (c.isLeader()) {
                System.out.printf("W3 run_circuits, %s kernels, %d process(es), torch threads %d: %s s%n", kernels,
                    c.worldSize(), org.bytedeco.pytorch.global.torch.get_num_threads(), seconds);
            }
        }
    }
}
