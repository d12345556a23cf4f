package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/** AutoCircuit's mask functions and their constants. */
class MaskFnTest {

    @Test
    void constantsAreCaoEtAl() {
        assertEquals(Math.log(5), MaskFn.INIT_MASK_VAL, 1e-12);                    // ≈ 1.6094379
        assertEquals((2.0 / 3.0) * Math.log(1.0 / 11.0), MaskFn.REGULARIZE_CONST, 1e-12);   // ≈ −1.5986
    }

    @Test
    void sigmoidIsElementwise() {
        try (PointerScope s = new PointerScope()) {
            Tensor m = HostTensor.ofFloats(new float[] {0, 2, -2}, 3).toTensor();
            float[] out = HostTensor.of(MaskFn.SIGMOID.apply(m, 4, false)).floats();
            assertEquals(0.5f, out[0], 1e-6);
            assertEquals(1 / (1 + Math.exp(-2)), out[1], 1e-6);
            assertEquals(1 / (1 + Math.exp(2)), out[2], 1e-6);
        }
    }

    @Test
    void hardConcreteSamplesPerBatchElementInZeroOne() {
        try (PointerScope s = new PointerScope()) {
            torch.manual_seed(0);
            // u is clamped to [1e-4, 1-1e-4], so logit(u) lies in [-9.21, 9.21]: a mask of +-20 makes every sample exactly 1 / 0
            Tensor big = torch.full(new long[] {2, 50}, new Scalar(20.0));
            Tensor small = torch.full(new long[] {2, 50}, new Scalar(-20.0));
            Tensor mid = torch.zeros(2, 50);
            Tensor sample = MaskFn.HARD_CONCRETE.apply(mid, 8, false);
            assertArrayEquals(new long[] {8, 2, 50}, sample.shape(), "a leading batch dimension");
            float[] v = HostTensor.of(sample).floats();
            double mean = 0;
            for (float x : v) {
                assertTrue(x >= 0 && x <= 1, "sample " + x + " outside [0, 1]");
                mean += x / v.length;
            }
            assertEquals(0.5, mean, 0.1, "mask 0 gives samples centred on 0.5");
            assertTrue(HostTensor.of(sample.select(0, 0)).equals(HostTensor.of(sample.select(0, 1))) == false,
                "independent samples per batch element");
            for (float x : HostTensor.of(MaskFn.HARD_CONCRETE.apply(big, 4, false)).floats()) assertEquals(1f, x, 0f);
            for (float x : HostTensor.of(MaskFn.HARD_CONCRETE.apply(small, 4, false)).floats()) assertEquals(0f, x, 0f);
        }
    }

    @Test
    void hardConcreteIsDifferentiable() {
        try (PointerScope s = new PointerScope()) {
            Tensor m = torch.zeros(3, 4);
            m.set_requires_grad(true);
            MaskFn.HARD_CONCRETE.apply(m, 5, false).sum().backward();
            assertArrayEquals(new long[] {3, 4}, m.grad().shape());
            assertTrue(HostTensor.of(m.grad().abs().sum()).floats()[0] > 0, "gradient reaches the mask logits");
        }
    }
}
