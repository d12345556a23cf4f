package org.autocircuit.util;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

class HostTensorTest {

    @Test
    void copiesEmptyTensorsWithoutTouchingTheirStorage() {
        try (PointerScope scope = new PointerScope()) {
            HostTensor f = HostTensor.of(torch.zeros(0, 3));
            assertArrayEquals(new long[] {0, 3}, f.shape());
            assertEquals(0, f.numel());
            HostTensor l = HostTensor.of(torch.zeros(new long[] {2, 0}, new org.bytedeco.pytorch.TensorOptions(torch.ScalarType.Long)));
            assertArrayEquals(new long[] {2, 0}, l.shape());
        }
    }

    @Test
    void roundTripsValuesAndShape() {
        try (PointerScope scope = new PointerScope()) {
            HostTensor h = HostTensor.ofFloats(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
            HostTensor back = HostTensor.of(h.toTensor());
            assertArrayEquals(h.shape(), back.shape());
            assertArrayEquals(h.floats(), back.floats());
        }
    }
}
