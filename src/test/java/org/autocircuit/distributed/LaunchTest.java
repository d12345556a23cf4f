package org.autocircuit.distributed;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.cli.Main;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Worker JVMs started by {@link Launcher} on loopback: a launched command prints exactly what one process prints, and
 * a rank that dies or hangs makes the others stop with the error, with nothing written. Child JVMs are expensive on a
 * small machine: two cases run by default, the rest are tagged slow.
 */
class LaunchTest {
    static final List<String> WORKER_JVM = List.of("-Xmx768m", "-Dorg.bytedeco.javacpp.maxPhysicalBytes=0");

    record Run(int exitCode, String stdout, String stderr, double seconds) {}

    static Run launch(int nproc, Duration timeout, Duration grace, String mainClass, List<String> args) throws Exception {
        return launch(nproc, 1, timeout, grace, mainClass, args);
    }

    /** @param threads compute threads per worker; 0 = libtorch's default, as in this JVM */
    static Run launch(int nproc, int threads, Duration timeout, Duration grace, String mainClass, List<String> args)
            throws Exception {
        Launcher.Spec spec = new Launcher.Spec(nproc, 1, 0, "127.0.0.1", 0, timeout, grace, threads,
            DistributedEnvironment.Backend.GLOO, WORKER_JVM, System.getProperty("java.class.path"), mainClass, args);
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        int code = Launcher.run(spec, out, new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8),
            (System.nanoTime() - t0) / 1e9);
    }

    /** Runs the command line in this JVM (one process), capturing stdout. */
    static String single(String... args) {
        PrintStream saved = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            assertEquals(0, Main.execute(args), "single-process exit code");
        } finally {
            System.setOut(saved);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    @Timeout(600)
    void launchedEvaluatePrintsWhatOneProcessPrints() throws Exception {
        String[] args = {"evaluate", "--json", "--batch-size", "4", "--train-size", "8", "--test-size", "8",
            "--edge-counts", "0,2,5,20,110", "--model", "datasets/models/gpt2-tiny-random", "--dataset", "datasets/ioi-32.json"};
        JsonNode one = withoutTiming(single(args));
        // the workers use this JVM's current thread count (other tests change it), so that matrix products round alike
        Run two = launch(2, org.bytedeco.pytorch.global.torch.get_num_threads(), Duration.ofSeconds(300),
            Duration.ofSeconds(10), Main.class.getName(), List.of(args));
        assertEquals(0, two.exitCode(), two.stderr());
        assertSameJson(one, withoutTiming(two.stdout()), "");
    }

    /**
     * The same JSON but for float rounding, everything else exactly. Numbers agree to 1e-4 relative (1e-8 absolute):
     * libtorch's thread pools and OpenBLAS may round matrix products differently in a fresh worker than in this
     * long-lived JVM (1e-7 relative in the logits), and KL divergences of nearly equal distributions amplify that to
     * ~2e-5 (seen: 0.0065074763 vs 0.0065075960). The scores themselves are held to 1e-5 in DataParallelAlgorithmsTest.
     */
    static void assertSameJson(JsonNode expected, JsonNode got, String path) {
        if (expected.isNumber() && got.isNumber()) {
            double a = expected.asDouble(), b = got.asDouble();
            assertEquals(a, b, 1e-4 * Math.abs(a) + 1e-8, path);
        } else if (expected.isContainerNode()) {
            assertEquals(expected.size(), got.size(), path + " size");
            if (expected.isArray()) {
                for (int i = 0; i < expected.size(); i++) assertSameJson(expected.get(i), got.get(i), path + "[" + i + "]");
            } else {
                expected.fieldNames().forEachRemaining(f -> {
                    assertTrue(got.has(f), path + "." + f + " missing");
                    assertSameJson(expected.get(f), got.get(f), path + "." + f);
                });
            }
        } else {
            assertEquals(expected, got, path);
        }
    }

    private static JsonNode withoutTiming(String json) throws Exception {
        ObjectNode n = (ObjectNode) new ObjectMapper().readTree(json);
        assertTrue(n.has("measurements"), json);
        n.remove("seconds");
        return n;
    }

    @Test
    @Timeout(300)
    void aRankThatDiesStopsTheOthersAndNothingIsWritten(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result.txt");
        Run r = launch(2, Duration.ofSeconds(60), Duration.ofSeconds(30), FaultyWorker.class.getName(),
            List.of("die", result.toString()));
        assertEquals(9, r.exitCode(), "the first failure is rank 1's halt(9): " + r.stderr());
        assertTrue(r.stderr().contains("autocircuit launch: rank 1 exited with code 9"), r.stderr());
        assertTrue(r.stderr().contains("[rank 0] worker: rank 0 of 2: all-reduce of 1 values failed"), r.stderr());
        assertFalse(r.stderr().contains("killing rank 0"), "rank 0 stopped by itself: " + r.stderr());
        assertNothingWritten(dir);
    }

    @Test
    @Tag("slow")
    @Timeout(300)
    void aRankThatHangsIsTimedOutAndKilled(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result.txt");
        Run r = launch(2, Duration.ofSeconds(5), Duration.ofSeconds(3), FaultyWorker.class.getName(),
            List.of("hang", result.toString()));
        assertEquals(1, r.exitCode(), r.stderr());
        assertTrue(r.stderr().contains("[rank 0] worker: rank 0 of 2: all-reduce of 1 values failed"), r.stderr());
        assertTrue(r.stderr().contains("within 5 s"), r.stderr());
        assertTrue(r.stderr().contains("killing rank 1"), r.stderr());
        assertTrue(r.seconds() < 240, "bounded by the timeout and the grace: " + r.seconds() + " s");
        assertNothingWritten(dir);
    }

    @Test
    @Tag("slow")
    @Timeout(300)
    void healthyWorkersWriteOnceFromRankZero(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result.txt");
        Run r = launch(3, Duration.ofSeconds(60), Duration.ofSeconds(10), FaultyWorker.class.getName(),
            List.of("ok", result.toString()));
        assertEquals(0, r.exitCode(), r.stderr());
        assertEquals("sum 18.0\n", r.stdout(), "three all-reduces of 1 + 2 + 3, printed once");
        assertEquals("sum 18.0\n", Files.readString(result));
    }

    @Test
    @Tag("slow")
    @Timeout(900)
    void launchedDiscoverOnThreeRanksWritesWhatOneProcessWrites(@TempDir Path dir) throws Exception {
        List<String> common = List.of("discover", "--task", "induction-2l", "--algorithms", "EAP,EAP (exact),ACDC",
            "--no-report", "--edge-counts", "0,5,20");
        List<String> one = new ArrayList<>(common);
        one.addAll(List.of("--result", dir.resolve("one.json").toString()));
        single(one.toArray(String[]::new));
        List<String> three = new ArrayList<>(common);
        three.addAll(List.of("--result", dir.resolve("three.json").toString()));
        Run r = launch(3, 0, Duration.ofSeconds(600), Duration.ofSeconds(10), Main.class.getName(), three);
        assertEquals(0, r.exitCode(), r.stderr());
        JsonNode a = algorithms(dir.resolve("one.json")), b = algorithms(dir.resolve("three.json"));
        assertEquals(a.get("ACDC").get("scores"), b.get("ACDC").get("scores"), "ACDC keeps the same edges");
        assertEquals(a.get("ACDC").get("curves"), b.get("ACDC").get("curves"), "the same ACDC circuit measurements");
        for (String key : List.of("Edge Answer Logit Diff Gradient At Clean", "Edge Attribution Patching")) {
            JsonNode x = a.get(key).get("topEdges"), y = b.get(key).get("topEdges");
            assertEquals(x.size(), y.size(), key);
            for (int i = 0; i < x.size(); i++) {
                double u = x.get(i).get("score").asDouble(), v = y.get(i).get("score").asDouble();
                assertEquals(x.get(i).get("edge"), y.get(i).get("edge"), key + " top edge " + i);
                assertEquals(u, v, 1e-5 * Math.abs(u) + 1e-7, key + " top edge " + i);
            }
        }
    }

    /** algorithm key → its result. */
    private static JsonNode algorithms(Path resultFile) throws Exception {
        JsonNode r = new ObjectMapper().readTree(resultFile.toFile());
        ObjectNode out = new ObjectMapper().createObjectNode();
        for (JsonNode alg : r.get("algorithms")) out.set(alg.get("key").asText(), alg);
        return out;
    }

    private static void assertNothingWritten(Path dir) throws Exception {
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(List.of(), s.toList(), "no result and no temp file left in " + dir);
        }
    }
}
