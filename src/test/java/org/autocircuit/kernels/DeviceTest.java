package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/** {@link Device}: parsing, the availability rule, and (on this CPU-only build) that CUDA is refused clearly. */
class DeviceTest {

    @Test
    void parsesTheThreeForms() {
        assertEquals(Device.CPU, Device.parse("cpu"));
        assertEquals(Device.CPU, Device.parse(" CPU "));
        assertEquals(Device.CUDA, Device.parse("cuda"));
        assertEquals(Device.cuda(0), Device.parse("cuda:0"));
        assertEquals(Device.cuda(3), Device.parse("CUDA:3"));
        assertEquals("cuda:3", Device.parse("cuda:3").toString());
        assertEquals("cuda", Device.CUDA.toString());
        assertEquals("cpu", Device.CPU.toString());
        assertTrue(Device.parse("cuda:1").isCuda());
        assertFalse(Device.CPU.isCuda());
    }

    @Test
    void rejectsOtherSpellingsNamingTheValue() {
        for (String bad : new String[] {"gpu", "cuda:", "cuda:-1", "cuda:x", "cuda:1:2", "", "cpu:0", "cuda:99999"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Device.parse(bad), bad);
            assertTrue(e.getMessage().contains("cpu, cuda or cuda:N") && e.getMessage().contains("'" + bad + "'"),
                e.getMessage());
        }
        assertThrows(IllegalArgumentException.class, () -> Device.parse(null));
        assertThrows(IllegalArgumentException.class, () -> Device.cuda(-1));
        assertThrows(IllegalArgumentException.class, () -> new Device(Device.Type.CPU, 0));
    }

    @Test
    void availabilityRuleNamesWhatIsMissing() {
        Device.CPU.checkAvailable(false, false, 0, null);  // always available
        IllegalStateException noBuild = assertThrows(IllegalStateException.class,
            () -> Device.CUDA.checkAvailable(false, false, 0, "x"));
        assertTrue(noBuild.getMessage().contains("CPU build") && noBuild.getMessage().contains("-Pgpu"), noBuild.getMessage());
        IllegalStateException notLoaded = assertThrows(IllegalStateException.class,
            () -> Device.CUDA.checkAvailable(true, false, 0, "why"));
        assertTrue(notLoaded.getMessage().contains("on the classpath but not loaded (why)"), notLoaded.getMessage());
        IllegalStateException noDevice = assertThrows(IllegalStateException.class,
            () -> Device.cuda(0).checkAvailable(true, true, 0, null));
        assertTrue(noDevice.getMessage().contains("sees no CUDA device"), noDevice.getMessage());
        IllegalStateException noIndex = assertThrows(IllegalStateException.class,
            () -> Device.cuda(2).checkAvailable(true, true, 2, null));
        assertTrue(noIndex.getMessage().contains("cuda:2 does not exist") && noIndex.getMessage().contains("cuda:0 to cuda:1"),
            noIndex.getMessage());
        IllegalStateException one = assertThrows(IllegalStateException.class, () -> Device.cuda(1).checkAvailable(true, true, 1, null));
        assertTrue(one.getMessage().contains("1 CUDA device (cuda:0)"), one.getMessage());
        Device.cuda(1).checkAvailable(true, true, 2, null);  // exists
        Device.CUDA.checkAvailable(true, true, 1, null);
    }

    @Test
    void onThisCpuBuildCudaIsRefusedAndCpuIsFine() {
        Device.CPU.ensureAvailable();
        CudaSupport.Status status = CudaSupport.status();
        // the default build depends on the CPU jar only
        assertFalse(status.gpuJarOnClasspath(), status.detail());
        assertFalse(status.libtorchCudaBuild(), status.detail());
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Device.parse("cuda:0").ensureAvailable());
        assertTrue(e.getMessage().contains("cuda:0") && e.getMessage().contains("CPU build"), e.getMessage());
    }

    @Test
    void eachRankOfALaunchTakesTheGpuOfItsLocalRank() {
        assertEquals(Device.cuda(3), Device.CUDA.forLocalRank(3));
        assertEquals(Device.cuda(1), Device.cuda(1).forLocalRank(3), "an explicit index is kept");
        assertEquals(Device.CPU, Device.CPU.forLocalRank(3));
        assertThrows(IllegalArgumentException.class, () -> Device.CUDA.forLocalRank(-1));
    }

    @Test
    void placeAndOptionsKeepCpuTensorsWhereTheyAre() {
        try (PointerScope scope = new PointerScope()) {
            Tensor cpu = torch.ones(2, 3);
            assertTrue(Device.CPU.place(cpu) == cpu, "no copy for a tensor already there");
            assertEquals(null, Device.CPU.place(null));
            Tensor made = torch.zeros(new long[] {2}, Device.CPU.options(torch.ScalarType.Long));
            assertTrue(made.is_cpu());
            assertEquals(torch.ScalarType.Long, made.scalar_type().intern());
        }
    }

    @Test
    void tensorsKnowTheirDevice() {
        try (PointerScope scope = new PointerScope()) {
            Tensor cpu = torch.zeros(2, 3);
            assertEquals(Device.CPU, Device.of(cpu));
            assertTrue(Device.CPU.holds(cpu));
            assertFalse(Device.CUDA.holds(cpu));
            Tensor meta = DeviceKernelsTest.meta(2, 3);
            assertFalse(Device.CPU.holds(meta));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Device.of(meta));
            assertTrue(e.getMessage().contains("meta"), e.getMessage());
        }
    }
}
