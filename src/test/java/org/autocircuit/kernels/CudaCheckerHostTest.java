package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The GPU-free half of the CUDA kernels' standalone checker (src/main/cuda/checker): its float64 reference,
 * 16-bit rounding, sparse plan and GPU cost model, error bound, case list and bandwidth formula, compiled with g++
 * (no CUDA toolkit needed) and run. The GPU half (the kernels themselves) needs a GPU: docs/native.md, "GPU".
 * Skipped, saying so, only when there is no g++ on the PATH (the native build needs one anyway).
 */
class CudaCheckerHostTest {

    @Test
    void hostSelfTestPasses() throws Exception {
        Path root = Path.of("").toAbsolutePath();
        Path source = root.resolve("src/main/cuda/checker/host_test.cpp");
        assertTrue(Files.isRegularFile(source), source.toString());
        String cxx = System.getenv().getOrDefault("CXX", "g++");
        assumeTrue(onPath(cxx), "no C++ compiler '" + cxx + "' on the PATH: the checker's host self-test cannot be built");
        Path out = Files.createTempDirectory("cuda-checker-host").resolve("host_test");
        run(List.of(cxx, "-std=c++17", "-O1", "-Wall", "-Werror", "-I", root.resolve("src/main/cuda").toString(),
            "-I", root.resolve("src/main/cuda/checker").toString(), source.toString(), "-o", out.toString()), 0);
        String output = run(List.of(out.toString()), 0);
        assertTrue(output.contains("host self-test: all OK"), output);
        for (String group : new String[] {"16-bit rounding", "float64 reference and gradients", "sparse plan and GPU cost model",
            "running sum", "error bound and comparison", "cases and bandwidth"}) {
            assertTrue(output.lines().anyMatch(l -> l.contains(group) && l.trim().endsWith("OK")), group + "\n" + output);
        }
        assertTrue(output.contains(", 0 failed"), output);
    }

    private static boolean onPath(String exe) {
        String path = System.getenv("PATH");
        if (path == null) return false;
        for (String dir : path.split(File.pathSeparator)) {
            if (Files.isExecutable(Path.of(dir, exe))) return true;
        }
        return false;
    }

    private static String run(List<String> command, int expectedExit) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        byte[] bytes = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(300, TimeUnit.SECONDS), "timed out: " + command);
        String output = new String(bytes, StandardCharsets.UTF_8);
        assertEquals(expectedExit, p.exitValue(), String.join(" ", command) + "\n" + output);
        return output;
    }
}
