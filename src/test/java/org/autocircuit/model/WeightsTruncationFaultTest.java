package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.concurrent.TimeUnit;
import org.autocircuit.testing.ChildJvm;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fault test: model.safetensors shrinks while a model loads (a non-atomic copy over it). With a memory-mapped read
 * the JVM died of SIGBUS; now the load must end in an exception naming the file. The load runs in a child JVM so
 * that a crash fails this test instead of killing the test run.
 */
class WeightsTruncationFaultTest {
    @TempDir Path dir;

    /** Child: opens the weights (header validated), truncates the file to half, then loads every tensor. */
    public static void main(String[] args) throws Exception {
        Path file = Path.of(args[0]);
        try (SafeTensors st = SafeTensors.open(file); PointerScope scope = new PointerScope()) {
            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
                ch.truncate(ch.size() / 2);
            }
            for (String name : st.names()) st.load(name);
            System.out.println("LOADED-EVERYTHING");
            System.exit(0);
        } catch (IllegalArgumentException e) {
            System.out.println("CLEAN-ERROR " + e.getMessage());
            System.exit(3);
        }
    }

    @Test
    void truncatedWhileLoadingIsAnErrorNotASignal() throws Exception {
        Path weights = dir.resolve("model.safetensors");
        Files.copy(Fixtures.resource("models/gpt2-tiny-random/model.safetensors"), weights);
        Path log = dir.resolve("child.log");
        Process p = ChildJvm.start(log, WeightsTruncationFaultTest.class, weights.toString());
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child did not finish: " + ChildJvm.output(log));
        int code = p.exitValue();
        String out = ChildJvm.output(log);
        assertFalse(ChildJvm.diedOfSignal(code), "the JVM died of a signal (exit " + code + "): " + out);
        assertEquals(3, code, out);
        assertTrue(out.contains("CLEAN-ERROR " + weights) && out.contains("truncated"), out);
    }
}
