package org.autocircuit.util;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/**
 * Short content fingerprints of input files, for telling apart the runs a checkpoint may resume. They identify
 * content, not names or times: a copy of a file has its fingerprint, an edited file (almost surely) another.
 *
 * <p>A file of up to {@link #FULL_HASH_BYTES} is hashed whole (SHA-256). A larger one (pretrained weights) is hashed
 * by its size, its first and last MiB and {@link #SAMPLES} MiB blocks evenly spread between them, so fingerprinting
 * GPT-2 small's 500 MB reads about 64 MB; a change that touches none of the sampled blocks and keeps the size (an
 * edit of a few weights in place) goes unseen. A fine-tuned or re-trained model changes every block.
 */
public final class Fingerprints {
    /** Files up to this size are hashed whole. */
    public static final long FULL_HASH_BYTES = 64L << 20;
    /** Sampled blocks of a larger file, besides its first and last. */
    public static final int SAMPLES = 62;
    private static final int BLOCK = 1 << 20;

    private Fingerprints() {}

    /**
     * The fingerprint of one file (16 hex digits).
     *
     * @throws UncheckedIOException if it cannot be read
     */
    public static String ofFile(Path file) {
        MessageDigest md = sha256();
        addFile(md, file);
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }

    /**
     * The fingerprint of a folder's visible regular files (not sub-folders), by name and content: for a model
     * folder, its config, weights and vocabulary together.
     */
    public static String ofFolder(Path dir) {
        List<Path> files = new ArrayList<>();
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir)) {
            for (Path p : ds) {
                if (Files.isRegularFile(p) && !p.getFileName().toString().startsWith(".")) files.add(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dir, e);
        }
        files.sort(null);
        MessageDigest md = sha256();
        for (Path f : files) {
            md.update(f.getFileName().toString().getBytes(StandardCharsets.UTF_8));
            md.update((byte) 0);
            addFile(md, f);
        }
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }

    /** SHA-256 (first 16 hex digits) of a string. */
    public static String ofString(String s) {
        return HexFormat.of().formatHex(sha256().digest(s.getBytes(StandardCharsets.UTF_8)), 0, 8);
    }

    private static void addFile(MessageDigest md, Path file) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            md.update(ByteBuffer.allocate(8).putLong(0, size));
            ByteBuffer buf = ByteBuffer.allocate(BLOCK);
            if (size <= FULL_HASH_BYTES) {
                for (long at = 0; at < size; at += BLOCK) readBlock(ch, md, buf, at, size);
            } else {
                long last = size - BLOCK;
                readBlock(ch, md, buf, 0, size);
                for (int i = 1; i <= SAMPLES; i++) readBlock(ch, md, buf, last / (SAMPLES + 1) * i, size);
                readBlock(ch, md, buf, last, size);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file + " to fingerprint it", e);
        }
    }

    private static void readBlock(FileChannel ch, MessageDigest md, ByteBuffer buf, long at, long size) throws IOException {
        buf.clear().limit((int) Math.min(BLOCK, size - at));
        long pos = at;
        while (buf.hasRemaining()) {
            int n = ch.read(buf, pos);
            if (n < 0) break;   // the file shrank: hash what is there, the size already differs
            pos += n;
        }
        buf.flip();
        md.update(buf);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }
}
