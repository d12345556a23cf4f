package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.testing.NativeExpectation;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The native log-sum-exp over an unembedding ({@link UnembedLogSumExp}) against libtorch's {@code logsumexp} of the
 * float64 logits, on both ISA variants, for vocabularies that do and do not fill the last 16-column panel, every row
 * count of a row block's tail, with and without a bias; and its independence of the other rows.
 */
class UnembedLogSumExpTest {
    @BeforeEach
    void nativeKernels() {
        NativeExpectation.requireNativeKernels();
    }

    /** logsumexp(h · W + b) in float64 from the same float32 inputs. */
    private static double[] reference(Tensor h, Tensor w, Tensor b) {
        Tensor logits = torch.matmul(h.to(torch.ScalarType.Double), w.to(torch.ScalarType.Double));
        if (b != null) logits = logits.add(b.to(torch.ScalarType.Double));
        return doubles(logits.logsumexp(new long[] {-1}, false));
    }

    private static double[] doubles(Tensor t) {
        Tensor c = t.to(torch.ScalarType.Double).contiguous();
        double[] out = new double[(int) c.numel()];
        c.data_ptr_double().get(out);
        return out;
    }

    @ParameterizedTest(name = "isa {0}")
    @ValueSource(strings = {"avx2", "baseline"})
    void matchesFloat64LogSumExp(String isa) {
        String before = NativeKernelsLib.cpuIsa();
        // (the avx2 variant exists on x86-64-v3 CPUs only; docs/testing.md lists the skip)
        Assumptions.assumeTrue(NativeKernelsLib.useCpuIsa(isa), "the " + isa + " variant is unavailable on this CPU");
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(7);
            for (long vocab : new long[] {16, 50, 1000, 5003}) {
                for (boolean bias : new boolean[] {false, true}) {
                    Tensor w = torch.randn(24, vocab).mul(new Scalar(0.3));
                    Tensor b = bias ? torch.randn(vocab) : null;
                    UnembedLogSumExp lse = UnembedLogSumExp.of(w, b);
                    for (int rows = 1; rows <= 13; rows++) {
                        // rows of growing scale: flat to peaked distributions
                        Tensor h = torch.randn(rows, 24).mul(torch.linspace(new Scalar(0.1), new Scalar(8.0), rows).unsqueeze(1));
                        double[] expected = reference(h, w, b);
                        double[] actual = doubles(lse.apply(h));
                        Tensor weights = torch.rand(rows, vocab);
                        double[] both = doubles(lse.apply(h, lse.padColumns(weights)));
                        Tensor z64 = torch.matmul(h.to(torch.ScalarType.Double), w.to(torch.ScalarType.Double));
                        if (b != null) z64 = z64.add(b.to(torch.ScalarType.Double));
                        Tensor w64 = weights.to(torch.ScalarType.Double);
                        double[] dot = doubles(w64.mul(z64).sum(1));
                        double[] dotScale = doubles(w64.mul(z64.abs()).sum(1));
                        for (int r = 0; r < rows; r++) {
                            // the logits are float32 in the kernel: their rounding (|z| · 2^-24 · a few) bounds the error
                            double tol = 2e-6 * Math.max(1, Math.abs(expected[r]));
                            String where = isa + " vocab " + vocab + " bias " + bias + " rows " + rows + " row " + r;
                            assertTrue(Math.abs(actual[r] - expected[r]) <= tol, where + ": " + actual[r] + " vs float64 "
                                + expected[r]);
                            assertEquals(actual[r], both[2 * r], 0.0, where + ": the log-sum-exp with weights");
                            assertTrue(Math.abs(both[2 * r + 1] - dot[r]) <= 1e-6 * dotScale[r] + 1e-9, where + ": dot "
                                + both[2 * r + 1] + " vs float64 " + dot[r]);
                        }
                    }
                }
            }
        } finally {
            NativeKernelsLib.useCpuIsa(before);
        }
    }

    @Test
    void aRowsValueDoesNotDependOnTheOtherRows() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(11);
            Tensor w = torch.randn(64, 3001);
            Tensor b = torch.randn(3001);
            UnembedLogSumExp lse = UnembedLogSumExp.of(w, b);
            Tensor h = torch.randn(128, 64);
            double[] all = doubles(lse.apply(h));
            for (int start : new int[] {0, 5, 8, 120}) {
                for (int n : new int[] {1, 3, 8}) {
                    if (start + n > 128) continue;
                    double[] part = doubles(lse.apply(h.narrow(0, start, n)));
                    for (int r = 0; r < n; r++) {
                        assertEquals(all[start + r], part[r], 0.0, "row " + (start + r) + " alone in " + n + " rows");
                    }
                }
            }
        }
    }

    /** Weights of W rows serve W·n rows of h, row r taking weights row r mod W, with the bits of the repeated weights. */
    @Test
    void weightRowsRepeatOverBlocksOfRows() {
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(13);
            Tensor w = torch.randn(64, 3001);
            Tensor b = torch.randn(3001);
            UnembedLogSumExp lse = UnembedLogSumExp.of(w, b);
            Tensor weights = lse.padColumns(torch.rand(8, 3001));
            Tensor h = torch.randn(5 * 8, 64);
            double[] cycled = doubles(lse.apply(h, weights));
            double[] repeated = doubles(lse.apply(h, weights.repeat(5, 1)));
            for (int i = 0; i < cycled.length; i++) assertEquals(repeated[i], cycled[i], 0.0, "value " + i);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> lse.apply(torch.randn(12, 64), weights));
            assertTrue(e.getMessage().contains("with W dividing the 12 rows of h"), e.getMessage());
        }
    }

    @Test
    void nanLogitsGiveNanAndBadInputIsNamed() {
        try (PointerScope scope = new PointerScope()) {
            Tensor w = torch.randn(8, 40);
            UnembedLogSumExp lse = UnembedLogSumExp.of(w, null);
            Tensor h = torch.randn(3, 8);
            h.get(1).get(2).fill_(new Scalar(Double.NaN));
            double[] out = doubles(lse.apply(h));
            assertTrue(Double.isNaN(out[1]), "row with a NaN: " + out[1]);
            assertTrue(Double.isFinite(out[0]) && Double.isFinite(out[2]));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> lse.apply(torch.randn(3, 9)));
            assertTrue(e.getMessage().contains("h must be a CPU float32 [rows, 8]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> UnembedLogSumExp.of(w, torch.randn(41)));
            assertTrue(e.getMessage().contains("b_U [41]"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> UnembedLogSumExp.of(w.to(torch.ScalarType.Double), null));
            assertTrue(e.getMessage().contains("W_U [8, 40] Double"), e.getMessage());
        }
    }
}
