package org.autocircuit.algorithms;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.graph.Graph;
import org.autocircuit.util.AtomicFiles;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Adam;
import org.bytedeco.pytorch.InputArchive;
import org.bytedeco.pytorch.OutputArchive;
import org.bytedeco.pytorch.Tensor;

/**
 * The resumable state of a probing run, in one libtorch archive file (the format of {@code torch::save}):
 * <pre>
 *   version       int64 [1]           format version (2: the fingerprint holds the RunIdentity lines)
 *   fingerprint   int64 [n]           the run's description (and RunIdentity, one part a line) as UTF-16 code
 *                                     units; another run's file is refused, naming the lines that differ
 *   stage         int64 [1]           circuit-probing size index (0 for plain subnetwork probing)
 *   epochs_done   int64 [1]           finished epochs of that stage
 *   masks         float32 [nEdges]    mask logits in graph edge order (only when epochs_done &gt; 0)
 *   optimizer     archive             Adam's state: per-mask step, exp_avg, exp_avg_sq (only with masks)
 *   losses ...    int64 [steps]       the per-step curves, as IEEE-754 bit patterns so they round-trip exactly
 *   job_scores    float32 [nEdges]    circuit probing's scores of the finished sizes (optional)
 * </pre>
 * Writes go to a temporary file in the same directory that is then renamed over the target, so a crash leaves
 * either the previous checkpoint or the new one, never half of one.
 */
final class SubnetworkProbingCheckpoint {
    private static final long VERSION = 2;

    private SubnetworkProbingCheckpoint() {}

    /** A loaded checkpoint. Its arrays are the caller's (this is package-internal and read once). */
    static final class Saved {
        private final Path file;
        private final int stage;
        private final int epochsDone;
        private final float[] masks;
        private final SubnetworkProbing.History history;
        private final float[] jobScores;

        Saved(Path file, int stage, int epochsDone, float[] masks, SubnetworkProbing.History history, float[] jobScores) {
            this.file = file;
            this.stage = stage;
            this.epochsDone = epochsDone;
            this.masks = masks;
            this.history = history;
            this.jobScores = jobScores;
        }

        int stage() {
            return stage;
        }

        int epochsDone() {
            return epochsDone;
        }

        /** Mask logits in graph edge order, or null at a stage boundary. */
        float[] masks() {
            return masks;
        }

        SubnetworkProbing.History history() {
            return history;
        }

        /** Circuit probing's finished scores, or null. */
        float[] jobScores() {
            return jobScores;
        }

        /** Loads Adam's moments and step counts into {@code adam}, built over the same masks in the same order. */
        void restoreOptimizer(Adam adam) {
            try (PointerScope s = new PointerScope()) {
                InputArchive archive = open(file);
                InputArchive opt = new InputArchive();
                if (!archive.try_read("optimizer", opt)) {
                    throw new IllegalArgumentException("checkpoint " + file + " has masks but no optimizer state");
                }
                adam.load(opt);
            }
        }
    }

    /**
     * Reads {@code file} if it exists.
     *
     * @return null when there is no file
     * @throws IllegalArgumentException if the file is not a checkpoint of this version, or belongs to another run
     */
    static Saved loadIfPresent(Path file, String fingerprint, Graph graph) {
        if (!Files.exists(file)) return null;
        try (PointerScope s = new PointerScope()) {
            InputArchive archive = open(file);
            long version = readLongs(archive, file, "version")[0];
            if (version != VERSION) {
                throw new IllegalArgumentException("checkpoint " + file + " has format version " + version + ", expected " + VERSION);
            }
            String found = decode(readLongs(archive, file, "fingerprint"));
            if (!found.equals(fingerprint)) {
                throw new IllegalArgumentException("checkpoint " + file + " belongs to another run (delete it to start over); "
                    + "it differs in:" + differences(fingerprint, found));
            }
            int stage = (int) readLongs(archive, file, "stage")[0];
            int epochsDone = (int) readLongs(archive, file, "epochs_done")[0];
            float[] masks = readFloats(archive, file, "masks", graph.nEdges(), epochsDone > 0);
            SubnetworkProbing.History history = new SubnetworkProbing.History();
            List<List<Double>> curves = history.all();
            String[] names = SubnetworkProbing.History.names();
            for (int i = 0; i < names.length; i++) {
                for (long bits : readLongs(archive, file, names[i])) curves.get(i).add(Double.longBitsToDouble(bits));
            }
            float[] jobScores = readFloats(archive, file, "job_scores", graph.nEdges(), false);
            return new Saved(file, stage, epochsDone, masks, history, jobScores);
        }
    }

