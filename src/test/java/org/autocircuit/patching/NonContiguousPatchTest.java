package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Patch values and current-output buffers handed to {@link PatchableModel#patchMode(Tensor, Tensor)} may be views
 * that are not contiguous (ACDC narrows its repeated buffers along the batch): on the native kernels, which read
 * contiguous blocks, the pass must give what contiguous copies give, not an error.
 */
class NonContiguousPatchTest {

    @Test
    void nonContiguousPatchAndCurrentBuffersGiveTheContiguousResult() {
        PromptPairBatch batch = Fixtures.ioi().train().batches().get(0);
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels("native"))) {
            Tensor input = Inputs.input(batch, Ablations.CleanCorrupt.CORRUPT);
            Tensor padding = Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT);
            Tensor patch = Ablations.srcAblations(model, Inputs.clean(batch),
                Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN), AblationType.RESAMPLE);
            long rows = patch.size(1);
            Tensor patchView = patch.repeat(1, 2, 1, 1).narrow(1, 0, rows);          // same values, batch stride doubled
            Tensor currView = patch.repeat(1, 2, 1, 1).narrow(1, 0, rows).zero_();
            assertFalse(patchView.is_contiguous(), "the test needs a non-contiguous view");

            java.util.Random random = new java.util.Random(3);
            float[] masks = new float[model.graph().nEdges()];
            for (int i = 0; i < masks.length; i++) masks[i] = random.nextDouble() < 0.3 ? 1f : 0f;
            model.setMasks(org.autocircuit.graph.PruneScores.ofFlat(model.graph(), masks));
            float[] expected;
            float[] actual;
            try (PatchableModel.PatchMode p = model.patchMode(patch.clone(), zerosLike(patch))) {
                expected = HostTensor.of(model.forward(input, padding)).floats();
            }
            try (PatchableModel.PatchMode p = model.patchMode(patchView, currView)) {
                actual = HostTensor.of(model.forward(input, padding)).floats();
            }
            double max = 0;
            for (int i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(expected[i] - actual[i]));
            assertTrue(max <= 1e-5, "logits differ by " + max);
        }
    }

    private static Tensor zerosLike(Tensor t) {
        return org.bytedeco.pytorch.global.torch.zeros_like(t);
    }
}
