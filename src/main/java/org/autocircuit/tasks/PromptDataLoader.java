package org.autocircuit.tasks;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPair;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;

/**
 * AutoCircuit's {@code PromptDataLoader}: fixed-size batches of prompt pairs in order,
 * with the remainder dropped ({@code drop_last=True}), plus what the graph and the official
 * circuits need to know about the prompts.
 *
 * <p>Immutable and free of native memory: batches hold {@link HostTensor}s, which callers upload
 * with {@code toTensor()} inside their own scope. Batches are collated as AutoCircuit's
 * {@code collate_fn} does: answers are stacked when every prompt has the same number, else ragged;
 * {@link PromptPairBatch#key()} is a deterministic 64-bit hash of the clean and corrupt contents,
 * so identical batches share a key; {@link PromptPairBatch#batchDivergeIdx()} is the first
 * position at which any clean and corrupt prompt of the batch differ.
 */
public final class PromptDataLoader implements Iterable<PromptPairBatch> {
    private final List<PromptPairBatch> batches;
    private final int batchSize;
    private final Integer seqLen;
    private final int divergeIdx;
    private final HostTensor kvPrefix;
    private final HostTensor kvPrefixPadding;
    private final List<String> seqLabels;
    private final Map<String, Integer> wordIdxs;
    private final int nPrompts;

