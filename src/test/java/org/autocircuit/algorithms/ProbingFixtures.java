package org.autocircuit.algorithms;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;

/** Models and prompts shared by the probing tests. */
final class ProbingFixtures {
    private ProbingFixtures() {}

    private static Datasets.LoadedDatasets ioi;

    /** The fixture model's 16 IOI training prompts (2 batches of 8), loaded once. */
    static synchronized List<PromptPairBatch> ioiTrain() {
        if (ioi == null) ioi = Fixtures.ioi();
        return ioi.train().batches();
    }

    static synchronized List<PromptPairBatch> ioiTest() {
        if (ioi == null) ioi = Fixtures.ioi();
        return ioi.test().batches();
    }

    /** The fixture GPT-2 (2 layers, 4 heads) on the component graph: 110 edges, last position. */
    static PatchableModel fixtureModel() {
        return PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference());
    }

    /** The two-layer MicroModel with one edge per position of 3 (39 edges), reading the last position. */
    static PatchableModel microModel() {
        return PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, 3, true, Kernels.reference());
    }

    /**
     * MicroModel prompts {@code [batch, 3, 2]} where only the last position can matter: the model mixes no positions
     * and the output is read at position 2. At position 2 the clean input leans to dimension 1 (the answer) and the
     * corrupt input is the same pair swapped; positions 0 and 1 are unrelated noise in both.
     */
    static List<PromptPairBatch> microBatches(int nBatches, int batchSize, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        List<PromptPairBatch> out = new ArrayList<>();
        for (int b = 0; b < nBatches; b++) {
            float[] clean = new float[batchSize * 3 * 2];
            float[] corrupt = new float[clean.length];
            List<HostTensor> answers = new ArrayList<>();
            List<HostTensor> wrong = new ArrayList<>();
            for (int p = 0; p < batchSize; p++) {
                for (int pos = 0; pos < 2; pos++) {
                    for (int d = 0; d < 2; d++) {
                        clean[(p * 3 + pos) * 2 + d] = (float) (rnd.nextDouble() * 0.1);
                        corrupt[(p * 3 + pos) * 2 + d] = (float) (rnd.nextDouble() * 0.1);
                    }
                }
                float lo = (float) (0.01 + rnd.nextDouble() * 0.02);
                float hi = (float) (0.06 + rnd.nextDouble() * 0.03);
                int at = (p * 3 + 2) * 2;
                clean[at] = lo;
                clean[at + 1] = hi;
                corrupt[at] = hi;
                corrupt[at + 1] = lo;
                answers.add(HostTensor.ofLongs(new long[] {1}, 1));
                wrong.add(HostTensor.ofLongs(new long[] {0}, 1));
            }
            out.add(new PromptPairBatch(1000L + b, 2, HostTensor.ofFloats(clean, batchSize, 3, 2),
                HostTensor.ofFloats(corrupt, batchSize, 3, 2), null, null, Answers.of(answers), Answers.of(wrong)));
        }
        return out;
    }
}
