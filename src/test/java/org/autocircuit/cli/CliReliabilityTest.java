package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.autocircuit.algorithms.PruneAlgorithms;
import org.autocircuit.cli.ReportCommandTest.Outcome;
import org.autocircuit.model.SafeTensors;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.testing.ChildJvm;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The command line under hostile but fair use (docs/reliability.md): bad input is refused before the model loads,
 * outputs never destroy what is at their path, checkpoints of another model are refused, and SIGTERM saves ACDC's
 * work. Uses the bundled induction model, the smallest one.
 */
class CliReliabilityTest {
    static final Path MODEL = Path.of("datasets/models/induction-2l");
    static final Path DATASET = Path.of("datasets/induction.json");
    @TempDir Path dir;

    private static Outcome run(String... args) {
        return ReportCommandTest.run(args);
    }

    private static void assertBadInput(Outcome o, String... parts) {
        assertEquals(2, o.code(), o.err());
        for (String p : parts) assertTrue(o.err().contains(p), "'" + p + "' missing from: " + o.err());
    }

    private String[] custom(String... more) {
        String[] base = {"discover", "--model", MODEL.toString(), "--dataset", DATASET.toString(), "--no-report",
            "--top", "1"};
        return Stream.concat(Stream.of(base), Stream.of(more)).toArray(String[]::new);
    }

    @Test
    void discoverUsesTheFoldersOwnTokenizer() throws IOException {
        Path result = dir.resolve("r.json");
        Outcome o = run(custom("--algorithms", "EAP", "--result", result.toString()));
        assertEquals(0, o.code(), o.err());
        JsonNode r = new ObjectMapper().readTree(result.toFile());
        assertEquals("custom", r.path("run").path("task").asText());
    }

    @Test
    void aModelWithAnotherVocabularyIsAClearError() {
        // the GPT-2 IOI prompts on the 65-word model: a word outside its vocabulary, named, not a libtorch backtrace
        Outcome o = run("evaluate", "--model", MODEL.toString(), "--dataset", "datasets/ioi-32.json");
        assertBadInput(o, "ioi-32.json", "prompts[", "vocabulary");
        assertFalse(o.err().contains("index out of range"), o.err());
    }

    @Test
    void outputsNeverReplaceWhatIsNotTheirs() throws Exception {
        Path folder = Files.createDirectory(dir.resolve("folder"));
        assertBadInput(run(custom("--result", folder.toString())), "--result", "a folder");
        Path link = Files.createSymbolicLink(dir.resolve("link.json"), dir.resolve("target.json"));
        assertBadInput(run(custom("--result", link.toString())), "--result", "symbolic link");
        assertFalse(Files.exists(dir.resolve("target.json")));
        assertBadInput(run(custom("--result", "/dev/full")), "--result", "not a regular file");
        Path fifo = dir.resolve("fifo");
        if (new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0) {
            assertBadInput(run(custom("--result", fifo.toString())), "not a regular file");
        }
        Path copy = dir.resolve("data.json");
        Files.copy(DATASET, copy);
        byte[] before = Files.readAllBytes(copy);
        assertBadInput(run("discover", "--model", MODEL.toString(), "--dataset", copy.toString(), "--no-report",
            "--result", copy.toString()), "--result", "is also an input");
        assertBadInput(run("discover", "--model", MODEL.toString(), "--dataset", DATASET.toString(), "--report",
            MODEL.resolve("config.json").toString()), "--report", "is also an input");
        assertTrue(java.util.Arrays.equals(before, Files.readAllBytes(copy)));
        Path foreign = dir.resolve("notes.json");
        Files.writeString(foreign, "{\"mine\": true}");
        assertBadInput(run(custom("--algorithms", "Random", "--result", foreign.toString())), "already exists", "--force");
        assertEquals("{\"mine\": true}", Files.readString(foreign));
        assertBadInput(run("report", "--result", foreign.toString(), "--out", foreign.toString()), "is also an input");
        assertBadInput(run("generate", "ioi", "--n", "4", "--out", foreign.toString()), "--force");
        assertEquals("{\"mine\": true}", Files.readString(foreign));
    }

    @Test
    void anOwnResultIsReplacedAndAForeignOneWithForce() throws IOException {
        Path result = dir.resolve("r.json");
        Files.writeString(result, "not ours");
        assertEquals(0, run(custom("--algorithms", "Random", "--result", result.toString(), "--force")).code());
        long size = Files.size(result);
        assertTrue(size > 100);
        // the file is now one this tool wrote: a rerun refreshes it without --force
        Outcome again = run(custom("--algorithms", "Random", "--result", result.toString()));
        assertEquals(0, again.code(), again.err());
    }

    @Test
    void cheapChecksComeBeforeTheModelLoads() throws IOException {
        assertTimeoutPreemptively(Duration.ofSeconds(60), () -> {
            assertBadInput(run(custom("--algorithms", "EAP,Random,EAP")), "--algorithms", "twice");
            Path file = Files.writeString(dir.resolve("plain"), "x");
            assertBadInput(run(custom("--checkpoint-dir", file.resolve("ck").toString())), "--checkpoint-dir");
            assertBadInput(run("discover", "--model", MODEL.toString(), "--dataset", dir.resolve("nope.json").toString()),
                "nope.json", "no such file");
            assertBadInput(run("discover", "--model", MODEL.toString(), "--dataset", dir.toString()), "not a regular file");
            assertBadInput(run("evaluate", "--batch-size", "100"), "--train-size 16", "--batch-size 100");
            assertBadInput(run("evaluate", "--test-size", "0"), "--test-size 0");
            assertBadInput(run("evaluate", "--train-size", "0"), "--train-size 0");
            // an architecture this port does not load: said so, not "has no tokenizer"
            Path other = Files.createDirectory(dir.resolve("bloom"));
            Files.writeString(other.resolve("config.json"), "{\"architectures\": [\"BloomForCausalLM\"], "
                + "\"vocab_size\": 250880}");
            Files.writeString(other.resolve("model.safetensors"), "");
            Outcome o = run("evaluate", "--model", other.toString());
            assertBadInput(o, "'architectures'", "BloomForCausalLM");
            assertFalse(o.err().contains("has no tokenizer"), o.err());
        });
        Outcome missing = run("discover", "--model", MODEL.toString(), "--dataset", dir.resolve("nope.json").toString());
        assertFalse(missing.err().contains("copy"), missing.err());
    }