    /** Writes a checkpoint atomically. {@code masks} and {@code adam} may be null (a stage boundary). */
    static void save(Path file, String fingerprint, int stage, int epochsDone, float[] masks, Adam adam,
                     SubnetworkProbing.History history, float[] jobScores) {
        Path target = file.toAbsolutePath();
        try (PointerScope s = new PointerScope()) {
            OutputArchive archive = new OutputArchive();
            archive.write("version", longs(VERSION));
            archive.write("fingerprint", longs(encode(fingerprint)));
            archive.write("stage", longs(stage));
            archive.write("epochs_done", longs(epochsDone));
            if (masks != null) {
                archive.write("masks", HostTensor.ofFloats(masks, masks.length).toTensor());
                OutputArchive opt = new OutputArchive();
                adam.save(opt);
                archive.write("optimizer", opt);
            }
            List<List<Double>> curves = history.all();
            String[] names = SubnetworkProbing.History.names();
            for (int i = 0; i < names.length; i++) {
                long[] bits = new long[curves.get(i).size()];
                for (int j = 0; j < bits.length; j++) bits[j] = Double.doubleToRawLongBits(curves.get(i).get(j));
                archive.write(names[i], longs(bits));
            }
            if (jobScores != null) archive.write("job_scores", HostTensor.ofFloats(jobScores, jobScores.length).toTensor());
            Files.createDirectories(target.getParent());
            AtomicFiles.writePath(target, tmp -> archive.save_to(tmp.toString()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write the probing checkpoint " + target, e);
        }
    }

    /** The lines of the two fingerprints that differ (the run description, then model, dataset, options, code). */
    static String differences(String mine, String theirs) {
        String[] a = mine.split("\n", -1);
        String[] b = theirs.split("\n", -1);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < Math.max(a.length, b.length); i++) {
            String x = i < a.length ? a[i] : "(none)";
            String y = i < b.length ? b[i] : "(none)";
            if (!x.equals(y)) out.append("\n  this run: ").append(x).append("\n  the file: ").append(y);
        }
        return out.toString();
    }

    private static InputArchive open(Path file) {
        InputArchive archive = new InputArchive();
        try {
            archive.load_from(file.toString());
        } catch (RuntimeException e) {
            throw new IllegalArgumentException("cannot read probing checkpoint " + file + ": " + e.getMessage(), e);
        }
        return archive;
    }

    private static long[] readLongs(InputArchive archive, Path file, String key) {
        Tensor t = new Tensor();
        if (!archive.try_read(key, t)) {
            throw new IllegalArgumentException("checkpoint " + file + " has no '" + key + "' entry");
        }
        return t.numel() == 0 ? new long[0] : HostTensor.of(t).longs();   // an empty curve has no data pointer
    }

    private static float[] readFloats(InputArchive archive, Path file, String key, int n, boolean required) {
        Tensor t = new Tensor();
        if (!archive.try_read(key, t)) {
            if (required) throw new IllegalArgumentException("checkpoint " + file + " has no '" + key + "' entry");
            return null;
        }
        float[] v = HostTensor.of(t).floats();
        if (v.length != n) {
            throw new IllegalArgumentException("checkpoint " + file + " entry '" + key + "' holds " + v.length
                + " values, the model has " + n + " edges");
        }
        return v;
    }

    private static Tensor longs(long... values) {
        return HostTensor.ofLongs(values, values.length).toTensor();
    }

    private static long[] encode(String s) {
        long[] out = new long[s.length()];
        for (int i = 0; i < out.length; i++) out[i] = s.charAt(i);
        return out;
    }

    private static String decode(long[] units) {
        StringBuilder sb = new StringBuilder(units.length);
        for (long u : units) sb.append((char) u);
        return sb.toString();
    }
}
