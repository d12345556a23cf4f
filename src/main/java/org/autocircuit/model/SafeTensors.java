package org.autocircuit.model;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import org.autocircuit.util.AtomicFiles;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.MemoryFormatOptional;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

/**
 * A reader (and a writer) of Hugging Face's safetensors format: an 8-byte little-endian header
 * length N, N bytes of JSON header ({@code name → {dtype, shape, data_offsets: [begin, end]}}, plus an
 * optional {@code "__metadata__"} string map), then the raw little-endian tensor data, with offsets
 * relative to the start of the data.
 *
 * <p>{@link #open} validates the whole header before any tensor is read: header length within the
 * file, JSON with nothing but space padding after it, known dtypes, non-negative shapes,
 * {@code begin ≤ end ≤ data size}, {@code end − begin = numel × dtype size}, and tensors that tile the data
 * section exactly (no overlap, no gap, nothing after the last). Every message names the file and, where one
 * is at fault, the tensor.
 *
 * <p>{@link #load} reads the tensor's bytes through the file channel straight into a new libtorch tensor
 * (converted to float32 if needed), so no tensor data passes through the Java heap and the result owns its
 * memory. It does not map the file: a mapped file that shrinks while loading (a copy over it) would kill the
 * JVM with SIGBUS, where a short read is an {@link IllegalArgumentException} naming the file. The
 * result is owned by the caller's current {@link PointerScope} (if any), like any new tensor; the
 * temporaries are freed before {@code load} returns. Instances are safe for concurrent loads.
 */
public final class SafeTensors implements AutoCloseable {
    /** The safetensors reference implementation refuses headers above 100 MB; so do we. */
    static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    /** The largest region one {@link ByteBuffer} can cover. */
    private static final int MAX_MAP_BYTES = Integer.MAX_VALUE;

    private static final ObjectMapper MAPPER = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    /** Element sizes in bytes of every dtype the format defines. */
    private static final Map<String, Integer> DTYPE_SIZES = Map.ofEntries(
        Map.entry("BOOL", 1), Map.entry("U8", 1), Map.entry("I8", 1), Map.entry("F8_E4M3", 1), Map.entry("F8_E5M2", 1),
        Map.entry("I16", 2), Map.entry("U16", 2), Map.entry("F16", 2), Map.entry("BF16", 2),
        Map.entry("I32", 4), Map.entry("U32", 4), Map.entry("F32", 4),
        Map.entry("I64", 8), Map.entry("U64", 8), Map.entry("F64", 8));

    /**
     * Where one tensor lies in the file.
     *
     * @param dtype the safetensors dtype string ({@code "F32"}, {@code "F16"}, {@code "BF16"}, ...)
     * @param shape the shape (a copy is stored and returned)
     * @param begin first byte, relative to the start of the data section
     * @param end   one past the last byte, relative to the start of the data section
     */
    public record TensorInfo(String dtype, long[] shape, long begin, long end) {
        public TensorInfo {
            shape = shape.clone();
        }

        @Override public long[] shape() { return shape.clone(); }

        public long numel() {
            long n = 1;
            for (long s : shape) n *= s;
            return n;
        }

        public long byteSize() { return end - begin; }

        @Override
        public boolean equals(Object o) {
            return o instanceof TensorInfo t && t.dtype.equals(dtype) && Arrays.equals(t.shape, shape)
                && t.begin == begin && t.end == end;
        }

        @Override
        public int hashCode() {
            return ((dtype.hashCode() * 31 + Arrays.hashCode(shape)) * 31 + Long.hashCode(begin)) * 31 + Long.hashCode(end);
        }

        @Override
        public String toString() {
            return "TensorInfo[" + dtype + " " + Arrays.toString(shape) + " @ " + begin + ".." + end + "]";
        }
    }

    private final Path file;
    private final FileChannel channel;
    private final long dataStart;
    private final Map<String, TensorInfo> tensors;   // sorted by name
    private final Map<String, String> metadata;
    private volatile boolean closed;

    private SafeTensors(Path file, FileChannel channel, long dataStart, Map<String, TensorInfo> tensors,
                        Map<String, String> metadata) {
        this.file = file;
        this.channel = channel;
        this.dataStart = dataStart;
        this.tensors = tensors;
        this.metadata = metadata;
    }

