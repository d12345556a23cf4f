package org.autocircuit.training;

import java.util.Locale;
import java.util.Random;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;

/**
 * Per-head attention scores on repeated random runs {@code BOS r r} ({@code |r| = R}), the standard diagnostics
 * for induction circuits (Olsson et al., "In-context Learning and Induction Heads", 2022):
 * <ul>
 *   <li><b>previous-token score</b>: mean attention from position p to p−1, over every position after BOS;</li>
 *   <li><b>induction score</b>: mean attention from the second copy of r[i] (position R+1+i) to the token after
 *       the first copy, r[i+1] (position i+2), over i = 0..R−2;</li>
 *   <li><b>duplicate-token score</b>: mean attention from the second copy of r[i] to its first copy
 *       (position i+1), over i = 0..R−1.</li>
 * </ul>
 * Each is a fraction of the head's attention (1 = all of it), averaged over the sequences. The patterns come
 * from {@code blocks.b.attn.hook_pattern}. Both also come as profiles over an offset d: attention to
 * position p−d ({@link #lagProfile}, d = 1 is the previous-token score), and from the second copy of r[i] to the
 * first copy's position plus d ({@link #matchProfile}, d = 0 duplicate-token, d = 1 induction). Heads that
 * attend a fixed few tokens back show up as a peak of the lag profile at that d; an induction head composed
 * with them peaks in the match profile at the same d.
 */
public final class AttentionScores {
    /** Largest offset the profiles cover. */
    public static final int MAX_OFFSET = 6;

    private final double[][][] lag;     // [layer][head][d], d = 0..MAX_OFFSET
    private final double[][][] match;   // [layer][head][d]

    private AttentionScores(double[][][] lag, double[][][] match) {
        this.lag = lag;
        this.match = match;
    }

    /**
     * Measures every head on {@code count} sequences {@code BOS r r} with {@code |r| = repeatLen} distinct words,
     * drawn from {@code seed}. The lag profile averages over queries {@code p > MAX_OFFSET}, so every offset is
     * measured on the same positions.
     */
    public static AttentionScores measure(HookedTransformer model, int vocabWords, int repeatLen, int count, long seed) {
        int layers = model.config().nLayers(), heads = model.config().nHeads();
        if (1 + 2 * repeatLen > model.config().nCtx() || repeatLen <= MAX_OFFSET) {
            throw new IllegalArgumentException("repeatLen " + repeatLen + " must exceed " + MAX_OFFSET + " and fit "
                + (1 + 2 * repeatLen) + " positions into n_ctx " + model.config().nCtx());
        }
        InductionTask task = new InductionTask(vocabWords);
        InductionTask.Batch batch = task.sample(new Random(seed), count, 1 + 2 * repeatLen, repeatLen, repeatLen);
        HostTensor[] patterns = new HostTensor[layers];                 // [batch, nHeads, seq, seq] each
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            model.forward(batch.tokens().toTensor(), null, null, (name, value) -> {
                if (name.endsWith(".attn.hook_pattern")) {
                    int layer = Integer.parseInt(name.substring("blocks.".length(), name.indexOf(".attn")));
                    patterns[layer] = HostTensor.of(value);
                }
                return value;
            }, OutputSlice.LAST_SEQ, null);
        }
        int seq = 1 + 2 * repeatLen;
        double[][][] lag = new double[layers][heads][MAX_OFFSET + 1];
        double[][][] match = new double[layers][heads][MAX_OFFSET + 1];
        for (int l = 0; l < layers; l++) {
            float[] p = patterns[l].floats();
            for (int h = 0; h < heads; h++) {
                for (int d = 0; d <= MAX_OFFSET; d++) {
                    double sLag = 0, sMatch = 0;
                    int nLag = 0, nMatch = 0;
                    for (int b = 0; b < count; b++) {
                        int base = (b * heads + h) * seq * seq;
                        for (int q = MAX_OFFSET + 1; q < seq; q++, nLag++) sLag += p[base + q * seq + q - d];
                        for (int i = 0; i < repeatLen && i + 1 + d < seq; i++, nMatch++) {
                            int q = repeatLen + 1 + i;                   // second copy of r[i]; first copy at i+1
                            int k = i + 1 + d;
                            if (k <= q) sMatch += p[base + q * seq + k];
                        }
                    }
                    lag[l][h][d] = sLag / nLag;
                    match[l][h][d] = sMatch / nMatch;
                }
            }
        }
        return new AttentionScores(lag, match);
    }

    public int nLayers() {
        return lag.length;
    }

    public int nHeads() {
        return lag[0].length;
    }

    /** Mean attention to the previous token (lag profile at d = 1). */
    public double previousToken(int layer, int head) {
        return lag[layer][head][1];
    }

    /** Mean attention from the second copy of r[i] to the first copy of r[i+1] (match profile at d = 1). */
    public double induction(int layer, int head) {
        return match[layer][head][1];
    }

    /** Mean attention from the second copy of r[i] to its first copy (match profile at d = 0). */
    public double duplicateToken(int layer, int head) {
        return match[layer][head][0];
    }

    /** Mean attention to position p−d, d = 0..{@link #MAX_OFFSET} (a copy). */
    public double[] lagProfile(int layer, int head) {
        return lag[layer][head].clone();
    }

    /** Mean attention from the second copy of r[i] to position (first copy of r[i]) + d (a copy). */
    public double[] matchProfile(int layer, int head) {
        return match[layer][head].clone();
    }

    /** The offset d ≥ 1 at which the head's lag profile peaks. */
    public int dominantLag(int layer, int head) {
        int best = 1;
        for (int d = 2; d <= MAX_OFFSET; d++) if (lag[layer][head][d] > lag[layer][head][best]) best = d;
        return best;
    }

    /** A Markdown table: one row per head, its lag and match profiles. */
    public String toMarkdown() {
        StringBuilder sb = new StringBuilder("| head | attention to p−d, d = 1..6 | attention to first copy + d, d = 0..6 |\n"
            + "| --- | --- | --- |\n");
        for (int l = 0; l < nLayers(); l++) {
            for (int h = 0; h < nHeads(); h++) {
                sb.append("| A").append(l).append('.').append(h).append(" |");
                for (int d = 1; d <= MAX_OFFSET; d++) sb.append(String.format(Locale.ROOT, " %.2f", lag[l][h][d]));
                sb.append(" |");
                for (int d = 0; d <= MAX_OFFSET; d++) sb.append(String.format(Locale.ROOT, " %.2f", match[l][h][d]));
                sb.append(" |\n");
            }
        }
        return sb.toString();
    }
}
