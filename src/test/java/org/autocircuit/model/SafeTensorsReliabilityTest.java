package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Safetensors files that are wrong in ways that used to load silently (issue: silent wrong models): a header length
 * a few bytes short, junk after the header JSON, bytes that belong to no tensor, and a file that shrinks after it
 * was opened.
 */
class SafeTensorsReliabilityTest {
    @TempDir Path dir;

    /** A file of two F32 tensors a [2] and b [3], header padded with {@code pad} spaces. */
    static byte[] twoTensors(int pad) {
        String json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            + "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[8,20]}}" + " ".repeat(pad);
        return file(json, floats(1, 2, 3, 4, 5));
    }

    static byte[] file(String header, byte[] data) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        return ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN)
            .putLong(h.length).put(h).put(data).array();
    }

    static byte[] floats(float... v) {
        ByteBuffer b = ByteBuffer.allocate(4 * v.length).order(ByteOrder.LITTLE_ENDIAN);
        for (float f : v) b.putFloat(f);
        return b.array();
    }

    private Path write(String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }

    @Test
    void theWellFormedFileLoads() throws IOException {
        try (SafeTensors st = SafeTensors.open(write("ok.safetensors", twoTensors(4)));
             PointerScope scope = new PointerScope()) {
            assertEquals(3f, st.load("b").data_ptr_float().get(0));
        }
    }

    @Test
    void headerLengthFourShortIsRefusedNotShifted() throws IOException {
        byte[] bytes = twoTensors(4);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, ByteBuffer.wrap(bytes)
            .order(ByteOrder.LITTLE_ENDIAN).getLong(0) - 4);
        Path p = write("short.safetensors", bytes);
        var e = assertThrows(IllegalArgumentException.class, () -> SafeTensors.open(p));
        assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("cover"), e.getMessage());
    }

    @Test
    void junkAfterTheHeaderJsonIsRefused() throws IOException {
        String json = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}xy  ";
        Path p = write("junk.safetensors", file(json, floats(1, 2)));
        var e = assertThrows(IllegalArgumentException.class, () -> SafeTensors.open(p));
        assertTrue(e.getMessage().contains("'x'") && e.getMessage().contains("after the header JSON"), e.getMessage());
        // a newline is JSON whitespace but not the format's padding
        Path q = write("newline.safetensors", file(json.replace("xy", "\n"), floats(1, 2)));
        assertThrows(IllegalArgumentException.class, () -> SafeTensors.open(q));
    }

    @Test
    void bytesThatBelongToNoTensorAreRefused() throws IOException {
        String gap = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}";
        var e = assertThrows(IllegalArgumentException.class,
            () -> SafeTensors.open(write("gap.safetensors", file(gap, floats(1, 2)))));
        assertTrue(e.getMessage().contains("bytes 0..4") && e.getMessage().contains("\"a\""), e.getMessage());
        String tail = "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        e = assertThrows(IllegalArgumentException.class,
            () -> SafeTensors.open(write("tail.safetensors", file(tail, floats(1, 2)))));
        assertTrue(e.getMessage().contains("cover 4 bytes of the 8-byte"), e.getMessage());
    }

    @Test
    void aFileThatShrinksAfterOpeningIsAnErrorNamingIt() throws IOException {
        Path p = write("shrinks.safetensors", twoTensors(4));
        try (SafeTensors st = SafeTensors.open(p); PointerScope scope = new PointerScope()) {
            try (FileChannel ch = FileChannel.open(p, StandardOpenOption.WRITE)) {
                ch.truncate(Files.size(p) - 6);
            }
            st.load("a");   // still whole
            var e = assertThrows(IllegalArgumentException.class, () -> st.load("b"));
            assertTrue(e.getMessage().contains(p.toString()) && e.getMessage().contains("\"b\"")
                && e.getMessage().contains("truncated"), e.getMessage());
        }
    }

    @Test
    void aFolderOrFifoIsRefusedWithoutBlocking() throws Exception {
        var e = assertThrows(IllegalArgumentException.class, () -> SafeTensors.open(dir));
        assertTrue(e.getMessage().contains("not a regular file"), e.getMessage());
        Path fifo = dir.resolve("fifo.safetensors");
        if (new ProcessBuilder("mkfifo", fifo.toString()).start().waitFor() == 0) {
            assertTimeoutPreemptively(java.time.Duration.ofSeconds(10),
                () -> assertThrows(IllegalArgumentException.class, () -> SafeTensors.open(fifo)));
        }
    }
}