    /**
     * Opens and validates a safetensors file. The file stays open until {@link #close}.
     *
     * @throws IOException              if the file cannot be read
     * @throws IllegalArgumentException naming the file (and tensor) if the file is not valid safetensors
     */
    public static SafeTensors open(Path file) throws IOException {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            // a FIFO would block the open until a writer comes, a folder fails with a bare IOException
            throw new IllegalArgumentException(file + ": not a regular file (a folder, FIFO or device); expected a "
                + "safetensors file");
        }
        FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
        try {
            long size = ch.size();
            if (size < 8) {
                throw new IllegalArgumentException(file + ": truncated safetensors file: " + size
                    + " bytes, fewer than the 8-byte header length");
            }
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long headerLen = lenBuf.getLong(0);
            if (headerLen < 0 || headerLen > size - 8) {
                throw new IllegalArgumentException(file + ": header length " + Long.toUnsignedString(headerLen)
                    + " is larger than the " + (size - 8) + " bytes that follow it (truncated or not a safetensors file)");
            }
            if (headerLen > MAX_HEADER_BYTES) {
                throw new IllegalArgumentException(file + ": header length " + headerLen + " exceeds the "
                    + MAX_HEADER_BYTES + "-byte limit");
            }
            ByteBuffer header = ByteBuffer.allocate((int) headerLen);
            readFully(ch, header, 8, file);
            long dataStart = 8 + headerLen;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, TensorInfo> infos = parseHeader(file, new String(header.array(), StandardCharsets.UTF_8),
                size - dataStart, metadata);
            return new SafeTensors(file, ch, dataStart, infos, Collections.unmodifiableMap(metadata));
        } catch (IOException | RuntimeException e) {
            ch.close();
            throw e;
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer buf, long position, Path file) throws IOException {
        long pos = position;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) throw new IllegalArgumentException(file + ": unexpected end of file at byte " + pos);
            pos += n;
        }
    }

    private static Map<String, TensorInfo> parseHeader(Path file, String json, long dataSize, Map<String, String> metadata) {
        JsonNode root;
        int end;
        try (JsonParser parser = MAPPER.createParser(json)) {
            root = MAPPER.readTree(parser);
            end = root == null ? 0 : (int) parser.currentLocation().getCharOffset();
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": safetensors header is not valid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new UncheckedIOException(e);   // reading a String does no I/O
        }
        if (root == null || !root.isObject()) {
            throw new IllegalArgumentException(file + ": safetensors header must be a JSON object");
        }
        // The format pads the header with spaces only; anything else means the header length is wrong (a length
        // that is a few bytes short shifts every tensor) or the file was edited.
        for (int i = end; i < json.length(); i++) {
            if (json.charAt(i) != ' ') {
                throw new IllegalArgumentException(file + ": unexpected " + describeChar(json.charAt(i)) + " at header "
                    + "character " + i + " after the header JSON (only space padding may follow it; wrong header length?)");
            }
        }
        Map<String, TensorInfo> infos = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode v = e.getValue();
            if (name.equals("__metadata__")) {
                if (!v.isObject()) throw new IllegalArgumentException(file + ": __metadata__ must be an object of strings");
                v.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().asText()));
                continue;
            }
            infos.put(name, parseInfo(file, name, v, dataSize));
        }
        // The tensors must tile the data section exactly, as the reference reader demands: no two share bytes, no
        // gap between them, nothing after the last. A header length off by a few bytes fails here instead of
        // shifting every weight.
        List<Map.Entry<String, TensorInfo>> byBegin = new ArrayList<>(infos.entrySet());
        byBegin.sort(Comparator.comparingLong((Map.Entry<String, TensorInfo> en) -> en.getValue().begin())
            .thenComparingLong(en -> en.getValue().end()));
        long covered = 0;
        String prevName = null;
        for (var cur : byBegin) {
            TensorInfo t = cur.getValue();
            if (t.begin() < covered) {
                throw new IllegalArgumentException(file + ": tensor \"" + cur.getKey() + "\" (bytes " + t.begin() + ".."
                    + t.end() + ") overlaps tensor \"" + prevName + "\" (which ends at byte " + covered + ")");
            }
            if (t.begin() > covered) {
                throw new IllegalArgumentException(file + ": bytes " + covered + ".." + t.begin() + " of the data section "
                    + "belong to no tensor (before tensor \"" + cur.getKey() + "\"); the tensors must cover the data "
                    + "exactly (wrong header length or offsets?)");
            }
            covered = t.end();
            prevName = cur.getKey();
        }
        if (covered != dataSize) {
            throw new IllegalArgumentException(file + ": the tensors cover " + covered + " bytes of the " + dataSize
                + "-byte data section; the rest belongs to no tensor (wrong header length, or data appended?)");
        }
        return Collections.unmodifiableMap(infos);
    }

    private static String describeChar(char c) {
        return c >= 0x21 && c < 0x7f ? "'" + c + "'" : String.format("character U+%04X", (int) c);
    }

    private static TensorInfo parseInfo(Path file, String name, JsonNode v, long dataSize) {
        String at = file + ": tensor \"" + name + "\"";
        if (!v.isObject()) throw new IllegalArgumentException(at + ": expected an object with dtype, shape, data_offsets");
        JsonNode dtype = v.get("dtype");
        JsonNode shape = v.get("shape");
        JsonNode offsets = v.get("data_offsets");
        if (dtype == null || !dtype.isTextual()) throw new IllegalArgumentException(at + ": missing or non-string \"dtype\"");
        Integer elem = DTYPE_SIZES.get(dtype.textValue());
        if (elem == null) {
            throw new IllegalArgumentException(at + ": unknown dtype \"" + dtype.textValue() + "\" (expected one of "
                + new TreeSet<>(DTYPE_SIZES.keySet()) + ")");
        }
        if (shape == null || !shape.isArray()) throw new IllegalArgumentException(at + ": missing or non-list \"shape\"");
        long[] dims = new long[shape.size()];
        long numel = 1;
        for (int i = 0; i < dims.length; i++) {
            JsonNode d = shape.get(i);
            if (!d.isIntegralNumber() || !d.canConvertToLong() || d.longValue() < 0) {
                throw new IllegalArgumentException(at + ": shape[" + i + "] must be a non-negative integer, got " + d);
            }
            dims[i] = d.longValue();
            try {
                numel = Math.multiplyExact(numel, dims[i]);
            } catch (ArithmeticException ex) {
                throw new IllegalArgumentException(at + ": shape " + shape + " has too many elements");
            }
        }
        if (offsets == null || !offsets.isArray() || offsets.size() != 2) {
            throw new IllegalArgumentException(at + ": \"data_offsets\" must be a list [begin, end]");
        }
        for (JsonNode o : offsets) {
            if (!o.isIntegralNumber() || !o.canConvertToLong() || o.longValue() < 0) {
                throw new IllegalArgumentException(at + ": data_offsets must be non-negative integers, got " + offsets);
            }
        }
        long begin = offsets.get(0).longValue();
        long end = offsets.get(1).longValue();
        if (end < begin) throw new IllegalArgumentException(at + ": data_offsets end " + end + " < begin " + begin);
        if (end > dataSize) {
            throw new IllegalArgumentException(at + ": data_offsets [" + begin + ", " + end + "] run past the end of the "
                + dataSize + "-byte data section (truncated file?)");
        }
        long expected;
        try {
            expected = Math.multiplyExact(numel, (long) elem);
        } catch (ArithmeticException ex) {
            throw new IllegalArgumentException(at + ": shape " + shape + " has too many bytes");
        }
        if (end - begin != expected) {
            throw new IllegalArgumentException(at + ": data_offsets [" + begin + ", " + end + "] hold " + (end - begin)
                + " bytes, but " + dtype.textValue() + " " + shape + " needs " + numel + " × " + elem + " = " + expected);
        }
        return new TensorInfo(dtype.textValue(), dims, begin, end);
    }

    /** The file this reads. */
    public Path file() {
        return file;
    }

    /** Tensor names, sorted. */
    public Set<String> names() {
        return tensors.keySet();
    }

    /** The {@code "__metadata__"} map of the header (empty if absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** Where tensor {@code name} lies; {@link IllegalArgumentException} listing a few valid names if absent. */
    public TensorInfo info(String name) {
        TensorInfo info = tensors.get(name);
        if (info == null) {
            List<String> some = tensors.keySet().stream().limit(8).toList();
            throw new IllegalArgumentException(file + ": no tensor \"" + name + "\"; the file has " + tensors.size()
                + " tensors, e.g. " + some);
        }
        return info;
    }

    /**
     * Tensor {@code name} as a new contiguous float32 CPU tensor (F32 as is; F16, BF16 and F64 converted), owned by
     * the caller's current {@link PointerScope}.
     *
     * @throws IllegalArgumentException if there is no such tensor or its dtype cannot be converted to float32
     * @throws UncheckedIOException     if mapping the file fails
     * @throws IllegalStateException    after {@link #close}
     */
    public Tensor load(String name) {
        return loadWithMaxMapping(name, MAX_MAP_BYTES, torch.ScalarType.Float);
    }

    /**
     * {@link #load(String)}, but a tensor stored as {@code stored} (BF16 or F16 for a 16-bit model) comes back as it
     * is stored, read straight into a tensor of that dtype; any other is converted to float32 as {@link #load} does.
     */
    public Tensor loadKeeping(String name, torch.ScalarType stored) {
        return loadWithMaxMapping(name, MAX_MAP_BYTES, stored);
    }

    /** {@link #load(String)} with the largest single read as a parameter, so tests can reach the chunked path. */
    Tensor loadWithMaxMapping(String name, int maxMapBytes) {
        return loadWithMaxMapping(name, maxMapBytes, torch.ScalarType.Float);
    }

    private Tensor loadWithMaxMapping(String name, int maxMapBytes, torch.ScalarType keep) {
        ensureOpen();
        TensorInfo info = info(name);
        torch.ScalarType type = switch (info.dtype()) {
            case "F32" -> torch.ScalarType.Float;
            case "F16" -> torch.ScalarType.Half;
            case "BF16" -> torch.ScalarType.BFloat16;
            case "F64" -> torch.ScalarType.Double;
            default -> throw new IllegalArgumentException(file + ": tensor \"" + name + "\" has dtype " + info.dtype()
                + "; only F32, F16, BF16 and F64 can be loaded as float32");
        };
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("safetensors data is little-endian; this platform is not");
        }
        long[] shape = info.shape();
        if (info.byteSize() == 0) return torch.zeros(shape);   // [.., 0, ..]: nothing to read
        PointerScope outer = PointerScope.getInnerScope();
        Tensor result;
        try (var scope = new PointerScope()) {
            // Read through the channel straight into memory libtorch owns. A memory mapping would be one copy too,
            // but a file that shrinks while mapped (a copy over it, a truncation) kills the JVM with SIGBUS on the
            // next access; a read just comes back short, which is an exception naming the file.
            Tensor raw = torch.empty(shape, new TensorOptions(type), new MemoryFormatOptional());
            BytePointer dst = new BytePointer(raw.data_ptr());
            long tensorEnd = dataStart + info.end();
            for (long at = 0; at < info.byteSize(); at += maxMapBytes) {
                long n = Math.min(maxMapBytes, info.byteSize() - at);
                ByteBuffer chunk = new BytePointer(dst).position(at).limit(at + n).asByteBuffer();
                readTensorBytes(name, chunk, dataStart + info.begin() + at, tensorEnd);
            }
            result = type == torch.ScalarType.Float || type == keep.intern() ? raw : raw.toType(torch.ScalarType.Float);
            // PointerScope.detach releases the scope's reference, which frees the tensor at count 0: hold one of our
            // own across the move to the caller's scope.
            result.retainReference();
            scope.detach(result);
        }
        if (outer != null) {
            outer.attach(result);
            result.releaseReference();
        }
        return result;
    }

    private void readTensorBytes(String name, ByteBuffer buf, long position, long tensorEnd) {
        long pos = position;
        try {
            while (buf.hasRemaining()) {
                int n = channel.read(buf, pos);
                if (n < 0) {
                    throw new IllegalArgumentException(file + ": the file ends at byte " + channel.size()
                        + " while tensor \"" + name + "\" ends at byte " + tensorEnd
                        + " (was it truncated or replaced while loading?)");
                }
                pos += n;
            }
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot read tensor \"" + name + "\"", e);
        }
    }

    /**
     * {@link #load(String)}, checking the shape first.
     *
     * @throws IllegalArgumentException naming the tensor and both shapes if the file's shape is not {@code expectedShape}
     */
    public Tensor load(String name, long... expectedShape) {
        long[] actual = info(name).shape();
        if (!Arrays.equals(actual, expectedShape)) {
            throw new IllegalArgumentException(file + ": tensor \"" + name + "\" has shape " + Arrays.toString(actual)
                + ", expected " + Arrays.toString(expectedShape));
        }
        return load(name);
    }

    private void ensureOpen() {
        if (closed) throw new IllegalStateException("SafeTensors " + file + " is closed");
    }

    /** Closes the file. Tensors already loaded stay valid. Closing twice is a no-op. */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        try {
            channel.close();
        } catch (IOException e) {
            throw new UncheckedIOException(file + ": cannot close", e);
        }
    }

    @Override
    public String toString() {
        return "SafeTensors(" + file + ", " + tensors.size() + " tensors)";
    }

    // ---- writing ----

    /**
     * Writes {@code tensors} as F32 safetensors: names sorted, data in name order, the header padded with spaces to
     * a multiple of 8 bytes so that every tensor starts 8-byte aligned. Any floating dtype or device is converted
     * to float32 on the CPU first. The bytes go to a temporary file in the same folder, which is then renamed over
     * {@code file}, so readers never see half a file.
     */
    public static void write(Path file, Map<String, Tensor> tensors) throws IOException {
        if (tensors == null) throw new IllegalArgumentException("tensors must not be null");
        Map<String, Tensor> sorted = new TreeMap<>();
        for (var e : tensors.entrySet()) {
            if (e.getKey() == null || e.getKey().isEmpty() || e.getKey().equals("__metadata__")) {
                throw new IllegalArgumentException("invalid tensor name " + e.getKey() + " for " + file);
            }
            if (e.getValue() == null) throw new IllegalArgumentException("tensor \"" + e.getKey() + "\" is null (" + file + ")");
            sorted.put(e.getKey(), e.getValue());
        }
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new UnsupportedOperationException("safetensors data is little-endian; this platform is not");
        }
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir != null) Files.createDirectories(dir);
        try (var scope = new PointerScope()) {
            ObjectNode header = MAPPER.createObjectNode();
            Map<String, Tensor> data = new LinkedHashMap<>();
            long offset = 0;
            for (var e : sorted.entrySet()) {
                Tensor t = e.getValue();
                if (!t.is_floating_point()) {
                    throw new IllegalArgumentException("tensor \"" + e.getKey() + "\" is not floating point; write stores "
                        + "F32 only (" + file + ")");
                }
                Tensor f = t.detach().cpu().toType(torch.ScalarType.Float).contiguous();   // [same shape]
                long bytes = f.numel() * 4;
                ObjectNode info = header.putObject(e.getKey());
                info.put("dtype", "F32");
                var shape = info.putArray("shape");
                for (long s : f.shape()) shape.add(s);
                var offsets = info.putArray("data_offsets");
                offsets.add(offset);
                offsets.add(offset + bytes);
                offset += bytes;
                data.put(e.getKey(), f);
            }
            byte[] json = MAPPER.writeValueAsBytes(header);
            int padded = (json.length + 7) / 8 * 8;
            ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
            head.putLong(padded).put(json);
            while (head.hasRemaining()) head.put((byte) ' ');
            head.flip();
            AtomicFiles.writePath(abs, tmp -> {
                try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                    writeFully(out, head);
                    for (Tensor f : data.values()) {
                        long bytes = f.numel() * 4;
                        if (bytes == 0) continue;
                        Pointer p = f.data_ptr();
                        // Write straight from libtorch's memory, in chunks that fit a ByteBuffer.
                        for (long at = 0; at < bytes; at += Integer.MAX_VALUE) {
                            long n = Math.min(Integer.MAX_VALUE, bytes - at);
                            ByteBuffer view = new BytePointer(p).position(at).limit(at + n).asByteBuffer();
                            writeFully(out, view);
                        }
                    }
                    out.force(true);
                }
            });
        }
    }

    private static void writeFully(FileChannel out, ByteBuffer buf) throws IOException {
        while (buf.hasRemaining()) out.write(buf);
    }
}
