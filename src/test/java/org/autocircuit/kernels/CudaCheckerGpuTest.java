package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The GPU half of the CUDA kernels' checker, from JUnit: on a machine with an NVIDIA GPU, {@code gpu-check.sh} runs the
 * checker binary (built by {@code src/main/cuda/build-checker.sh}) and every case must pass. Tagged {@code gpu}
 * (excluded by default); skipped, saying why, when there is no NVIDIA device node or no built checker.
 *
 * <pre>mvn test -DexcludedGroups=slow -Dgroups=gpu -Dtest=CudaCheckerGpuTest</pre>
 */
@Tag("gpu")
class CudaCheckerGpuTest {

    @Test
    void everyKernelAndDtypeMatchesTheReferenceOnThisGpu() throws Exception {
        assumeTrue(Files.exists(Path.of("/dev/nvidia0")), "no NVIDIA device (/dev/nvidia0): the checker needs a GPU");
        Path root = Path.of("").toAbsolutePath();
        Path binary = root.resolve("target/cuda-checker/edge_patch_check");
        assumeTrue(Files.isExecutable(binary), "no checker at " + binary + ": run src/main/cuda/build-checker.sh first");
        Path out = Files.createTempDirectory("gpu-check");
        ProcessBuilder pb = new ProcessBuilder(root.resolve("src/main/cuda/gpu-check.sh").toString())
            .redirectErrorStream(true);
        pb.environment().put("OUT", out.toString());
        Process p = pb.start();
        String output = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(200, TimeUnit.SECONDS), "gpu-check.sh did not finish");
        System.out.println(output);
        assertEquals(0, p.exitValue(), output);
        assertTrue(output.contains(", 0 failed,") && output.contains("all OK"), output);
    }
}