    @Test
    void identicalCleanAndCorruptIsRefusedBeforeTheWork() throws IOException {
        JsonNode d = new ObjectMapper().readTree(DATASET.toFile());
        for (JsonNode p : d.get("prompts")) ((com.fasterxml.jackson.databind.node.ObjectNode) p).set("corrupt", p.get("clean"));
        Path same = dir.resolve("same.json");
        new ObjectMapper().writeValue(same.toFile(), d);
        assertBadInput(run("discover", "--model", MODEL.toString(), "--dataset", same.toString(), "--no-report"),
            "every corrupt prompt equals its clean prompt");
    }

    @Test
    void customTasksGetTheirOwnCheckpointFiles() {
        TaskPaths paths = TaskPaths.under(Path.of("."));
        String a = org.autocircuit.discovery.Discovery.checkpointName(Task.generic(MODEL, DATASET, 8, 2), paths, PruneAlgorithms.ACDC);
        String b = org.autocircuit.discovery.Discovery.checkpointName(Task.generic(MODEL, Path.of("datasets/ioi-32.json"), 8, 2), paths,
            PruneAlgorithms.ACDC);
        assertNotEquals(a, b);
        assertTrue(a.startsWith("custom-") && a.endsWith("-ACDC.ckpt"), a);
    }

    @Test
    void aCheckpointOfOtherWeightsIsRefused() throws IOException {
        Path model = Files.createDirectory(dir.resolve("m"));
        for (String f : new String[] {"config.json", "model.safetensors", "vocab.txt"}) {
            Files.copy(MODEL.resolve(f), model.resolve(f));
        }
        Path ck = dir.resolve("ck");
        String[] args = {"discover", "--model", model.toString(), "--dataset", DATASET.toString(), "--no-report",
            "--algorithms", "ACDC", "--checkpoint-dir", ck.toString(), "--top", "1"};
        Outcome first = run(args);
        assertEquals(0, first.code(), first.err());
        // same config, other weights (one LayerNorm gain scaled): the old scores must not come back
        try (PointerScope scope = new PointerScope(); SafeTensors st = SafeTensors.open(model.resolve("model.safetensors"))) {
            Map<String, Tensor> w = new HashMap<>();
            for (String n : st.names()) w.put(n, st.load(n));
            w.put("transformer.ln_f.weight", w.get("transformer.ln_f.weight").mul(new Scalar(1.5)));
            st.close();
            SafeTensors.write(model.resolve("model.safetensors"), w);
        }
        assertBadInput(run(args), "ACDC checkpoint", "model weights");
    }

    @Test
    void staleTempFilesOfOurOwnAreCleanedUp() throws IOException {
        Path result = dir.resolve("r.json");
        Path stale = Files.writeString(dir.resolve(".r.json.12345.tmp"), "half a file");
        Files.setLastModifiedTime(stale, FileTime.from(Instant.now().minus(Duration.ofHours(1))));
        Path fresh = Files.writeString(dir.resolve(".r.json.67890.tmp"), "someone writing now");
        Path other = Files.writeString(dir.resolve(".other.json.1.tmp"), "not this target's");
        Files.setLastModifiedTime(other, FileTime.from(Instant.now().minus(Duration.ofHours(1))));
        assertEquals(0, run(custom("--algorithms", "Random", "--result", result.toString())).code());
        assertFalse(Files.exists(stale));
        assertTrue(Files.exists(fresh) && Files.exists(other));
    }

    @Test
    void sigtermSavesAcdcsWorkAndSaysSo() throws Exception {
        Path ck = dir.resolve("ck");
        Path log = dir.resolve("child.log");
        Process p = ChildJvm.start(log, Main.class, "discover", "--model", MODEL.toString(), "--dataset",
            DATASET.toString(), "--no-report", "--algorithms", "ACDC", "--checkpoint-dir", ck.toString());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (!ChildJvm.output(log).contains("ACDC τ=") && p.isAlive() && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertTrue(p.isAlive(), "ACDC ended before it could be stopped: " + ChildJvm.output(log));
        p.destroy();   // SIGTERM
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), ChildJvm.output(log));
        String out = ChildJvm.output(log);
        assertFalse(ChildJvm.diedOfSignal(p.exitValue()) && p.exitValue() != 143, out);
        assertTrue(out.contains("ACDC stopped") && out.contains("saved in") && out.contains("to resume"), out);
        Path[] files;
        try (Stream<Path> s = Files.list(ck)) {
            files = s.toArray(Path[]::new);
        }
        assertEquals(1, files.length, java.util.Arrays.toString(files));   // the checkpoint, no temp file
        JsonNode c = new ObjectMapper().readTree(files[0].toFile());
        assertTrue(c.path("tauIndex").asInt() > 0 || c.path("position").asInt() > 0, c.toString());
        assertTrue(c.path("identity").path("model").isTextual(), c.toString());
    }
}