    /**
     * The general constructor.
     *
     * @param prompts         the prompt pairs, in batch order; all clean prompts must have one shape and dtype
     * @param batchSize       prompts per batch (≥ 1); {@code prompts.size() % batchSize} prompts are dropped
     * @param seqLen          the number of token positions of a token-position graph, or empty
     * @param divergeIdx      how many leading positions were cut off the prompts for a key/value cache (≥ 0)
     * @param kvPrefix        {@code [batchSize, divergeIdx]} int64 clean prefix tokens the cache is built from, or
     *                        null; only allowed when {@code divergeIdx > 0}
     * @param kvPrefixPadding {@code [batchSize, divergeIdx]} int64 attention mask of that prefix, or null when it
     *                        holds no padding
     * @param seqLabels       labels of the (cut) positions, for drawing; may be empty
     * @param wordIdxs        name → token index in uncut coordinates (the official circuits add back
     *                        {@code divergeIdx} themselves)
     */
    public PromptDataLoader(List<PromptPair> prompts, int batchSize, OptionalInt seqLen, int divergeIdx,
                            HostTensor kvPrefix, HostTensor kvPrefixPadding, List<String> seqLabels,
                            Map<String, Integer> wordIdxs) {
        if (prompts == null) throw new IllegalArgumentException("prompts must not be null");
        if (batchSize < 1) throw new IllegalArgumentException("batchSize must be ≥ 1, got " + batchSize);
        if (seqLen == null) throw new IllegalArgumentException("seqLen must not be null (use OptionalInt.empty())");
        if (seqLen.isPresent() && seqLen.getAsInt() < 1) {
            throw new IllegalArgumentException("seqLen must be ≥ 1, got " + seqLen.getAsInt());
        }
        if (divergeIdx < 0) throw new IllegalArgumentException("divergeIdx must be ≥ 0, got " + divergeIdx);
        if (kvPrefix != null) {
            if (divergeIdx == 0) throw new IllegalArgumentException("kvPrefix is only allowed when divergeIdx > 0");
            checkPrefix("kvPrefix", kvPrefix, batchSize, divergeIdx);
        }
        if (kvPrefixPadding != null) {
            if (kvPrefix == null) throw new IllegalArgumentException("kvPrefixPadding given without kvPrefix");
            checkPrefix("kvPrefixPadding", kvPrefixPadding, batchSize, divergeIdx);
        }
        checkPrompts(prompts, seqLen);
        this.batchSize = batchSize;
        this.seqLen = seqLen.isPresent() ? seqLen.getAsInt() : null;
        this.divergeIdx = divergeIdx;
        this.kvPrefix = kvPrefix;
        this.kvPrefixPadding = kvPrefixPadding;
        this.seqLabels = seqLabels == null ? List.of() : List.copyOf(seqLabels);
        this.wordIdxs = wordIdxs == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(wordIdxs));
        this.nPrompts = prompts.size();
        List<PromptPairBatch> out = new ArrayList<>(prompts.size() / batchSize);
        for (int from = 0; from + batchSize <= prompts.size(); from += batchSize) {
            out.add(collate(prompts.subList(from, from + batchSize)));
        }
        this.batches = List.copyOf(out);
    }

    /** A loader without tail divergence, labels or word indices (hand-built test loaders). */
    public static PromptDataLoader of(List<PromptPair> prompts, int batchSize, OptionalInt seqLen) {
        return new PromptDataLoader(prompts, batchSize, seqLen, 0, null, null, List.of(), Map.of());
    }

    /** The batches, in order. */
    public List<PromptPairBatch> batches() {
        return batches;
    }

    @Override
    public Iterator<PromptPairBatch> iterator() {
        return batches.iterator();
    }

    /** Number of batches ({@code len(loader)} in Python). */
    public int size() {
        return batches.size();
    }

    public int batchSize() {
        return batchSize;
    }

    /** Token positions of a token-position graph (already reduced by {@link #divergeIdx()}), or empty. */
    public OptionalInt seqLen() {
        return seqLen == null ? OptionalInt.empty() : OptionalInt.of(seqLen);
    }

    /** Leading positions cut off every prompt and served from a key/value cache; 0 without tail divergence. */
    public int divergeIdx() {
        return divergeIdx;
    }

    /**
     * {@code [batchSize, divergeIdx]} int64: {@code clean[:batchSize, :divergeIdx]} of the kept prompts, from which
     * the model layer builds the frozen key/value cache. Present only when {@code divergeIdx > 0}.
     */
    public Optional<HostTensor> kvPrefix() {
        return Optional.ofNullable(kvPrefix);
    }

    /** {@code [batchSize, divergeIdx]} int64 attention mask of {@link #kvPrefix()}; empty when it has no padding. */
    public Optional<HostTensor> kvPrefixPadding() {
        return Optional.ofNullable(kvPrefixPadding);
    }

    /** One label per (cut) position, for drawing; may be empty. */
    public List<String> seqLabels() {
        return seqLabels;
    }

    /** Name → token index, in uncut coordinates (BOS included when it was prepended). */
    public Map<String, Integer> wordIdxs() {
        return wordIdxs;
    }

    /** Number of prompts given, including the dropped remainder ({@code len(loader.dataset)}). */
    public int nPrompts() {
        return nPrompts;
    }

    @Override
    public String toString() {
        return "PromptDataLoader(" + batches.size() + " batches of " + batchSize + ", seqLen "
            + (seqLen == null ? "none" : seqLen) + ", divergeIdx " + divergeIdx + ")";
    }

    private static void checkPrefix(String name, HostTensor t, int batchSize, int divergeIdx) {
        if (t.dtype() != HostTensor.DType.INT64 || !Arrays.equals(t.shape(), new long[] {batchSize, divergeIdx})) {
            throw new IllegalArgumentException(name + " must be int64 [" + batchSize + ", " + divergeIdx + "], got " + t);
        }
    }

    private static void checkPrompts(List<PromptPair> prompts, OptionalInt seqLen) {
        if (prompts.isEmpty()) return;
        HostTensor first = prompts.get(0).clean();
        for (int i = 0; i < prompts.size(); i++) {
            PromptPair p = prompts.get(i);
            if (p == null) throw new IllegalArgumentException("prompt " + i + " is null");
            if (!Arrays.equals(p.clean().shape(), first.shape()) || p.clean().dtype() != first.dtype()) {
                throw new IllegalArgumentException("prompt " + i + " has clean " + p.clean() + ", but prompt 0 has "
                    + first + "; all prompts of a loader must have one shape and dtype");
            }
            if (p.answers().dtype() != prompts.get(0).answers().dtype()
                || p.wrongAnswers().dtype() != prompts.get(0).wrongAnswers().dtype()) {
                throw new IllegalArgumentException("prompt " + i + " has answers " + p.answers() + " / wrong answers "
                    + p.wrongAnswers() + " of another dtype than prompt 0 (" + prompts.get(0).answers() + ")");
            }
        }
        if (seqLen.isPresent() && seqLen.getAsInt() != first.size(0)) {
            throw new IllegalArgumentException("seqLen " + seqLen.getAsInt() + " disagrees with the prompts' length "
                + first.size(0));
        }
    }

    /** AutoCircuit's {@code collate_fn}. */
    private static PromptPairBatch collate(List<PromptPair> rows) {
        HostTensor clean = stack(rows.stream().map(PromptPair::clean).toList());
        HostTensor corrupt = stack(rows.stream().map(PromptPair::corrupt).toList());
        HostTensor cleanPadding = stackPadding(rows, true);
        HostTensor corruptPadding = stackPadding(rows, false);
        Answers answers = Answers.of(rows.stream().map(PromptPair::answers).toList());
        Answers wrong = Answers.of(rows.stream().map(PromptPair::wrongAnswers).toList());
        return new PromptPairBatch(contentKey(clean, corrupt), divergeIdx(clean, corrupt), clean, corrupt,
            cleanPadding, corruptPadding, answers, wrong);
    }

    /** Stacks same-shaped, same-dtype tensors along a new dimension 0. */
    static HostTensor stack(List<HostTensor> parts) {
        long[] one = parts.get(0).shape();
        long[] shape = new long[one.length + 1];
        shape[0] = parts.size();
        System.arraycopy(one, 0, shape, 1, one.length);
        int n = Math.toIntExact(parts.get(0).numel());
        if (parts.get(0).dtype() == HostTensor.DType.INT64) {
            long[] all = new long[Math.multiplyExact(n, parts.size())];
            for (int i = 0; i < parts.size(); i++) System.arraycopy(parts.get(i).longs(), 0, all, i * n, n);
            return HostTensor.ofLongs(all, shape);
        }
        float[] all = new float[Math.multiplyExact(n, parts.size())];
        for (int i = 0; i < parts.size(); i++) System.arraycopy(parts.get(i).floats(), 0, all, i * n, n);
        return HostTensor.ofFloats(all, shape);
    }

    /** {@code [batch, seq]} mask, or null when no row of the batch is padded (rows without a mask count as all ones). */
    private static HostTensor stackPadding(List<PromptPair> rows, boolean clean) {
        int seq = rows.get(0).seqLen();
        long[] all = new long[rows.size() * seq];
        boolean anyPad = false;
        for (int r = 0; r < rows.size(); r++) {
            HostTensor m = clean ? rows.get(r).cleanPadding() : rows.get(r).corruptPadding();
            long[] v = m == null ? null : m.longs();
            for (int s = 0; s < seq; s++) {
                long x = v == null ? 1 : v[s];
                anyPad |= x == 0;
                all[r * seq + s] = x;
            }
        }
        return anyPad ? HostTensor.ofLongs(all, rows.size(), seq) : null;
    }

    /**
     * {@code min((clean != corrupt).int().argmax(dim=1))}: for every row and every trailing index, the first
     * position where clean and corrupt differ (0 where they never differ), minimised over the batch.
     */
    static int divergeIdx(HostTensor clean, HostTensor corrupt) {
        long[] shape = clean.shape();
        int batch = (int) shape[0];
        int seq = (int) shape[1];
        int inner = 1;
        for (int d = 2; d < shape.length; d++) inner = Math.multiplyExact(inner, (int) shape[d]);
        boolean isLong = clean.dtype() == HostTensor.DType.INT64;
        long[] cl = isLong ? clean.longs() : null;
        long[] co = isLong ? corrupt.longs() : null;
        float[] cf = isLong ? null : clean.floats();
        float[] of = isLong ? null : corrupt.floats();
        int best = Integer.MAX_VALUE;
        for (int b = 0; b < batch; b++) {
            for (int i = 0; i < inner; i++) {
                int first = 0;
                for (int s = 0; s < seq; s++) {
                    int at = (b * seq + s) * inner + i;
                    boolean differ = isLong ? cl[at] != co[at] : cf[at] != of[at];
                    if (differ) {
                        first = s;
                        break;
                    }
                }
                best = Math.min(best, first);
            }
        }
        return best == Integer.MAX_VALUE ? 0 : best;
    }

    /**
     * A deterministic 64-bit hash of the dtype, shape and values of clean and then corrupt. Python uses
     * {@code hash((str(clean.tolist()), str(corrupt.tolist())))}, which is randomised per process; only its
     * property "same contents ⇒ same key" matters (identical batches are stored once per key).
     */
    static long contentKey(HostTensor clean, HostTensor corrupt) {
        long h = 0x243F6A8885A308D3L;
        for (HostTensor t : new HostTensor[] {clean, corrupt}) {
            h = mix(h, t.dtype().ordinal());
            long[] shape = t.shape();
            h = mix(h, shape.length);
            for (long s : shape) h = mix(h, s);
            if (t.dtype() == HostTensor.DType.INT64) {
                for (long v : t.longs()) h = mix(h, v);
            } else {
                for (float v : t.floats()) h = mix(h, Float.floatToIntBits(v));
            }
        }
        return fmix(h);
    }

    private static long mix(long h, long v) {
        h ^= fmix(v + 0x9E3779B97F4A7C15L);
        return Long.rotateLeft(h, 27) * 0x94D049BB133111EBL + 0x632BE59BD9B4E019L;
    }

    /** splitmix64's finaliser. */
    private static long fmix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
