package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import org.autocircuit.kernels.KernelAvailability;
import org.autocircuit.kernels.NativeKernelsLib;
import org.junit.jupiter.api.Test;

/** {@code autocircuit doctor} on this CPU-only build: the JSON's shape and values, and the text form. */
class DoctorCommandTest {

    @Test
    void jsonSaysCpuOnlyAndNamesEveryPart() throws Exception {
        ReportCommandTest.Outcome o = ReportCommandTest.run("doctor", "--json");
        assertEquals(0, o.code(), o.err());
        JsonNode r = new ObjectMapper().readTree(o.out());
        Set<String> keys = new HashSet<>();
        r.fieldNames().forEachRemaining(keys::add);
        assertEquals(Set.of("kernels", "libtorch", "cuda", "cuda_libraries", "cuda_libraries_note", "summary"), keys);

        JsonNode k = r.get("kernels");
        assertEquals(KernelAvailability.isAvailable(), k.get("native_available").asBoolean());
        if (KernelAvailability.isAvailable()) {
            assertEquals(NativeKernelsLib.cpuIsa(), k.get("cpu_variant").asText());
            assertEquals("native-cpu", k.get("selected").asText());
            assertTrue(k.get("unavailability_cause").isNull());
        } else {
            assertEquals("torch", k.get("selected").asText());
            assertFalse(k.get("unavailability_cause").isNull());
        }
        assertFalse(k.get("cuda_compiled").asBoolean(), "the CPU build links no CUDA kernels");

        JsonNode t = r.get("libtorch");
        assertEquals("cpu", t.get("build").asText());
        assertTrue(t.get("version").asText().startsWith("2.13.0"), t.toString());
        assertFalse(t.get("gpu_jar_on_classpath").asBoolean());
        assertEquals(0, t.get("cuda_device_count").asInt());

        JsonNode c = r.get("cuda");
        assertFalse(c.get("presets_on_classpath").asBoolean());
        assertEquals(0, c.get("device_count").asInt());
        assertEquals(0, c.get("devices").size());
        assertTrue(c.get("error").asText().contains("not on the classpath"), c.toString());
        assertTrue(c.get("runtime_version").isNull() && c.get("driver_version").isNull());

        JsonNode libs = r.get("cuda_libraries");
        Set<String> files = new HashSet<>();
        for (JsonNode l : libs) {
            String file = l.get("file").asText();
            files.add(file);
            // independently of the code under test: a library in one of the standard folders must be reported found
            boolean inStandardFolder = Files.isRegularFile(Path.of("/usr/local/cuda/lib64", file));
            if (inStandardFolder) assertTrue(l.get("found").asBoolean(), file);
            if (!l.get("found").asBoolean()) {
                assertFalse(l.get("provide").asText().isEmpty(), file);
                assertTrue(l.get("found_at").isNull());
            } else {
                assertTrue(l.get("provide").isNull());
            }
        }
        assertTrue(files.containsAll(Set.of("libcuda.so.1", "libcudart.so.13", "libcublas.so.13", "libcudnn.so.9", "libnccl.so.2",
            "libcusparse.so.12")), files.toString());
        for (JsonNode l : libs) {
            if (l.get("file").asText().startsWith("libcublas")) assertFalse(l.get("in_redist_jar").asBoolean());
            if (l.get("file").asText().equals("libcudart.so.13")) assertTrue(l.get("in_redist_jar").asBoolean());
        }
        assertTrue(r.get("cuda_libraries_note").asText().contains("-Dorg.bytedeco.javacpp.pathsFirst=true"));
        assertTrue(r.get("summary").asText().startsWith("CPU only"), r.get("summary").asText());
    }

    @Test
    void textFormSaysTheSame() {
        ReportCommandTest.Outcome o = ReportCommandTest.run("doctor");
        assertEquals(0, o.code(), o.err());
        assertTrue(o.out().contains("libtorch:  2.13.0"), o.out());
        assertTrue(o.out().contains("cpu build"), o.out());
        assertTrue(o.out().contains("summary:   CPU only"), o.out());
        assertTrue(o.out().contains("libcublas.so.13"), o.out());
    }

    @Test
    void discoverRunsABfloat16ModelAndRefusesOtherDtypes(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path result = dir.resolve("r.json");
        ReportCommandTest.Outcome ok = ReportCommandTest.run("discover", "--model", "datasets/models/induction-2l",
            "--dataset", "datasets/induction.json", "--no-report", "--top", "1", "--algorithms", "EAP",
            "--device", "cpu", "--dtype", "bfloat16", "--result", result.toString());
        assertEquals(0, ok.code(), ok.err());
        JsonNode r = new com.fasterxml.jackson.databind.ObjectMapper().readTree(result.toFile());
        assertEquals("custom", r.path("run").path("task").asText());
        ReportCommandTest.Outcome bad = ReportCommandTest.run("discover", "--dtype", "int8");
        assertEquals(2, bad.code(), bad.out());
        assertTrue(bad.err().contains("--dtype") && bad.err().contains("'int8'"), bad.err());
    }

    @Test
    void cudaVersionsAreDecoded() {
        assertEquals("13.3", DoctorCommand.versionString(13030));
        assertEquals("12.9", DoctorCommand.versionString(12090));
    }

    @Test
    void deviceOptionRefusesCudaOnThisBuildAndBadSpellings() {
        ReportCommandTest.Outcome cuda = ReportCommandTest.run("evaluate", "--device", "cuda");
        assertEquals(2, cuda.code(), cuda.out());
        assertTrue(cuda.err().contains("--device cuda") && cuda.err().contains("CPU build"), cuda.err());
        ReportCommandTest.Outcome bad = ReportCommandTest.run("discover", "--device", "gpu:0");
        assertEquals(2, bad.code(), bad.out());
        assertTrue(bad.err().contains("cpu, cuda or cuda:N") && bad.err().contains("'gpu:0'"), bad.err());
        ReportCommandTest.Outcome index = ReportCommandTest.run("discover", "--device", "cuda:7");
        assertEquals(2, index.code());
        assertTrue(index.err().contains("cuda:7"), index.err());
    }
}
