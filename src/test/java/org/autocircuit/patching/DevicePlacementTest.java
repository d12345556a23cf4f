package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.autocircuit.kernels.Device;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * The model's device on a machine without a GPU: a CUDA model is refused before any work, a CPU model keeps every
 * tensor on the CPU, and a patch made on another device is refused naming both devices. (libtorch's meta device
 * cannot stand in for CUDA through a whole pass: this libtorch has no meta kernel for index_select, layer_norm,
 * scaled_dot_product_attention and nan_to_num.)
 */
class DevicePlacementTest {

    @Test
    void aCudaModelOnThisCpuBuildIsRefusedBeforeAnyFileIsRead() {
        // the folder does not exist: the device is checked first, so the error is about the device
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> HookedTransformer.fromPretrained(
            Path.of("no-such-model-folder"), WeightProcessing.NONE, Device.parse("cuda:0")));
        assertTrue(e.getMessage().contains("device cuda:0") && e.getMessage().contains("CPU build"), e.getMessage());
    }

    @Test
    void aCpuModelMakesItsMasksBuffersAndKernelsOnTheCpu() throws Exception {
        try (PatchableModel patchable = PatchableModel.of(HookedTransformer.fromPretrained(Fixtures.modelDir(),
                 WeightProcessing.NONE, Device.CPU), true, OutputSlice.LAST_SEQ, null, true, null);
             PointerScope scope = new PointerScope()) {
            assertEquals(Device.CPU, patchable.device());
            for (Tensor m : patchable.masks().values()) assertTrue(Device.CPU.holds(m));
            assertTrue(Device.CPU.holds(patchable.sourceBuffer(2, 3)));
        }
    }

    @Test
    void aPatchOnAnotherDeviceIsRefusedNamingBoth() throws Exception {
        try (PatchableModel patchable = PatchableModel.of(HookedTransformer.fromPretrained(Fixtures.modelDir()), true,
                 OutputSlice.LAST_SEQ, null, true, null);
             PointerScope scope = new PointerScope()) {
            // libtorch's shape-only meta device stands in for CUDA, which this CPU build lacks
            Tensor onMeta = patchable.sourceBuffer(2, 5).to(new org.bytedeco.pytorch.Device("meta"), torch.ScalarType.Float);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> patchable.patchMode(onMeta));
            assertTrue(e.getMessage().contains("patchSrcOuts is on meta but the model runs on cpu"), e.getMessage());
        }
    }
}
