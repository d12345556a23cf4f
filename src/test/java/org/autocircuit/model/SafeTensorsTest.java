package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafeTensorsTest {
    @TempDir
    Path dir;

    private static float[] values(Tensor t) {
        float[] v = new float[(int) t.numel()];
        t.contiguous().data_ptr_float().get(v);
        return v;
    }

    /** A file from a raw header string and data bytes, as a broken writer might leave it. */
    private Path craft(String name, String header, byte[] data) throws IOException {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h).put(data);
        Path p = dir.resolve(name);
        Files.write(p, b.array());
        return p;
    }

    private static byte[] shorts(int... bits) {
        ByteBuffer b = ByteBuffer.allocate(bits.length * 2).order(ByteOrder.LITTLE_ENDIAN);
        for (int s : bits) b.putShort((short) s);
        return b.array();
    }

    @Test
    void roundTrip() throws Exception {
        Path p = dir.resolve("out/rt.safetensors");
        try (var scope = new PointerScope()) {
            Map<String, Tensor> ts = new LinkedHashMap<>();
            ts.put("b.weight", AbstractTensor.create(new float[] {1, 2, 3, 4, 5, 6}, 2, 3));
            ts.put("a.bias", AbstractTensor.create(new float[] {-1.5f}, 1));
            ts.put("c.half", AbstractTensor.create(new float[] {0.5f, 0.25f}, 2).toType(torch.ScalarType.Half));
            ts.put("d.empty", torch.zeros(0, 4));
            SafeTensors.write(p, ts);
            try (SafeTensors st = SafeTensors.open(p)) {
                assertEquals(Set.of("a.bias", "b.weight", "c.half", "d.empty"), st.names());
                assertEquals("[a.bias, b.weight, c.half, d.empty]", st.names().toString(), "names are sorted");
                SafeTensors.TensorInfo info = st.info("b.weight");
                assertEquals("F32", info.dtype());
                assertArrayEquals(new long[] {2, 3}, info.shape());
                assertEquals(24, info.byteSize());
                Tensor w = st.load("b.weight", 2, 3);
                assertEquals(torch.ScalarType.Float, w.scalar_type().intern());
                assertArrayEquals(new long[] {2, 3}, w.shape());
                assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, values(w));
                assertArrayEquals(new float[] {-1.5f}, values(st.load("a.bias")));
                assertArrayEquals(new float[] {0.5f, 0.25f}, values(st.load("c.half")));
                assertArrayEquals(new long[] {0, 4}, st.load("d.empty").shape());
            }
        }
        long headerLen = ByteBuffer.wrap(Files.readAllBytes(p), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, headerLen % 8, "header padded to 8 bytes");
        try (var files = Files.list(p.getParent())) {
            assertEquals(1, files.count(), "no temporary file is left behind");
        }
    }

    @Test
    void loadedTensorOutlivesTheReaderAndBelongsToTheCallersScope() throws Exception {
        Path p = dir.resolve("x.safetensors");
        try (var scope = new PointerScope()) {
            SafeTensors.write(p, Map.of("x", AbstractTensor.create(new float[] {7, 8}, 2)));
        }
        Tensor kept;
        try (var outer = new PointerScope()) {
            try (SafeTensors st = SafeTensors.open(p)) {
                kept = st.load("x");
            }
            System.gc();   // the file mapping may be collected; the copy must not care
            assertArrayEquals(new float[] {7, 8}, values(kept));
        }
        assertTrue(kept.isNull(), "freed with the caller's scope");
    }

    @Test
    void halfAndBfloat16AreConvertedExactly() throws Exception {
        // IEEE half: 1.0, -2.5, 65504 (max), 2^-14 (min normal), 2^-24 (min subnormal), 0.333251953125
        byte[] f16 = shorts(0x3C00, 0xC100, 0x7BFF, 0x0400, 0x0001, 0x3555);
        float[] f16Expected = {1.0f, -2.5f, 65504f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f};
        // bfloat16 is the top half of float32
        float[] bfExpected = {1.0f, -2.5f, 3.140625f, -0.0f, 1.0e38f, 9.1835496e-41f};
        int[] bfBits = new int[bfExpected.length];
        for (int i = 0; i < bfBits.length; i++) bfBits[i] = Float.floatToRawIntBits(bfExpected[i]) >>> 16;
        for (int i = 0; i < bfBits.length; i++) bfExpected[i] = Float.intBitsToFloat(bfBits[i] << 16);
        byte[] bf16 = shorts(bfBits);
        byte[] data = new byte[f16.length + bf16.length];
        System.arraycopy(f16, 0, data, 0, f16.length);
        System.arraycopy(bf16, 0, data, f16.length, bf16.length);
        Path p = craft("mixed.safetensors", "{\"__metadata__\": {\"format\": \"pt\"}, "
            + "\"h\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [0, 12]}, "
            + "\"b\": {\"dtype\": \"BF16\", \"shape\": [6], \"data_offsets\": [12, 24]}}", data);
        try (var scope = new PointerScope(); SafeTensors st = SafeTensors.open(p)) {
            assertEquals(Map.of("format", "pt"), st.metadata());
            Tensor h = st.load("h");
            assertEquals(torch.ScalarType.Float, h.scalar_type().intern());
            assertArrayEquals(new long[] {2, 3}, h.shape());
            assertArrayEquals(f16Expected, values(h));
            Tensor b = st.load("b");
            assertEquals(torch.ScalarType.Float, b.scalar_type().intern());
            assertArrayEquals(bfExpected, values(b));
            // tensors larger than one mapping are copied in chunks; 5-byte chunks split elements across chunks
            assertArrayEquals(f16Expected, values(st.loadWithMaxMapping("h", 5)));
            assertArrayEquals(bfExpected, values(st.loadWithMaxMapping("b", 5)));
            assertArrayEquals(new long[] {2, 3}, st.loadWithMaxMapping("h", 5).shape());
        }
    }

    @Test
    void fixtureModelShapes() throws Exception {
        Path p = Path.of(getClass().getResource("/fixtures/models/gpt2-tiny-random/model.safetensors").toURI());
        try (var scope = new PointerScope(); SafeTensors st = SafeTensors.open(p)) {
            assertArrayEquals(new long[] {50257, 64}, st.info("transformer.wte.weight").shape());
            assertArrayEquals(new long[] {64, 64}, st.info("transformer.wpe.weight").shape());
            assertArrayEquals(new long[] {64, 192}, st.info("transformer.h.0.attn.c_attn.weight").shape());
            assertArrayEquals(new long[] {256}, st.info("transformer.h.1.mlp.c_fc.bias").shape());
            assertTrue(!st.names().contains("lm_head.weight"), "lm_head is tied to wte");
            Tensor wte = st.load("transformer.wte.weight", 50257, 64);
            assertArrayEquals(new long[] {50257, 64}, wte.shape());
            assertTrue(Float.isFinite(wte.abs().max().item_float()));
            Tensor lnGain = st.load("transformer.ln_f.weight", 64);
            float mean = lnGain.mean().item_float();
            assertTrue(mean > 0.5f && mean < 1.5f, "LayerNorm gains are 1 + randn·0.2, mean " + mean);
            var e = assertThrows(IllegalArgumentException.class, () -> st.load("transformer.wte.weight", 50257, 32));
            assertTrue(e.getMessage().contains("transformer.wte.weight") && e.getMessage().contains("[50257, 64]")
                && e.getMessage().contains("[50257, 32]"), e.getMessage());
            var missing = assertThrows(IllegalArgumentException.class, () -> st.load("transformer.h.9.attn.c_attn.weight"));
            assertTrue(missing.getMessage().contains("transformer.h.9.attn.c_attn.weight")
                && missing.getMessage().contains("transformer.h.0"), missing.getMessage());
        }
    }

    // ---- broken files: each a clear IllegalArgumentException naming the file (and tensor) ----

    private void assertBroken(Path p, String... parts) {
        var e = assertThrows(IllegalArgumentException.class, () -> {
            try (SafeTensors st = SafeTensors.open(p)) {
                st.names();
            }
        });
        assertTrue(e.getMessage().contains(p.toString()), "message lacks the file: " + e.getMessage());
        for (String part : parts) assertTrue(e.getMessage().contains(part), "message lacks \"" + part + "\": " + e.getMessage());
    }

    @Test
    void tooShortForTheHeaderLength() throws Exception {
        Path p = dir.resolve("short.safetensors");
        Files.write(p, new byte[] {1, 2, 3});
        assertBroken(p, "truncated");
    }

    @Test
    void headerLengthBeyondTheFile() throws Exception {
        Path p = dir.resolve("long.safetensors");
        ByteBuffer b = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(1000);
        Files.write(p, b.array());
        assertBroken(p, "header length 1000");
        ByteBuffer neg = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
        neg.putLong(-5);
        Files.write(p, neg.array());
        assertBroken(p, "header length");
    }

    @Test
    void headerNotJson() throws Exception {
        assertBroken(craft("nojson.safetensors", "{\"a\": [", new byte[0]), "not valid JSON");
        assertBroken(craft("array.safetensors", "[1, 2]", new byte[0]), "JSON object");
    }

    @Test
    void truncatedData() throws Exception {
        assertBroken(craft("trunc.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
            new byte[8]), "\"w\"", "past the end");
    }

    @Test
    void endBeforeBegin() throws Exception {
        assertBroken(craft("order.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 4]}}",
            new byte[8]), "\"w\"", "end 4 < begin 8");
    }

    @Test
    void sizeDisagreesWithShape() throws Exception {
        assertBroken(craft("size.safetensors", "{\"w\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 8]}}",
            new byte[8]), "\"w\"", "needs 3 × 2 = 6");
    }

    @Test
    void overlappingTensors() throws Exception {
        assertBroken(craft("overlap.safetensors", "{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
            + "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", new byte[12]), "\"b\"", "overlaps", "\"a\"");
    }

    @Test
    void unknownDtype() throws Exception {
        assertBroken(craft("dtype.safetensors", "{\"w\": {\"dtype\": \"F12\", \"shape\": [1], \"data_offsets\": [0, 2]}}",
            new byte[2]), "\"w\"", "unknown dtype \"F12\"");
    }

    @Test
    void badShapeAndOffsets() throws Exception {
        assertBroken(craft("shape.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
            new byte[4]), "\"w\"", "shape[0]");
        assertBroken(craft("offs.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}",
            new byte[4]), "\"w\"", "data_offsets");
        assertBroken(craft("dup.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
            + "\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", new byte[4]), "not valid JSON");
    }

    @Test
    void integerTensorsOpenButDoNotLoadAsFloat() throws Exception {
        Path p = craft("int.safetensors", "{\"ids\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", new byte[8]);
        try (SafeTensors st = SafeTensors.open(p)) {
            var e = assertThrows(IllegalArgumentException.class, () -> st.load("ids"));
            assertTrue(e.getMessage().contains("\"ids\"") && e.getMessage().contains("I64"), e.getMessage());
        }
    }

    @Test
    void useAfterCloseIsAnIllegalState() throws Exception {
        Path p = craft("ok.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", new byte[4]);
        SafeTensors st = SafeTensors.open(p);
        st.close();
        st.close();
        assertThrows(IllegalStateException.class, () -> st.load("w"));
    }

    @Test
    void shapeArraysAreCopied() throws Exception {
        Path p = craft("copy.safetensors", "{\"w\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}", new byte[4]);
        try (SafeTensors st = SafeTensors.open(p)) {
            long[] shape = st.info("w").shape();
            shape[0] = 99;
            assertEquals("[1]", Arrays.toString(st.info("w").shape()));
        }
    }
}
