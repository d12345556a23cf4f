package org.autocircuit.algorithms;

import org.autocircuit.kernels.UnembedLogSumExp;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * ACDC's KL divergence against the clean output, {@code multibatch_kl_div(log_softmax(patched), clean_logprobs)}, from
 * the final norm's output {@code h} of a trial instead of its logits (docs/native.md, "ACDC on the component graph").
 *
 * <p>Per output row, with {@code p} and {@code L} the clean probabilities and log-probabilities (the plain path's own
 * float32 tensors) and {@code z = h · W_U + b_U} the trial's logits:
 * <pre>
 *   Σ_v p·(L − log_softmax(z)) = Σ_v p·L − Σ_v p·z + logsumexp(z) · Σ_v p
 * </pre>
 * which is exact in real arithmetic. {@code Σ p·L} and {@code Σ p} are computed once per run in float64; per trial
 * the native kernel ({@link UnembedLogSumExp}) computes the logits panel by panel, never storing them, and from them
 * {@code logsumexp(z)} and {@code Σ_v p·z}, both from the same float32 logits (so their rounding largely cancels
 * when the patched distribution is close to the clean one). The result differs from the plain float32 computation
 * by float rounding only (the plain one rounds each of the 50,257 terms and the log-softmax to float32; this one the
 * logits, and the lane-wise float32 sums over 512 columns at a time): tested in {@code AcdcKlTest}.
 */
final class AcdcKl {
    private final UnembedLogSumExp lse;
    private final int rows;          // output rows of one trial (= of the clean output)
    private final int dModel;
    private final Tensor probs;      // [rows, padded vocab] float32: p, zero past the vocabulary
    private final double[] pLogP;    // per row: Σ_v p·L
    private final double[] pSum;     // per row: Σ_v p
    // for increaseBound and valueError
    private final double[] pW;       // [rows · dModel] per row: W_U · p in float64
    private final double colNorm;    // ≥ max_v ‖W_U[:, v]‖₂
    private final double biasMax;    // max_v |b_U[v]| (0 without a bias)

    /** The unit roundoff of float32. */
    private static final double U = 0x1p-24;

    /**
     * @param cleanLogprobs the clean output's log-softmax {@code [batch, (seq,) vocab]}, float32
     * @param cleanProbs    its {@code exp}, as the plain path uses it
     * @param wU            {@code [dModel, vocab]}
     * @param bU            {@code [vocab]} or null
     */
    AcdcKl(Tensor cleanLogprobs, Tensor cleanProbs, Tensor wU, Tensor bU) {
        long vocab = wU.shape()[1];
        Tensor p = cleanProbs.reshape(-1, vocab).to(torch.ScalarType.Double);
        Tensor l = cleanLogprobs.reshape(-1, vocab).to(torch.ScalarType.Double);
        rows = (int) p.shape()[0];
        dModel = (int) wU.shape()[0];
        pLogP = doubles(p.mul(l).sum(1));
        pSum = doubles(p.sum(1));
        lse = UnembedLogSumExp.of(wU, bU);
        probs = lse.padColumns(cleanProbs.reshape(-1, vocab));
        Tensor w = wU.to(torch.ScalarType.Double);
        pW = doubles(p.mm(w.t()));                                                   // [rows, dModel]
        // the largest column norm, rounded up past the float64 rounding of its 64-term sum
        colNorm = w.pow(new org.bytedeco.pytorch.Scalar(2)).sum(new long[] {0}, false,
            new org.bytedeco.pytorch.ScalarTypeOptional()).max().sqrt().item_double() * (1 + 1e-12);
        biasMax = bU == null ? 0 : bU.abs().max().item_double();
    }

    /** Output rows of one trial. */
    int rows() {
        return rows;
    }

    /**
     * An upper bound, in real arithmetic, on {@code KL(h) − KL(ref)}, the increase of a trial's KL (the mean over its
     * rows of {@code Σ p·L − p·z + logsumexp(z)·Σ p}, z the exact logits of the float32 rows) over the KL of the
     * rows {@code ref} ({@code [rows · dModel]}); {@code h} holds the trial's rows from {@code offset}. Per row, with
     * {@code Δ = h − ref}: {@code −p·Δz} is exactly {@code −(W_U·p)·Δ} (the bias cancels), and
     * {@code logsumexp(z') − logsumexp(z) ≤ max_v Δz_v ≤ ‖Δ‖₂ · max_v ‖W_U[:, v]‖₂}. No vocabulary pass: O(rows ·
     * dModel). Used by ACDC to settle removals whose increase is far below τ without the KL itself.
     */
    double increaseBound(float[] h, int offset, float[] ref) {
        double total = 0;
        for (int r = 0; r < rows; r++) {
            double dot = 0, norm2 = 0;
            for (int d = 0; d < dModel; d++) {
                double delta = (double) h[offset + r * dModel + d] - (double) ref[r * dModel + d];   // exact
                dot += pW[r * dModel + d] * delta;
                norm2 += delta * delta;
            }
            total += -dot + pSum[r] * colNorm * Math.sqrt(norm2);
        }
        // the float64 sums above round at about 1e-16 of their terms; 1e-12 of every term's size covers that
        return total / rows * (1 + 1e-12) + 1e-15;
    }

