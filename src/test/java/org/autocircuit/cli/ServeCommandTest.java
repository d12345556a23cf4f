package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** `autocircuit serve` refuses bad settings with exit code 2 and a message naming the option, before binding. */
class ServeCommandTest {

    @TempDir
    Path tmp;

    private String refused(String... args) {
        PrintStream old = System.err;
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        try {
            assertEquals(2, Main.execute(args));
        } finally {
            System.setErr(old);
        }
        return err.toString(StandardCharsets.UTF_8);
    }

    @Test
    void badSettingsAreRefusedNamingTheOption() throws Exception {
        String state = tmp.resolve("state").toString();
        assertTrue(refused("serve", "--state", state, "--models", tmp.resolve("nope").toString()).contains("--models"));
        assertTrue(refused("serve", "--state", state, "--datasets", tmp.resolve("nope").toString()).contains("--datasets"));
        assertTrue(refused("serve", "--state", state, "--token-file", tmp.resolve("nope").toString()).contains("--token-file"));
        Path empty = Files.writeString(tmp.resolve("empty-token"), "  \n");
        assertTrue(refused("serve", "--state", state, "--token-file", empty.toString()).contains("is empty"));
        assertTrue(refused("serve", "--state", state, "--port", "70000").contains("--port"));
        assertTrue(refused("serve", "--state", state, "--max-jobs", "0").contains("--max-jobs"));
    }
}
