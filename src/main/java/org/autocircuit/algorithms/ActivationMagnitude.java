package org.autocircuit.algorithms;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;

/**
 * Activation magnitude, a baseline that ignores the task: every edge u→v scores the size of its
 * source's output on the clean prompts, {@code |mean over batch, seq, dModel of out_u|}, averaged over batches.
 * Every destination reading u gives u the same score.
 *
 * <p>The mean is signed before the absolute value is taken, as in AutoCircuit, so a source whose output averages
 * out to zero scores low however large it is. AutoCircuit reads the first {@code nIn} source means for every
 * destination, which is right only in factorized graphs (where every destination reads sources 0..nIn−1); this
 * port reads the sources the destination really reads, which is the same in factorized graphs and correct in
 * unfactorized ones.
 */
public final class ActivationMagnitude {
    private ActivationMagnitude() {}

    /** The {@link PruneAlgorithm} form. */
    public static PruneScores scores(PruneRun run) {
        return scores(run.model(), run.train(), run.progress());
    }

    /** Computes the scores; leaves the model's state untouched. */
    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Progress progress) {
        if (batches.isEmpty()) throw new IllegalArgumentException("activation magnitude needs at least one batch");
        Graph graph = model.graph();
        double[] srcScore = new double[graph.nSrcs()];
        long done = 0;
        for (PromptPairBatch batch : batches) {
            Progress.checkInterrupted("activation magnitude");
            try (PointerScope step = new PointerScope()) {
                Tensor outs = model.srcOutputs(Inputs.clean(batch),
                    Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN), null);              // [nSrc, batch, seq, dModel]
                float[] means = HostTensor.of(outs.mean(new long[] {1, 2, 3}, false, new ScalarTypeOptional())).floats();
                for (int s = 0; s < means.length; s++) srcScore[s] += Math.abs(means[s]) / batches.size();
            }
            progress.update("activation magnitude", ++done, batches.size());
        }
        Map<String, float[]> out = new LinkedHashMap<>();
        for (DestModule dm : graph.destModules()) {
            float[] m = new float[dm.maskNumel()];
            for (int i = 0; i < m.length; i++) m[i] = (float) srcScore[dm.inSrcStart() + i % dm.nIn()];
            out.put(dm.moduleName(), m);
        }
        return PruneScores.of(graph, out);
    }
}
