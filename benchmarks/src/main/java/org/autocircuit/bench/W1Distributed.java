package org.autocircuit.bench;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.bench.state.Gpt2SmallWorkload;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.ProcessGroupCollective;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.util.Progress;

/**
 * W1 (EAP on the GPT-2-small-shaped workload) data-parallel: run in each worker of
 * {@code autocircuit launch} (benchmarks/run-distributed does), or alone for one process. Each worker builds the
 * workload, scores once to warm up, then times {@code repeats} runs between barriers; rank 0 prints one line per run
 * and checks the scores against a single-process computation it made before timing.
 *
 * <p>Arguments: kernels ({@code native} or {@code reference}), repeats.
 */
public final class W1Distributed {
    private W1Distributed() {}

    public static void main(String[] args) throws Exception {
        String kernels = args.length > 0 ? args[0] : "native";
        int repeats = args.length > 1 ? Integer.parseInt(args[1]) : 3;
        try (Collective c = ProcessGroupCollective.fromEnvironment();
             Gpt2SmallWorkload w = new Gpt2SmallWorkload(Gpt2SmallWorkload.GPT2_SMALL, Gpt2SmallWorkload.kernels(kernels))) {
            PruneScores reference = c.isLeader() && c.isDistributed()
                ? MaskGradient.scores(w.model, w.batches, MaskGradient.Options.eap()) : null;
            c.barrier();
            PruneScores scores = MaskGradient.scores(w.model, w.batches, MaskGradient.Options.eap(), Progress.NONE, c);
            if (reference != null) {
                Gpt2SmallWorkload.checkClose(reference.flat(), scores.flat(), 1e-6, 1e-5, "W1 on " + c.worldSize()
                    + " ranks vs one process");
            }
            List<Double> seconds = new ArrayList<>();
            for (int i = 0; i < repeats; i++) {
                c.barrier();
                long t0 = System.nanoTime();
                MaskGradient.scores(w.model, w.batches, MaskGradient.Options.eap(), Progress.NONE, c);
                c.barrier();
                seconds.add((System.nanoTime() - t0) / 1e9);
            }
            if (c.isLeader()) {
                System.out.printf("W1 EAP, %s kernels, %d process(es), torch threads %d: %s s%n", kernels, c.worldSize(),
                    org.bytedeco.pytorch.global.torch.get_num_threads(), seconds);
            }
        }
    }
}
