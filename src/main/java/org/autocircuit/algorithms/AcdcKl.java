package org.autocircuit.algorithms;

import org.autocircuit.kernels.UnembedLogSumExp;
import org.autocircuit.patching.PatchableModel;
import org.bytedeco.javacpp.PointerScope;
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
    private final Tables tables;
    private final UnembedLogSumExp lse;
    private final int rows;          // output rows of one trial (= of the clean output)
    private final int dModel;
    private final Tensor probs;      // [rows, padded vocab] float32: p, zero past the vocabulary
    private final double[] pLogP;    // per row: Σ_v p·L
    private final double[] pSum;     // per row: Σ_v p
    // for increaseBound and valueError
    private final double[] pW;       // [rows · dModel] per row: W_U · p, a float32 product
    private final double pWError;    // ≥ ‖error of pW's row‖₂ / Σ p of that row

    /** The unit roundoff of float32. */
    private static final double U = 0x1p-24;

    /**
     * @param cleanLogprobs the clean output's log-softmax {@code [batch, (seq,) vocab]}, float32
     * @param cleanProbs    its {@code exp}, as the plain path uses it
     * @param wU            {@code [dModel, vocab]}
     * @param bU            {@code [vocab]} or null
     */
    AcdcKl(Tensor cleanLogprobs, Tensor cleanProbs, Tensor wU, Tensor bU) {
        this(cleanLogprobs, cleanProbs, Tables.of(wU, bU));
    }

    /** With the unembedding's tables made earlier (ACDC keeps them with the model: {@link Tables#owned}). */
    AcdcKl(Tensor cleanLogprobs, Tensor cleanProbs, Tables tables) {
        this.tables = tables;
        Tensor wU = tables.wU;
        long vocab = wU.shape()[1];
        Tensor p = cleanProbs.reshape(-1, vocab).to(torch.ScalarType.Double);
        Tensor l = cleanLogprobs.reshape(-1, vocab).to(torch.ScalarType.Double);
        rows = (int) p.shape()[0];
        dModel = (int) wU.shape()[0];
        pLogP = doubles(p.mul(l).sum(1));
        pSum = doubles(p.sum(1));
        lse = tables.lse;
        probs = lse.padColumns(cleanProbs.reshape(-1, vocab));
        // W_U·p in float32 (a float64 copy of W_U per run would cost more than the bounds save), its rounding bounded:
        // each entry is a vocab-term float32 sum, off by at most γ_vocab · Σ_v p_v |W_kv| ≤ γ_vocab · Σp · max|W_U|
        // whatever the summation order, so a row's error is at most √dModel times that (per unit of Σp)
        pW = doubles(cleanProbs.reshape(-1, vocab).mm(wU.t()));                      // [rows, dModel]
        double gammaVocab = vocab * U / (1 - vocab * U);
        pWError = gammaVocab * tables.wMax * Math.sqrt(dModel);
    }

    /**
     * What the KL needs of the unembedding alone: {@code W_U} packed for the native kernel, and for the bounds
     * ({@link #increaseBound}, {@link #valueError}) the largest column norm of {@code W_U}, its largest |entry| and the
     * largest |bias|. Packing and the reductions over a (for GPT-2, transposed) {@code W_U} took 30–45 ms per ACDC run
     * when made per run, as long as W4c's trials' own KLs; ACDC keeps one per model ({@link PatchableModel#derived}).
     */
    static final class Tables implements AutoCloseable {
        final Tensor wU;            // the model's own [dModel, vocab] (not owned here)
        final UnembedLogSumExp lse;
        final double colNorm;       // ≥ max_v ‖W_U[:, v]‖₂
        final double wMax;          // max |W_U|
        final double biasMax;       // max |b_U| (0 without a bias)

        private Tables(Tensor wU, UnembedLogSumExp lse, double colNorm, double wMax, double biasMax) {
            this.wU = wU;
            this.lse = lse;
            this.colNorm = colNorm;
            this.wMax = wMax;
            this.biasMax = biasMax;
        }

        /** Tables whose packed weights live in the caller's {@link PointerScope}. */
        static Tables of(Tensor wU, Tensor bU) {
            try (org.bytedeco.pytorch.NoGradGuard g = new org.bytedeco.pytorch.NoGradGuard()) {
                UnembedLogSumExp lse = UnembedLogSumExp.of(wU, bU);
                double colNorm, wMax, biasMax;
                try (PointerScope scope = new PointerScope()) {
                    Tensor w = wU.contiguous();
                    long dModel = w.shape()[0];
                    // the largest column norm, rounded up past the float32 rounding of its dModel-term sum of
                    // squares (relative γ_dModel before the square root)
                    colNorm = w.pow(new org.bytedeco.pytorch.Scalar(2)).sum(new long[] {0}, false,
                        new org.bytedeco.pytorch.ScalarTypeOptional()).max().sqrt().item_double() * (1 + 2 * dModel * U);
                    wMax = w.abs().max().item_double();
                    biasMax = bU == null ? 0 : bU.abs().max().item_double();
                }
                return new Tables(wU, lse, colNorm, wMax, biasMax);
            }
        }

        /** {@link #of} kept past the caller's scope until {@link #close} (for {@link PatchableModel#derived}). */
        static Tables owned(Tensor wU, Tensor bU) {
            try (PointerScope scope = new PointerScope()) {
                return of(wU, bU).keptAlive();
            }
        }

        private Tables keptAlive() {
            lse.keptAlive();
            return this;
        }

        @Override
        public void close() {
            lse.close();
        }
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
     * {@code logsumexp(z') − logsumexp(z) ≤ max_v Δz_v ≤ ‖Δ‖₂ · max_v ‖W_U[:, v]‖₂}; W_U·p is a float32 product, so
     * its rounding adds {@code ‖Δ‖₂} times a bound on it. No vocabulary pass: O(rows · dModel). Used by ACDC to settle removals whose increase is far below τ without the KL itself.
     */
    double increaseBound(float[] h, int offset, float[] ref) {
        return increaseBound(h, offset, ref, 0);
    }

    /** {@link #increaseBound(float[], int, float[])} with the reference rows from {@code refOffset} of {@code ref}. */
    double increaseBound(float[] h, int offset, float[] ref, int refOffset) {
        double total = 0;
        for (int r = 0; r < rows; r++) {
            double dot = 0, norm2 = 0;
            for (int d = 0; d < dModel; d++) {
                double delta = (double) h[offset + r * dModel + d] - (double) ref[refOffset + r * dModel + d];   // exact
                dot += pW[r * dModel + d] * delta;
                norm2 += delta * delta;
            }
            total += -dot + pSum[r] * (tables.colNorm + pWError) * Math.sqrt(norm2);
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
            double z = Math.sqrt(norm2) * tables.colNorm + tables.biasMax;
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
