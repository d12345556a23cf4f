package org.autocircuit.kernels;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * The log-sum-exp over the vocabulary of an affine unembedding, {@code logsumexp_v(z)} with {@code z = h · W_U + b_U}
 * per row, and optionally the dot product {@code Σ_v weights[v]·z[v]}, computed by the native kernels
 * ({@code unembed_logsumexp} in {@code kernels.h}) panel by panel with an online maximum, without materialising the
 * {@code [rows, vocab]} logits. ACDC's KL divergence against the clean output needs nothing else of the whole
 * vocabulary (docs/native.md, "ACDC on the component graph").
 *
 * <p>Holds {@code W_U} packed in panels of 16 columns and the bias padded with −1e30 (made once, in the caller's
 * {@link org.bytedeco.javacpp.PointerScope}). CPU and float32 only: {@link #supports} says whether a weight qualifies.
 * The sums run in float64; a row's value depends on that row of {@code h} only (not on the other rows, their number
 * or the thread count).
 */
public final class UnembedLogSumExp implements AutoCloseable {
    private static final long PANEL = 16;

    private final Tensor wPacked;   // [panels, dModel, 16]
    private final Tensor bias;      // [panels · 16], −1e30 past the vocabulary (exp gives 0, and 0 · −1e30 = 0)
    private final long dModel;
    private final long vocab;
    private boolean owned;          // kept past the scope it was made in (see keptAlive); close frees it

    private UnembedLogSumExp(Tensor wPacked, Tensor bias, long dModel, long vocab) {
        this.wPacked = wPacked;
        this.bias = bias;
        this.dModel = dModel;
        this.vocab = vocab;
    }

    /** Whether the native kernels are loaded and {@code wU} is a CPU float32 {@code [dModel, vocab]} matrix. */
    public static boolean supports(Tensor wU, Tensor bU) {
        return KernelAvailability.isAvailable() && wU != null && wU.dim() == 2 && wU.is_cpu()
            && wU.scalar_type().intern() == torch.ScalarType.Float
            && (bU == null || (bU.dim() == 1 && bU.is_cpu() && bU.scalar_type().intern() == torch.ScalarType.Float
                && bU.shape()[0] == wU.shape()[1]));
    }

    /**
     * Packs {@code wU} ({@code [dModel, vocab]}) and {@code bU} ({@code [vocab]}, null for none).
     *
     * @throws IllegalArgumentException when {@link #supports} is false, naming what does not qualify
     */
    public static UnembedLogSumExp of(Tensor wU, Tensor bU) {
        if (!supports(wU, bU)) {
            throw new IllegalArgumentException("unembed log-sum-exp needs the native kernels ("
                + KernelAvailability.describe() + ") and a CPU float32 W_U [dModel, vocab] with a matching CPU float32 b_U or"
                + " none; got W_U " + describe(wU) + ", b_U " + describe(bU));
        }
        long d = wU.shape()[0];
        long v = wU.shape()[1];
        long panels = (v + PANEL - 1) / PANEL;
        Tensor padded = torch.zeros(d, panels * PANEL);
        padded.narrow(1, 0, v).copy_(wU);
        Tensor packed = padded.view(d, panels, PANEL).permute(1, 0, 2).contiguous();
        Tensor b = torch.full(new long[] {panels * PANEL}, new Scalar(-1e30));
        if (bU != null) {
            b.narrow(0, 0, v).copy_(bU);
        } else {
            b.narrow(0, 0, v).zero_();
        }
        return new UnembedLogSumExp(packed, b, d, v);
    }

    /**
     * This object kept alive past the {@link org.bytedeco.javacpp.PointerScope} it was made in, until {@link #close}
     * (for a cache that outlives one run).
     */
    public UnembedLogSumExp keptAlive() {
        if (!owned) {
            org.autocircuit.util.OwnedTensors.keepAlive(wPacked);
            org.autocircuit.util.OwnedTensors.keepAlive(bias);
            owned = true;
        }
        return this;
    }

    /** Frees the packed weights if {@link #keptAlive}; otherwise its scope does. */
    @Override
    public void close() {
        if (owned) {
            owned = false;
            wPacked.close();
            bias.close();
        }
    }

    /**
     * {@code logsumexp(h · W_U + b_U, -1)} in float64, {@code [rows]}, for {@code h} {@code [rows, dModel]} (CPU float32;
     * made contiguous if it is not).
     */
    public Tensor apply(Tensor h) {
        return apply(h, null).select(1, 0);
    }

    /**
     * Per row r of {@code h}: {@code [logsumexp(z), Σ_v weights[r mod W][v]·z[v]]} in float64, {@code [rows, 2]}, with
     * {@code z = h · W_U + b_U}; {@code weights} {@code [W, padded]} from {@link #padColumns}, W dividing the rows of
     * {@code h} (several blocks of rows weighted by the same W rows, as ACDC's trials of one window are), or null
     * (the second column is 0).
     */
    public Tensor apply(Tensor h, Tensor weights) {
        if (h.dim() != 2 || h.shape()[1] != dModel || !h.is_cpu() || h.scalar_type().intern() != torch.ScalarType.Float) {
            throw new IllegalArgumentException("unembed log-sum-exp: h must be a CPU float32 [rows, " + dModel + "], got "
                + describe(h));
        }
        if (weights != null && (weights.dim() != 2 || weights.shape()[0] == 0 || h.shape()[0] % weights.shape()[0] != 0
                || weights.shape()[1] != bias.shape()[0])) {
            throw new IllegalArgumentException("unembed log-sum-exp: weights must be [W, " + bias.shape()[0]
                + "] (padColumns) with W dividing the " + h.shape()[0] + " rows of h, got " + describe(weights));
        }
        try {
            return NativeKernelsLib.unembedLogSumExp(h.contiguous(), wPacked, bias, weights == null ? new Tensor() : weights);
        } catch (RuntimeException e) {
            throw new AutoCircuitNativeException("unembed_logsumexp", e);
        }
    }

    /** {@code x} {@code [rows, vocab]} as the {@code weights} of {@link #apply(Tensor, Tensor)}: float32, zero past the vocabulary. */
    public Tensor padColumns(Tensor x) {
        if (x.dim() != 2 || x.shape()[1] != vocab) {
            throw new IllegalArgumentException("padColumns: x must be [rows, " + vocab + "], got " + describe(x));
        }
        Tensor out = torch.zeros(x.shape()[0], bias.shape()[0]);
        out.narrow(1, 0, vocab).copy_(x);
        return out;
    }

    private static String describe(Tensor t) {
        if (t == null) return "none";
        return java.util.Arrays.toString(t.shape()) + " " + t.scalar_type() + " on " + (t.is_cpu() ? "cpu" : "a GPU");
    }
}
