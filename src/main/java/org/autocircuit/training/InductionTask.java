package org.autocircuit.training;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.RawPromptPair;
import org.autocircuit.util.HostTensor;

/**
 * The repeated-random-tokens task: training batches for {@link Trainer} and the clean/corrupt prompt pairs of
 * {@code datasets/induction.json}.
 *
 * <p>Vocabulary: id 0 is {@value #BOS}, ids {@code 1..vocabWords} are the words {@code w00, w01, ...}. Words are
 * plain whitespace-separated tokens, read by {@link org.autocircuit.tasks.WordTokenizer}.
 *
 * <p>Prompt pairs (the dataset): {@code clean = BOS r r[:k]} with {@code r} a run of {@code repeatLen} distinct
 * words; the answer is {@code r[k]}, what followed the current token {@code r[k-1]} in the first copy. The
 * corrupt prompt replaces the first copy by a fresh run {@code r'} (no word of {@code r}) in which the current
 * token appears once, at another position {@code j ≠ k-1}, followed by a fresh word {@code w = r'[j+1]}. In the
 * corrupt run, induction finds the current token at {@code j} and points at {@code w}: the wrong answer. Both
 * halves of an induction circuit are exercised: <i>where</i> to attend (the current token's earlier position
 * differs, so previous-token information into the induction head's keys differs) and <i>what</i> to copy (the
 * word after it differs). Neither answer occurs anywhere else in the other prompt, so the logit difference
 * {@code logit(r[k]) − logit(w)} is large and positive on clean and equally large and negative on corrupt. Clean
 * and corrupt have the same length, and the second copy (the end of the prompt) is the same in both, so
 * token-position graphs line up.
 */
public final class InductionTask {
    /** The BOS token's text (id 0). */
    public static final String BOS = org.autocircuit.tasks.WordTokenizer.BOS;

    private final int vocabWords;
    private final List<String> vocabulary;

    public InductionTask(int vocabWords) {
        if (vocabWords < 2) throw new IllegalArgumentException("vocabWords must be ≥ 2, got " + vocabWords);
        this.vocabWords = vocabWords;
        int width = String.valueOf(vocabWords - 1).length();
        List<String> v = new ArrayList<>(vocabWords + 1);
        v.add(BOS);
        for (int i = 0; i < vocabWords; i++) v.add("w" + String.format("%0" + width + "d", i));
        this.vocabulary = List.copyOf(v);
    }

    /** Every token's text, indexed by id (BOS first). */
    public List<String> vocabulary() {
        return vocabulary;
    }

    /** Vocabulary size including BOS. */
    public int vocabSize() {
        return vocabulary.size();
    }

    /**
     * One training batch.
     *
     * @param tokens   {@code [batch, seq]} int64: BOS, a random-length prefix of filler words, a run r of random
     *                 length in [minRepeat, maxRepeat], r again, then filler to the end (which no loss position can
     *                 see: attention is causal)
     * @param targets  {@code [batch, seq]} int64: the next token at every position (0 past the end)
     * @param lossMask {@code [batch, seq]} float32: 1 on the second copy of r except its last token, 0 elsewhere
     */
    public record Batch(HostTensor tokens, HostTensor targets, HostTensor lossMask) {}

    /**
     * Draws a training batch of {@code seqLen}-token sequences from {@code rng} (which advances).
     *
     * <p>The prefix length is uniform in [0, seqLen − 1 − 2|r|], so the first copy of r starts anywhere: with r
     * always right after BOS the model can (and, without this, does) solve the task from positions alone,
     * because the second copy's position then determines where its answer sits. The prefix and r hold distinct
     * words, so the current token occurs exactly once before the second copy and induction is unambiguous.
     */
    public Batch sample(Random rng, int batchSize, int seqLen, int minRepeat, int maxRepeat) {
        if (seqLen < 1 + 2 * maxRepeat) {
            throw new IllegalArgumentException("seqLen " + seqLen + " < 1 + 2 maxRepeat = " + (1 + 2 * maxRepeat));
        }
        long[] tokens = new long[batchSize * seqLen];
        long[] targets = new long[batchSize * seqLen];
        float[] mask = new float[batchSize * seqLen];
        for (int b = 0; b < batchSize; b++) {
            int len = minRepeat + rng.nextInt(maxRepeat - minRepeat + 1);
            int prefix = rng.nextInt(seqLen - 2 * len);                 // 0 .. seqLen-1-2len
            int[] words = distinctWords(rng, prefix + len, null);       // r first, then the prefix
            int at = b * seqLen;
            tokens[at] = 0;
            for (int i = 0; i < prefix; i++) tokens[at + 1 + i] = words[len + i] + 1L;
            int start = 1 + prefix;
            for (int i = 0; i < len; i++) {
                tokens[at + start + i] = words[i] + 1L;
                tokens[at + start + len + i] = words[i] + 1L;
            }
            for (int p = start + 2 * len; p < seqLen; p++) tokens[at + p] = 1L + rng.nextInt(vocabWords);
            for (int p = 0; p + 1 < seqLen; p++) targets[at + p] = tokens[at + p + 1];
            // the second copy: position start+len+i holds r[i]; its next token r[i+1] is determined for i < len-1
            for (int i = 0; i < len - 1; i++) mask[at + start + len + i] = 1f;
        }
        return new Batch(HostTensor.ofLongs(tokens, batchSize, seqLen), HostTensor.ofLongs(targets, batchSize, seqLen),
            HostTensor.ofFloats(mask, batchSize, seqLen));
    }

