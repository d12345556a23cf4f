package org.autocircuit.algorithms;

import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;
import java.util.Objects;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;

/**
 * The finished decisions of an ACDC run, as written to {@link PruneRun#checkpoint()} (format in
 * docs/algorithms/acdc.md). The first six fields identify the run; a checkpoint resumes only a run that agrees on
 * all of them.
 *
 * @param format      always {@link #FORMAT}
 * @param graph       fingerprint of the graph's edges ({@link #graphFingerprint})
 * @param taus        the thresholds, in pass order
 * @param criterion   the faithfulness measure ({@link Acdc.Faithfulness} name)
 * @param firstBatch  the first training batch's content key (hex)
 * @param visitOrder  fingerprint of the visit order
 * @param identity    the weights, dataset, options and code version ({@link RunIdentity}), or null
 * @param tauIndex    the pass in progress ({@code taus.size()} when the run is complete)
 * @param position    how many edges of that pass are decided (the next one to visit)
 * @param prevFaith   the faithfulness of the last accepted state of the pass (float bits as a float)
 * @param ablated     graph edge positions ablated in the pass in progress (its current masks), ascending
 * @param scoreTau    per graph edge position, the index in {@code taus} of the smallest τ that removed it, or -1
 */
record AcdcCheckpoint(
        @JsonProperty("format") String format,
        @JsonProperty("graph") String graph,
        @JsonProperty("taus") List<Double> taus,
        @JsonProperty("criterion") String criterion,
        @JsonProperty("firstBatch") String firstBatch,
        @JsonProperty("visitOrder") String visitOrder,
        @JsonProperty("identity") RunIdentity identity,
        @JsonProperty("tauIndex") int tauIndex,
        @JsonProperty("position") int position,
        @JsonProperty("prevFaith") float prevFaith,
        @JsonProperty("ablated") int[] ablated,
        @JsonProperty("scoreTau") int[] scoreTau) {

    static final String FORMAT = "autocircuit-acdc-checkpoint/2";
    private static final ObjectMapper JSON = new ObjectMapper()
        .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

    /** Reads a checkpoint; an unreadable or foreign file is an IllegalArgumentException naming it. */
    static AcdcCheckpoint read(Path file) {
        AcdcCheckpoint c;
        try {
            c = JSON.readValue(file.toFile(), AcdcCheckpoint.class);
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("ACDC checkpoint " + file + " is not readable: " + e.getMessage(), e);
        }
        if (!FORMAT.equals(c.format)) {
            throw new IllegalArgumentException("ACDC checkpoint " + file + " has format '" + c.format + "', expected '"
                + FORMAT + "'");
        }
        if (c.ablated == null || c.scoreTau == null || c.taus == null || c.graph == null || c.criterion == null
                || c.firstBatch == null || c.visitOrder == null) {
            throw new IllegalArgumentException("ACDC checkpoint " + file + " lacks one of graph, taus, criterion, "
                + "firstBatch, visitOrder, ablated, scoreTau");
        }
        return c;
    }

    /** Writes atomically: a temporary file in the same folder, then a rename over the target. */
    void write(Path file) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            org.autocircuit.util.AtomicFiles.write(file, out -> JSON.writeValue(out, this));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write ACDC checkpoint " + file, e);
        }
    }

    /**
     * Checks that this checkpoint belongs to the run described by the identity fields of {@code expected}.
     *
     * @throws IllegalArgumentException naming the first field that differs and both values
     */
    void requireSameRun(AcdcCheckpoint expected, Path file, int nEdges) {
        mismatch(file, "graph", expected.graph, graph);
        mismatch(file, "taus", expected.taus, taus);
        mismatch(file, "criterion", expected.criterion, criterion);
        mismatch(file, "firstBatch", expected.firstBatch, firstBatch);
        mismatch(file, "visitOrder", expected.visitOrder, visitOrder);
        if (expected.identity != null || identity != null) {
            List<String> diff = expected.identity != null ? expected.identity.differences(identity)
                : List.of("identity (this run has none, the checkpoint " + identity + ")");
            if (!diff.isEmpty()) {
                throw new IllegalArgumentException("ACDC checkpoint " + file + " was written for another run; it differs in "
                    + String.join("; ", diff) + " (delete the file or pass another checkpoint folder to start afresh)");
            }
        }
        if (scoreTau.length != nEdges || tauIndex < 0 || tauIndex > taus.size() || position < 0 || position > nEdges) {
            throw new IllegalArgumentException("ACDC checkpoint " + file + " is inconsistent: tauIndex " + tauIndex
                + ", position " + position + ", " + scoreTau.length + " scores for " + nEdges + " edges");
        }
        for (int a : ablated) {
            if (a < 0 || a >= nEdges) throw new IllegalArgumentException("ACDC checkpoint " + file + " ablates edge " + a);
        }
        for (int s : scoreTau) {
            if (s < -1 || s >= taus.size()) throw new IllegalArgumentException("ACDC checkpoint " + file + " has scoreTau " + s);
        }
    }

    private static void mismatch(Path file, String field, Object expected, Object found) {
        if (!Objects.equals(expected, found)) {
            throw new IllegalArgumentException("ACDC checkpoint " + file + " was written for a different " + field
                + ": this run has " + expected + ", the checkpoint " + found
                + " (delete the file or pass another checkpoint path to start afresh)");
        }
    }

    /** SHA-256 (first 16 hex digits) of the graph's edges in order. */
    static String graphFingerprint(Graph graph) {
        MessageDigest md = sha256();
        for (Edge e : graph.edges()) {
            md.update(e.toString().getBytes(StandardCharsets.UTF_8));
            md.update((byte) '\n');
        }
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }

    /** SHA-256 (first 16 hex digits) of a visit order. */
    static String orderFingerprint(int[] order) {
        MessageDigest md = sha256();
        for (int i : order) {
            md.update((byte) (i >>> 24));
            md.update((byte) (i >>> 16));
            md.update((byte) (i >>> 8));
            md.update((byte) i);
        }
        return HexFormat.of().formatHex(md.digest(), 0, 8);
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new AssertionError("every JDK has SHA-256", e);
        }
    }
}
