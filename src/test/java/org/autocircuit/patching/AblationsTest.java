package org.autocircuit.patching;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/** Port of AutoCircuit's tests/utils/test_ablation_activations.py (micro model, exact values). */
class AblationsTest {

    /** [4, 3, 2] = 1..24 in row-major order. */
    static float[] cleanInputs() {
        float[] x = new float[24];
        for (int i = 0; i < 24; i++) x[i] = i + 1;
        return x;
    }

    static PatchableModel micro() {
        return PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, 3, false, Kernels.reference());
    }

    /** stack[x, [1,2]⊙x, [3,4]⊙x, [1,2]⊙y, [3,4]⊙y] with y = [5,7]⊙x: the sources' outputs in src_idx order. */
    static Tensor expectedSrcOuts(Tensor x) {
        Tensor w0 = org.bytedeco.pytorch.AbstractTensor.create(new float[] {1, 2}, 2);
        Tensor w1 = org.bytedeco.pytorch.AbstractTensor.create(new float[] {3, 4}, 2);
        Tensor y = x.mul(org.bytedeco.pytorch.AbstractTensor.create(new float[] {5, 7}, 2));
        return torch.stack(new TensorVector(x, x.mul(w0), x.mul(w1), y.mul(w0), y.mul(w1)));
    }

    @Test
    void resampleAndZero() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro()) {
            Tensor x = HostTensor.ofFloats(cleanInputs(), 4, 3, 2).toTensor();
            Tensor resample = Ablations.srcAblations(model, x, null, AblationType.RESAMPLE);
            assertArrayEquals(new long[] {5, 4, 3, 2}, resample.shape());
            assertClose(expectedSrcOuts(x), resample, 0, "RESAMPLE");
            Tensor zero = Ablations.srcAblations(model, x, null, AblationType.ZERO);
            assertClose(torch.zeros(5, 4, 3, 2), zero, 0, "ZERO");
        }
    }

    @Test
    void tokenwiseMeans() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro()) {
            Tensor x = HostTensor.ofFloats(cleanInputs(), 4, 3, 2).toTensor();
            torch.manual_seed(0);
            Tensor corrupt = torch.rand(4, 3, 2).mul(new Scalar(5));
            List<PromptPairBatch> batches = batches(x, corrupt, 2);

            Tensor meanClean = Ablations.datasetMean(model, batches, AblationType.TOKENWISE_MEAN_CLEAN);
            assertArrayEquals(new long[] {5, 2, 3, 2}, meanClean.shape());
            Tensor expectedClean = meanOverPrompts(expectedSrcOuts(x));
            assertClose(expectedClean, meanClean, 1e-4, "TOKENWISE_MEAN_CLEAN");
            // B1.1 = [15, 28] ⊙ mean(x) with mean(x) = [[10,11],[12,13],[14,15]]
            assertClose(new float[] {150, 308, 180, 364, 210, 420}, meanClean.select(0, 4).select(0, 0), 1e-3, "B1.1");

            Tensor meanCorrupt = Ablations.datasetMean(model, batches, AblationType.TOKENWISE_MEAN_CORRUPT);
            assertClose(meanOverPrompts(expectedSrcOuts(corrupt)), meanCorrupt, 1e-4, "TOKENWISE_MEAN_CORRUPT");

            Tensor both = Ablations.datasetMean(model, batches, AblationType.TOKENWISE_MEAN_CLEAN_AND_CORRUPT);
            assertClose(meanClean.add(meanCorrupt).div(new Scalar(2)), both, 1e-4, "TOKENWISE_MEAN_CLEAN_AND_CORRUPT");
        }
    }

    @Test
    void batchMeansAndTheCleanCorruptRule() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro()) {
            Tensor x = HostTensor.ofFloats(cleanInputs(), 4, 3, 2).toTensor();
            Tensor outs = expectedSrcOuts(x);
            Tensor tokMean = Ablations.srcAblations(model, x, null, AblationType.BATCH_TOKENWISE_MEAN);
            assertClose(outs.mean(new long[] {1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).expand(5, 4, 3, 2),
                tokMean, 1e-4, "BATCH_TOKENWISE_MEAN");
            Tensor allMean = Ablations.srcAblations(model, x, null, AblationType.BATCH_ALL_TOK_MEAN);
            assertClose(outs.mean(new long[] {1, 2}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).expand(5, 4, 3, 2),
                allMean, 1e-4, "BATCH_ALL_TOK_MEAN");
            List<PromptPairBatch> batches = batches(x, x.neg(), 2);
            assertThrows(IllegalArgumentException.class,
                () -> Ablations.batchSrcAblations(model, batches, AblationType.RESAMPLE, null));
            assertThrows(IllegalArgumentException.class,
                () -> Ablations.batchSrcAblations(model, batches, AblationType.ZERO, Ablations.CleanCorrupt.CLEAN));
        }
    }

    private static Tensor meanOverPrompts(Tensor srcOuts) {
        return srcOuts.mean(new long[] {1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).expand(5, 2, 3, 2);
    }

    private static List<PromptPairBatch> batches(Tensor clean, Tensor corrupt, int batchSize) {
        List<PromptPairBatch> out = new ArrayList<>();
        long n = clean.shape()[0];
        for (int b = 0; b * batchSize < n; b++) {
            HostTensor c = HostTensor.of(clean.narrow(0, (long) b * batchSize, batchSize));
            HostTensor k = HostTensor.of(corrupt.narrow(0, (long) b * batchSize, batchSize));
            List<HostTensor> ans = new ArrayList<>();
            for (int i = 0; i < batchSize; i++) ans.add(HostTensor.ofLongs(new long[] {1}, 1));
            out.add(new PromptPairBatch(b, 0, c, k, null, null, Answers.of(ans), Answers.of(ans)));
        }
        return out;
    }
}