    /**
     * The prompt pairs of the dataset file (see the class comment), reproducible from {@code seed}.
     *
     * @param count     number of pairs
     * @param repeatLen length of the run r
     * @param k         how much of r the second copy repeats before the answer (1 ≤ k &lt; repeatLen)
     */
    public DatasetFile prompts(long seed, int count, int repeatLen, int k) {
        if (count < 1) throw new IllegalArgumentException("count must be ≥ 1, got " + count);
        if (k < 1 || k >= repeatLen || repeatLen < 3) {
            throw new IllegalArgumentException("k must be in [1, repeatLen " + repeatLen + ") and repeatLen ≥ 3, got k " + k);
        }
        if (2 * repeatLen > vocabWords) {
            throw new IllegalArgumentException("repeatLen " + repeatLen + " needs 2 × " + repeatLen
                + " distinct words; the vocabulary has " + vocabWords);
        }
        Random rng = new Random(seed);
        List<RawPromptPair> pairs = new ArrayList<>(count);
        for (int n = 0; n < count; n++) {
            int[] r = distinctWords(rng, repeatLen, null);
            boolean[] used = new boolean[vocabWords];
            for (int w : r) used[w] = true;
            int[] fresh = distinctWords(rng, repeatLen, used);
            int j = rng.nextInt(repeatLen - 2);               // 0 .. repeatLen-3, then skip k-1
            if (j >= k - 1) j++;
            fresh[j] = r[k - 1];                             // the current token, elsewhere; fresh[j+1] is w
            StringBuilder clean = new StringBuilder();
            StringBuilder corrupt = new StringBuilder();
            for (int i = 0; i < repeatLen; i++) {
                append(clean, r[i]);
                append(corrupt, fresh[i]);
            }
            for (int i = 0; i < k; i++) {
                append(clean, r[i]);
                append(corrupt, r[i]);
            }
            pairs.add(RawPromptPair.ofText(clean.toString(), corrupt.toString(), List.of(word(r[k])),
                List.of(word(fresh[j + 1]))));
        }
        List<String> labels = new ArrayList<>();
        for (int i = 0; i < repeatLen; i++) labels.add("r" + i);
        for (int i = 0; i < k; i++) labels.add("r" + i + "'");
        Map<String, Integer> wordIdxs = new LinkedHashMap<>();
        wordIdxs.put("first_current", k - 1);   // r[k-1] in the first copy of the clean prompt
        wordIdxs.put("first_answer", k);        // r[k] in the first copy: what induction copies on clean
        wordIdxs.put("end", repeatLen + k - 1);  // the current token r[k-1] in the second copy
        return new DatasetFile(pairs, labels, wordIdxs);
    }

    private void append(StringBuilder sb, int wordIndex) {
        if (!sb.isEmpty()) sb.append(' ');
        sb.append(word(wordIndex));
    }

    private String word(int wordIndex) {
        return vocabulary.get(wordIndex + 1);
    }

    /** {@code n} distinct word indices in [0, vocabWords), none of them marked in {@code exclude} (may be null). */
    private int[] distinctWords(Random rng, int n, boolean[] exclude) {
        int[] pool = new int[vocabWords];
        int size = 0;
        for (int w = 0; w < vocabWords; w++) if (exclude == null || !exclude[w]) pool[size++] = w;
        if (size < n) throw new IllegalArgumentException("need " + n + " distinct words, only " + size + " are free");
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {         // partial Fisher–Yates
            int j = i + rng.nextInt(size - i);
            int t = pool[i];
            pool[i] = pool[j];
            pool[j] = t;
            out[i] = pool[i];
        }
        return out;
    }
}
