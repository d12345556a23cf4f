package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * {@link Kernels#forDevice}: tensors on another device, or of a dtype the kernels lack, are refused with the op,
 * the argument and the devices named. There is no CUDA here, so "another device" is libtorch's meta device, which
 * the CPU build has: the check is the same for a CUDA tensor handed to the CPU kernels.
 */
class DeviceKernelsTest {
    private final MaskLayout layout = new MaskLayout(false, false, true);

    /** A float32 tensor on libtorch's meta device (shape only, no storage). */
    static Tensor meta(long... shape) {
        TensorOptions options = new TensorOptions(torch.ScalarType.Float)
            .device(new DeviceOptional(new org.bytedeco.pytorch.Device("meta")));
        return torch.empty(shape, options, new MemoryFormatOptional());
    }

    @Test
    void cpuKernelsComputeWhatTheirDelegateComputes() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(3);
            Tensor input = torch.randn(2, 3, 4), patch = torch.randn(5, 2, 3, 4), curr = torch.randn(5, 2, 3, 4);
            Tensor[] masks = {torch.rand(2, 5)};
            Kernels k = Kernels.forDevice(Device.CPU);
            assertTrue(k.name().endsWith("@cpu"), k.name());
            Tensor got = k.edgePatch(input, masks, patch, curr, layout)[0];
            Tensor want = Kernels.reference().edgePatch(input, masks, patch, curr, layout)[0];
            assertTrue(torch.allclose(got, want, 1e-5, 1e-5, false));
        }
    }

    @Test
    void aTensorOnAnotherDeviceIsRefusedNamingOpArgumentAndDevices() {
        try (PointerScope scope = new PointerScope()) {
            Tensor input = torch.randn(2, 3, 4), patch = torch.randn(5, 2, 3, 4);
            Kernels k = Kernels.forDevice(Device.CPU);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> k.edgePatch(input, new Tensor[] {torch.rand(2, 5)}, patch, meta(5, 2, 3, 4), layout));
            assertTrue(e.getMessage().startsWith("edgePatch: curr is on meta but these kernels"), e.getMessage());
            assertTrue(e.getMessage().contains("run on cpu"), e.getMessage());
            IllegalArgumentException m = assertThrows(IllegalArgumentException.class,
                () -> k.edgePatch(input, new Tensor[] {torch.rand(2, 5), meta(2, 5)}, patch, patch, layout));
            assertTrue(m.getMessage().contains("masks[1] is on meta"), m.getMessage());
        }
    }

    @Test
    void aDtypeTheKernelsLackIsRefused() {
        try (PointerScope scope = new PointerScope()) {
            Tensor input = torch.zeros(2, 3, 4).to(torch.ScalarType.Long), patch = torch.randn(5, 2, 3, 4);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Kernels.forDevice(Device.CPU).edgePatch(input, new Tensor[] {torch.rand(2, 5)}, patch, patch, layout));
            assertTrue(e.getMessage().contains("edgePatch: input has dtype Long") && e.getMessage().contains("on cpu"),
                e.getMessage());
        }
    }

    @Test
    void cudaKernelsAreRefusedOnThisCpuBuild() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Kernels.forDevice(Device.parse("cuda")));
        assertTrue(e.getMessage().contains("CPU build"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Kernels.forDevice(null));
    }

    @Test
    void outOfMemoryFailuresSuggestASmallerBatch() {
        AutoCircuitNativeException oom = new AutoCircuitNativeException("edge_patch", new RuntimeException(
            "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)"));
        assertTrue(oom.getMessage().startsWith("native edge_patch failed: CUDA out of memory. Tried to allocate 2.00 GiB"),
            oom.getMessage());
        assertTrue(oom.getMessage().endsWith("try a smaller batch size, or fewer prompts per batch)"), oom.getMessage());
        AutoCircuitNativeException other = new AutoCircuitNativeException("edge_patch", new RuntimeException("bad shape"));
        assertEquals("native edge_patch failed: bad shape", other.getMessage());
    }

    @Test
    void outOfMemoryInsideAModelOpIsFoundAlongTheCauseChainOnce() {
        // libtorch's own message (a model op, not our kernels) wrapped by some caller: the advice is found
        RuntimeException torch = new RuntimeException("CUDA out of memory. Tried to allocate 768.00 MiB (GPU 0; "
            + "139.8 GiB total capacity; 139.1 GiB already allocated)");
        String advice = AutoCircuitNativeException.outOfMemoryAdvice(new IllegalStateException("EAP failed", torch));
        assertEquals(" (out of device memory: try a smaller batch size, or fewer prompts per batch)", advice);
        // not repeated when the message already carries it, and nothing for other failures
        assertEquals("", AutoCircuitNativeException.outOfMemoryAdvice(new AutoCircuitNativeException("edge_patch", torch)));
        assertEquals("", AutoCircuitNativeException.outOfMemoryAdvice(new RuntimeException("bad shape")));
        assertEquals("", AutoCircuitNativeException.outOfMemoryAdvice(null));
    }

    @Test
    void peakBandwidthFromClockAndBus() {
        // H100 SXM: HBM3 at 2619 MHz on a 5120-bit bus; H200: 3201 MHz, 6144 bits
        assertEquals(3352.32, CudaSupport.peakBandwidthGBs(2_619_000, 5120), 1e-9);
        assertEquals(4916.736, CudaSupport.peakBandwidthGBs(3_201_000, 6144), 1e-9);
    }
}
