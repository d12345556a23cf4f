package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.ArrayList;
import java.util.List;
import org.autocircuit.testing.NativeExpectation;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/** Shared helpers of the kernel tests: random problems, running an implementation with gradients, comparison. */
final class KernelTestSupport {
    private KernelTestSupport() {}

    /**
     * When the native library is absent: fails the calling test where this run expects native kernels, skips it
     * with the stated reason elsewhere ({@link NativeExpectation}).
     */
    static void assumeNativeKernels() {
        NativeExpectation.requireNativeKernels();
    }

    /** One edge_patch problem: sizes, layout, dtype and the seed of its random values. */
    record Problem(long batch, long seq, long dModel, long nIn, long heads, int masks, MaskLayout layout,
                   torch.ScalarType dtype, torch.ScalarType maskDtype, long seed) {
        long[] maskShape() {
            List<Long> dims = new ArrayList<>();
            if (layout.batch()) dims.add(batch);
            if (layout.seq()) dims.add(seq);
            if (layout.head()) dims.add(heads);
            dims.add(nIn);
            return dims.stream().mapToLong(Long::longValue).toArray();
        }

        long[] outShape() {
            return layout.head() ? new long[] {batch, seq, heads, dModel} : new long[] {batch, seq, dModel};
        }

        @Override
        public String toString() {
            String l = (layout.batch() ? "b" : "") + (layout.seq() ? "s" : "") + (layout.head() ? "h" : "") + "i";
            return dtype + (maskDtype != dtype ? "/mask " + maskDtype : "") + " B" + batch + " S" + seq + " D" + dModel
                    + " nIn" + nIn + " H" + heads + " x" + masks + " " + l + " seed" + seed;
        }
    }

    /** The problem's tensors (made once, then cloned as fresh leaves for each implementation). */
    static final class Inputs {
        final Tensor input;      // [batch, seq, dModel]
        final Tensor patch;      // [nIn, batch, seq, dModel]
        final Tensor curr;       // [nIn, batch, seq, dModel]
        final Tensor[] masks;    // [batch?][seq?][head?][nIn]
        final Tensor[] upstream; // one output-shaped gradient per mask

        Inputs(Problem p) {
            torch.manual_seed(p.seed());
            input = torch.randn(p.batch(), p.seq(), p.dModel()).to(p.dtype());
            patch = torch.randn(p.nIn(), p.batch(), p.seq(), p.dModel()).to(p.dtype());
            curr = torch.randn(p.nIn(), p.batch(), p.seq(), p.dModel()).to(p.dtype());
            masks = new Tensor[p.masks()];
            upstream = new Tensor[p.masks()];
            for (int m = 0; m < p.masks(); m++) {
                masks[m] = torch.rand(p.maskShape()).to(p.maskDtype());
                upstream[m] = torch.randn(p.outShape()).to(p.dtype());
            }
        }
    }

    /** Outputs and gradients of one implementation on one problem. */
    record Run(Tensor[] outputs, Tensor[] maskGrads, Tensor currGrad, Tensor inputGrad) {}

    /** Runs {@code kernels} on fresh leaves that require grad, then backward of sum_m (out_m * upstream_m). */
    static Run run(Kernels kernels, Inputs in, MaskLayout layout) {
        return run(kernels, in, layout, null);
    }

    /**
     * {@link #run(Kernels, Inputs, MaskLayout)} with every tensor first converted to {@code upcast} (null: as they
     * are): TorchKernels in float64 on the same values is the ground truth both float32 and bfloat16 are held to.
     */
    static Run run(Kernels kernels, Inputs in, MaskLayout layout, torch.ScalarType upcast) {
        Tensor input = as(in.input, upcast).clone().set_requires_grad(true);
        Tensor curr = as(in.curr, upcast).clone().set_requires_grad(true);
        Tensor patch = as(in.patch, upcast).clone();
        Tensor[] masks = new Tensor[in.masks.length];
        for (int m = 0; m < masks.length; m++) masks[m] = as(in.masks[m], upcast).clone().set_requires_grad(true);
        Tensor[] out = kernels.edgePatch(input, masks, patch, curr, layout);
        Tensor loss = null;
        for (int m = 0; m < out.length; m++) {
            Tensor term = out[m].mul(as(in.upstream[m], upcast)).sum().to(torch.ScalarType.Double);
            loss = loss == null ? term : loss.add(term);
        }
        loss.backward();
        Tensor[] maskGrads = new Tensor[masks.length];
        for (int m = 0; m < masks.length; m++) maskGrads[m] = masks[m].grad();
        return new Run(out, maskGrads, curr.grad(), input.grad());
    }

    private static Tensor as(Tensor t, torch.ScalarType dtype) {
        return dtype == null ? t : t.to(dtype);
    }

    /**
     * Tolerances: |actual - expected| <= atol + rtol * max(1, max|expected|) over the whole tensor. The floor of 1
     * is the scale of the inputs (randn, rand): with cancellation a result can be far smaller than the terms whose
     * rounding it inherits.
     */
    record Tolerance(double atol, double rtol) {
        /**
         * Against the float64 ground truth. float32: atol 1e-5 plus 1e-6 of the largest value (mask gradients sum
         * B*S*D products, whose float32 rounding grows with the sum's size). bfloat16: 1e-2 of the largest value
         * (the native path rounds to bfloat16 once, at the end: at most half an ulp, 0.4%).
         */
        static Tolerance againstTruth(torch.ScalarType dtype) {
            return dtype == torch.ScalarType.BFloat16 ? new Tolerance(0, 1e-2) : new Tolerance(1e-5, 1e-6);
        }

        /**
         * Against TorchKernels in the same dtype. float32: both round, differently (FMA tile sums vs BLAS).
         * bfloat16: the reference rounds patch - curr, each einsum and the final add to bfloat16, so the two can
         * differ by about two ulps (1.6%) of the largest value.
         */
        static Tolerance againstReference(torch.ScalarType dtype) {
            return dtype == torch.ScalarType.BFloat16 ? new Tolerance(0, 3e-2) : new Tolerance(1e-5, 1e-5);
        }
    }

    static void assertClose(String what, Tensor expected, Tensor actual, Tolerance tol) {
        if (expected == null || actual == null) fail(what + ": expected " + expected + ", got " + actual);
        assertArrayEquals(shape(expected), shape(actual), what + ": shape");
        if (expected.numel() == 0) return;
        Tensor e = expected.detach().to(torch.ScalarType.Float).flatten();
        Tensor a = actual.detach().to(torch.ScalarType.Float).flatten();
        Tensor diff = a.sub(e).abs();
        double maxDiff = diff.max().item_float();
        double scale = Math.max(1.0, e.abs().max().item_float());
        double allowed = tol.atol() + tol.rtol() * scale;
        if (!(maxDiff <= allowed)) {  // also fails on NaN
            long at = diff.argmax().item_long();
            StringBuilder first = new StringBuilder();
            for (long k = Math.max(0, at - 2); k < Math.min(e.numel(), at + 3); k++) {
                first.append(String.format(" [%d] %.6g vs %.6g;", k, e.select(0, k).item_float(), a.select(0, k).item_float()));
            }
            fail(String.format("%s: max |actual - expected| = %.3g at flat index %d > allowed %.3g (atol %.1g + rtol %.1g * "
                    + "max(1, max|expected|) %.3g); around it (expected vs actual):%s", what, maxDiff, at, allowed, tol.atol(),
                    tol.rtol(), scale, first));
        }
    }

    static long[] shape(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int k = 0; k < s.length; k++) s[k] = t.size(k);
        return s;
    }
}