    /**
     * A bound on {@code |mean(h rows) − KL(h)|}: how far the value this class returns for a trial ({@link #mean}) can
     * lie from the real KL of its float32 rows, {@code magnitude} bounding that value. Per row, with
     * {@code Z = ‖h_r‖₂ · max_v ‖W_U[:, v]‖₂ + max|b_U|} (which bounds every |z_v| and Σ_k |h_k W_kv|), u = 2⁻²⁴:
     * the kernel's float32 logits are within 66u·Z of the exact ones (a 64-term FMA chain and the bias), which moves
     * both {@code Σ p·z} and {@code logsumexp} by at most that; the float32 lane sums of {@code p·z} (64 terms per
     * lane and chunk) add 65u·Z; the float32 lane sums of the exponentials (64 terms, each exp within a few ulp, and
     * each subtraction of the maximum rounded by u·|z − max|, on average at most log(vocab) ≈ 11 under the softmax)
     * at most 90u relative, so 90u in the log. Hence {@code u·(200·Z + 150)} per row, the rest in float64, and the
     * final rounding to float32 {@code u·magnitude}.
     */
    double valueError(float[] h, int offset, double magnitude) {
        double total = 0;
        for (int r = 0; r < rows; r++) {
            double norm2 = 0;
            for (int d = 0; d < dModel; d++) {
                double x = h[offset + r * dModel + d];
                norm2 += x * x;
            }
            double z = Math.sqrt(norm2) * colNorm + biasMax;
            total += U * (200 * z + 150) * Math.max(1, pSum[r]);
        }
        return total / rows + U * Math.abs(magnitude) + 1e-12;
    }

    /** Whether the fused computation applies: native kernels, a CPU float32 affine unembedding. */
    static boolean supported(Tensor[] affineUnembedding) {
        return affineUnembedding != null && UnembedLogSumExp.supports(affineUnembedding[0], affineUnembedding[1]);
    }

    /**
     * Σ over one trial's output rows of {@code KL(clean_r ‖ patched_r)}, from {@code h} = the final norm's output of
     * those rows, {@code [rows, dModel]} (or {@code [batch, seq, dModel]}) in the clean output's row order.
     */
    double sum(Tensor h) {
        return sums(h, 1)[0];
    }

    /**
     * {@link #sum} of each of {@code trials} trials whose rows are stacked trial-major in {@code h}
     * ({@code [trials·rows, dModel]} or {@code [trials·batch, seq, dModel]}), in one kernel call: each trial's value
     * is the one {@link #sum} gives for its rows alone (a row's result depends on that row only), while {@code W_U}
     * is read once for all of them instead of once per trial.
     */
    double[] sums(Tensor h, int trials) {
        Tensor flat = h.reshape(-1, dModel).contiguous();
        if (trials < 1 || flat.shape()[0] != (long) rows * trials) {
            throw new IllegalArgumentException(trials + " trials of " + rows + " output rows each, got h of shape "
                + java.util.Arrays.toString(h.shape()));
        }
        double[] lseAndDot = doubles(lse.apply(flat, probs));     // per row: logsumexp(z), Σ p·z
        double[] out = new double[trials];
        for (int t = 0; t < trials; t++) {
            double total = 0;
            for (int r = 0; r < rows; r++) {
                int i = t * rows + r;
                total += pLogP[r] - lseAndDot[2 * i + 1] + lseAndDot[2 * i] * pSum[r];
            }
            out[t] = total;
        }
        return out;
    }

    /** The mean over rows, as the plain path's {@code kl.sum() / rows}, rounded to float32 like its {@code item()}. */
    float mean(Tensor h) {
        return mean(sum(h));
    }

    /** {@link #mean} of a trial from its {@link #sum}. */
    float mean(double sum) {
        return (float) (sum / rows);
    }

    private static double[] doubles(Tensor t) {
        Tensor c = t.to(torch.ScalarType.Double).contiguous();
        double[] out = new double[(int) c.numel()];
        c.data_ptr_double().get(out);
        return out;
    }
}
