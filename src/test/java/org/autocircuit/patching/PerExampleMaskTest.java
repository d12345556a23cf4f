package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Per-example masks ({@link PatchableModel#maskBatchSize}, AutoCircuit's {@code set_mask_batch_size}; its
 * test_instance_grads): one backward pass gives every example its own mask gradient, the examples' gradients sum to
 * the shared-mask gradient (the EAP scores of the same batch), and the scope restores the masks' shape.
 */
class PerExampleMaskTest {
    static PromptPairBatch batch;

    @BeforeAll
    static void load() {
        batch = Fixtures.ioi().train().batches().get(0);
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void exampleGradientsDifferAndSumToTheSharedGradient(String path) {
        try (PointerScope scope = new PointerScope();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Fixtures.kernels(path))) {
            PruneScores shared = MaskGradient.scores(model, List.of(batch), MaskGradient.Options.eap());
            int n = batch.batchSize();
            long[] maskShape = model.mask("blocks.1.hook_q_input").shape();
            Tensor patch = Ablations.srcAblations(model, Inputs.input(batch, Ablations.CleanCorrupt.CORRUPT),
                Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
            model.setAllMasks(0);
            List<PruneScores> perExample;
            PruneScores summed;
            try (PatchableModel.MaskBatch b = model.maskBatchSize(n);
                 PatchableModel.MaskTraining t = model.trainMaskMode();
                 PatchableModel.PatchMode p = model.patchMode(patch)) {
                Tensor mask = model.mask("blocks.1.hook_q_input");
                assertEquals(n, mask.size(0), "each mask gains a leading batch dimension");
                Tensor logits = model.forward(Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN));
                TensorOps.batchAvgAnswerDiff(logits, batch).neg().backward();
                assertEquals(n, mask.grad().size(0), "the gradient has the batch dimension too");
                perExample = model.exampleMaskGradients();
                summed = model.maskGradients();
            }
            assertArrayEquals(maskShape, model.mask("blocks.1.hook_q_input").shape(), "closing restores the shape");

            float[] want = shared.flat();
            float[] sum = new float[want.length];
            for (PruneScores s : perExample) {
                float[] f = s.flat();
                for (int i = 0; i < f.length; i++) sum[i] += f[i];
            }
            double scale = 0, maxDiff = 0, summedDiff = 0;
            for (int i = 0; i < want.length; i++) {
                scale = Math.max(scale, Math.abs(want[i]));
                maxDiff = Math.max(maxDiff, Math.abs(sum[i] - want[i]));
                summedDiff = Math.max(summedDiff, Math.abs(summed.flat()[i] - want[i]));
            }
            assertTrue(scale > 0, "the EAP scores are not all 0");
            assertTrue(maxDiff <= 1e-5 + 1e-4 * scale, "Σ per-example gradients vs EAP scores: max diff " + maxDiff);
            assertTrue(summedDiff <= 1e-5 + 1e-4 * scale, "maskGradients() sums the examples: max diff " + summedDiff);

            float[] g0 = perExample.get(0).flat(), g1 = perExample.get(1).flat();
            double between = 0;
            for (int i = 0; i < g0.length; i++) between = Math.max(between, Math.abs(g0[i] - g1[i]));
            assertTrue(between > 1e-3 * scale, "examples 0 and 1 have different gradients (max diff " + between + ")");
        }
    }

    /** quirk 15 of docs/quirks.md, fixed: the sigmoid mask function with per-example masks gives the unbatched result. */
    @Test
    void sigmoidMaskFunctionKeepsTheBatchDimension() {
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Kernels.reference())) {
            Tensor patch = Ablations.srcAblations(model, Inputs.input(batch, Ablations.CleanCorrupt.CORRUPT),
                Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
            model.setAllMasks(0.3);
            Tensor clean = Inputs.clean(batch);
            Tensor pad = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
            float[] plain;
            float[] batched;
            try (PatchableModel.MaskFnMode f = model.maskFnMode(MaskFn.SIGMOID, 0);
                 PatchableModel.PatchMode p = model.patchMode(patch)) {
                plain = HostTensor.of(model.forward(clean, pad)).floats();
                try (PatchableModel.MaskBatch b = model.maskBatchSize(batch.batchSize())) {
                    batched = HostTensor.of(model.forward(clean, pad)).floats();
                }
            }
            double max = 0;
            for (int i = 0; i < plain.length; i++) max = Math.max(max, Math.abs(plain[i] - batched[i]));
            assertTrue(max <= 1e-4, "per-example sigmoid masks change the logits by " + max);
        }
    }

    @Test
    void badUseIsAClearError() {
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard();
             PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true,
                 Kernels.reference())) {
            IllegalArgumentException zero = assertThrows(IllegalArgumentException.class, () -> model.maskBatchSize(0));
            assertTrue(zero.getMessage().contains("maskBatchSize must be >= 1, got 0"), zero.getMessage());
            Tensor patch = Ablations.srcAblations(model, Inputs.input(batch, Ablations.CleanCorrupt.CORRUPT),
                Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
            try (PatchableModel.MaskBatch b = model.maskBatchSize(batch.batchSize() + 1);
                 PatchableModel.PatchMode p = model.patchMode(patch)) {
                assertThrows(IllegalStateException.class, () -> model.maskBatchSize(2), "does not nest");
                assertThrows(IllegalStateException.class, model::currentMasks);
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> model.forward(
                    Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN)));
                assertTrue(e.getMessage().contains("per-example mask batch size " + (batch.batchSize() + 1)),
                    e.getMessage());
            }
            assertThrows(IllegalStateException.class, model::exampleMaskGradients, "outside the scope");
        }
    }
}
