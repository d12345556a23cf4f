package org.autocircuit.distributed;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * SHA-256 fingerprints of a run's inputs (the model folder, the dataset file), compared across ranks before any
 * work: ranks on different machines that read different copies of a model would otherwise sum scores of different
 * models without noticing.
 */
public final class InputFingerprint {
    private InputFingerprint() {}

    /**
     * SHA-256 over a file, or over a folder's regular files (names relative to the folder, sorted, each name then its
     * content), so that the fingerprint is the same wherever the folder lies.
     */
    public static String of(Path path) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            if (Files.isDirectory(path)) {
                List<Path> files = new ArrayList<>();
                try (Stream<Path> s = Files.walk(path)) {
                    s.filter(Files::isRegularFile).forEach(files::add);
                }
                files.sort(null);
                for (Path f : files) {
                    md.update(path.relativize(f).toString().replace('\\', '/').getBytes(StandardCharsets.UTF_8));
                    md.update((byte) 0);
                    digestFile(md, f);
                }
            } else {
                digestFile(md, path);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-256", e);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + path + " to fingerprint it", e);
        }
    }

    private static void digestFile(MessageDigest md, Path f) throws IOException {
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(f)) {
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
        }
    }

    /**
     * Checks that every rank sees the same content under each label (e.g. "model" → the model folder).
     *
     * @throws DistributedException naming the first label and rank whose fingerprint differs from rank 0's
     */
    public static void checkSameOnAllRanks(Collective c, Map<String, Path> inputs) {
        if (!c.isDistributed()) return;
        Map<String, String> mine = new java.util.TreeMap<>();     // by label, whatever order the caller's map has
        inputs.forEach((label, p) -> mine.put(label, of(p)));
        StringBuilder sb = new StringBuilder();
        mine.forEach((label, fp) -> sb.append(label).append('=').append(fp).append('\n'));
        List<byte[]> all = c.allGather(sb.toString().getBytes(StandardCharsets.UTF_8));
        String leader = new String(all.get(0), StandardCharsets.UTF_8);
        for (int r = 1; r < all.size(); r++) {
            String other = new String(all.get(r), StandardCharsets.UTF_8);
            if (other.equals(leader)) continue;
            Map<String, String> a = parse(leader), b = parse(other);
            for (String label : a.keySet()) {
                if (!a.get(label).equals(b.get(label))) {
                    throw new DistributedException("the " + label + " differs between ranks: rank 0 reads content with "
                        + "SHA-256 " + a.get(label).substring(0, 12) + "…, rank " + r + " " + abbreviate(b.get(label))
                        + " (this rank reads " + inputs.get(label) + "); give every rank the same files");
                }
            }
            throw new DistributedException("ranks 0 and " + r + " were given different inputs: " + a.keySet() + " vs "
                + b.keySet());
        }
    }

    private static String abbreviate(String fp) {
        return fp == null ? "(none)" : fp.substring(0, Math.min(12, fp.length())) + "…";
    }

    private static Map<String, String> parse(String s) {
        Map<String, String> m = new LinkedHashMap<>();
        for (String line : s.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0) m.put(line.substring(0, eq), line.substring(eq + 1));
        }
        return m;
    }
}
