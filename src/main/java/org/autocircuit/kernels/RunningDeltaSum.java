package org.autocircuit.kernels;

import org.bytedeco.pytorch.DeviceOptional;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.global.torch;

/**
 * The running sum {@code Σ_{i < rows} (patch[i] − curr[i])} over the sources of one patched forward pass, handed to
 * every {@link Kernels#edgePatch} call of that pass.
 *
 * <p>Why: with binary masks (run_circuits, ACDC) a destination row whose mask is mostly 1 is cheapest as
 * {@code input + Σ_all Δ − Σ_{edges kept} Δ}. Computing {@code Σ_all Δ} in every call reads every incoming source
 * (about 2,000 source reads per GPT-2-small forward); carrying it along reads each source's difference once per pass
 * (157). The native CPU kernel advances it lazily, only in calls that need it, by the sources it does not hold
 * yet; implementations that have no use for it ignore it. Passes at uniform masks read it directly: every such
 * destination's input is {@code input + a · Σ Δ} ({@link #advanceTo}).
 *
 * <p>Valid for one pass over one pair of source buffers: the rows already summed must keep their values, and
 * destinations must read source prefixes {@code [0, nIn)} in increasing order (the factorized graph does).
 * Owns two small tensors; create it inside the pass's {@link org.bytedeco.javacpp.PointerScope}.
 */
public final class RunningDeltaSum {
    private final Tensor sum;
    private final Tensor rows;

    private RunningDeltaSum(Tensor sum, Tensor rows) {
        this.sum = sum;
        this.rows = rows;
    }

    /** An empty sum (no sources yet) for inputs shaped like {@code input} ({@code [batch, seq, dModel]}). */
    public static RunningDeltaSum startingAt(Tensor input) {
        Tensor sum = torch.zeros(input.shape(), new TensorOptions(torch.ScalarType.Float).device(new DeviceOptional(input.device())));
        Tensor rows = torch.zeros(new long[] {1}, new TensorOptions(torch.ScalarType.Long));
        return new RunningDeltaSum(sum, rows);
    }

    /** {@code [batch, seq, dModel]} float32: the sum over sources {@code [0, rows())}. */
    public Tensor sum() {
        return sum;
    }

    /** One int64 on the CPU: how many leading sources the sum holds (the native kernel advances it). */
    public Tensor rowsTensor() {
        return rows;
    }

    /** How many leading sources the sum holds. */
    public long rows() {
        return rows.item_long();
    }

    /**
     * Brings the sum up to date for sources {@code [0, n)}: adds {@code patch − curr} of the sources it does not hold
     * yet, what the native kernel does in the calls that need the sum. For callers that form patched inputs from the
     * sum themselves (uniform masks, {@code PatchableModel}); without gradients.
     *
     * @param patch the pass's patch values, {@code [nSrc, batch, seq, dModel]} (at least n sources)
     * @param curr  the pass's current outputs, the same shape
     * @throws IllegalArgumentException when the sum already holds more than n sources
     */
    public void advanceTo(long n, Tensor patch, Tensor curr) {
        long held = rows();
        if (n < held) {
            throw new IllegalArgumentException("the running sum holds " + held + " sources; cannot go back to " + n);
        }
        if (n == held) return;
        try (NoGradGuard g = new NoGradGuard()) {
            sum.add_(patch.narrow(0, held, n - held).sum(0)).sub_(curr.narrow(0, held, n - held).sum(0));
            rows.fill_(new Scalar((double) n));
        }
    }
}
