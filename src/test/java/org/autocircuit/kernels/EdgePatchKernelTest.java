package org.autocircuit.kernels;

import static org.autocircuit.kernels.KernelTestSupport.assertClose;
import static org.autocircuit.kernels.KernelTestSupport.assumeNativeKernels;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.kernels.KernelTestSupport.Inputs;
import org.autocircuit.kernels.KernelTestSupport.Problem;
import org.autocircuit.kernels.KernelTestSupport.Run;
import org.autocircuit.kernels.KernelTestSupport.Tolerance;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The native edge_patch equals {@link TorchKernels}: forward outputs and the gradients of every mask, of curr
 * and of input, over shapes (GPT-2-small-like D 768 with nIn 144/157 and 12 heads, odd sizes, the 512-wide tile
 * boundary, nIn 0 and 1), every mask layout, several masks at once, fp32 and bf16, several seeds, and both CPU
 * instruction-set variants. Skipped, with the reason, when the native library is absent.
 */
class EdgePatchKernelTest {

    private static String originalIsa;

    @BeforeAll
    static void rememberIsa() {
        if (KernelAvailability.isAvailable()) originalIsa = NativeKernelsLib.cpuIsa();
    }

    @AfterAll
    static void restoreIsa() {
        if (originalIsa != null) NativeKernelsLib.useCpuIsa(originalIsa);
    }

    // batch, seq, dModel, nIn, heads, masks
    private static final long[][] SHAPES = {
        {1, 1, 1, 1, 1, 1},
        {2, 3, 5, 3, 2, 2},
        {2, 5, 37, 7, 3, 3},      // D not a multiple of any vector width
        {2, 3, 48, 1, 4, 1},      // nIn 1
        {3, 4, 64, 13, 4, 3},
        {1, 2, 1030, 5, 2, 2},    // two tiles of the 512-wide tiling, uneven
        {2, 4, 768, 144, 12, 3},  // GPT-2 small, Q/K/V of the last layer
        {2, 4, 768, 157, 1, 1},   // GPT-2 small, Resid End
        {2, 2, 8, 0, 2, 2},       // no incoming sources
    };

    static Stream<Arguments> grid() {
        List<Arguments> cases = new ArrayList<>();
        long seed = 1;
        for (long[] s : SHAPES) {
            for (int l = 0; l < 8; l++) {
                MaskLayout layout = new MaskLayout((l & 4) != 0, (l & 2) != 0, (l & 1) != 0);
                for (torch.ScalarType dtype : new torch.ScalarType[] {torch.ScalarType.Float, torch.ScalarType.BFloat16}) {
                    cases.add(Arguments.of(new Problem(s[0], s[1], s[2], s[3], s[4], (int) s[5], layout, dtype, dtype, seed++)));
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("grid")
    void nativeEqualsReference(Problem p) {
        assumeNativeKernels();
        compare(p);
    }

    static Stream<Arguments> seeds() {
        MaskLayout head = new MaskLayout(false, false, true);
        MaskLayout all = new MaskLayout(true, true, true);
        return Stream.of(11L, 12L, 13L, 14L).flatMap(seed -> Stream.of(
                Arguments.of(new Problem(4, 16, 768, 144, 12, 3, head, torch.ScalarType.Float, torch.ScalarType.Float, seed)),
                Arguments.of(new Problem(2, 8, 768, 60, 12, 3, all, torch.ScalarType.Float, torch.ScalarType.Float, seed)),
                Arguments.of(new Problem(4, 16, 768, 157, 1, 1, new MaskLayout(false, true, false),
                        torch.ScalarType.BFloat16, torch.ScalarType.BFloat16, seed))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("seeds")
    void nativeEqualsReferenceAcrossSeeds(Problem p) {
        assumeNativeKernels();
        compare(p);
    }

    @Test
    void floatMasksWithBfloat16Activations() {
        assumeNativeKernels();
        compare(new Problem(2, 3, 40, 9, 3, 3, new MaskLayout(false, true, true), torch.ScalarType.BFloat16,
                torch.ScalarType.Float, 21));
    }

    static Stream<Arguments> isas() {
        return Stream.of(Arguments.of("baseline"), Arguments.of("avx2"));
    }

    /** Both instruction-set variants of the CPU tile kernels (the baseline is what CPUs without AVX2 run). */
    @ParameterizedTest(name = "{0}")
    @MethodSource("isas")
    void everyCpuVariantEqualsReference(String isa) {
        assumeNativeKernels();
        org.junit.jupiter.api.Assumptions.assumeTrue(NativeKernelsLib.useCpuIsa(isa),
                () -> isa + " variant not compiled in or not supported by this CPU");
        try {
            assertEquals(isa, NativeKernelsLib.cpuIsa());
            long seed = 31;
            for (long[] s : SHAPES) {
                for (int l = 0; l < 8; l += 3) {
                    MaskLayout layout = new MaskLayout((l & 4) != 0, (l & 2) != 0, (l & 1) != 0);
                    compare(new Problem(s[0], s[1], s[2], s[3], s[4], (int) s[5], layout, torch.ScalarType.Float,
                            torch.ScalarType.Float, seed++));
                    compare(new Problem(s[0], s[1], s[2], s[3], s[4], (int) s[5], layout, torch.ScalarType.BFloat16,
                            torch.ScalarType.BFloat16, seed++));
                }
            }
        } finally {
            NativeKernelsLib.useCpuIsa(originalIsa);
        }
    }

    static Stream<Arguments> binaryMasks() {
        List<Arguments> cases = new ArrayList<>();
        long seed = 101;
        // batch, seq, dModel, nIn, heads, masks, layouts (bits: batch 4, seq 2, head 1): Q/K/V of GPT-2 small's
        // last layer, an MLP input, odd sizes with every layout, two tiles of the 512-wide tiling
        long[][] shapes = {{2, 4, 768, 144, 12, 3, 1}, {2, 3, 768, 145, 1, 1, 2}, {2, 5, 37, 29, 3, 2, 0, 1, 2, 3, 4, 5, 6, 7},
            {1, 2, 1030, 9, 2, 1, 1, 6}};
        for (long[] s : shapes) {
            for (int k = 6; k < s.length; k++) {
                int l = (int) s[k];
                MaskLayout layout = new MaskLayout((l & 4) != 0, (l & 2) != 0, (l & 1) != 0);
                for (torch.ScalarType dtype : new torch.ScalarType[] {torch.ScalarType.Float, torch.ScalarType.BFloat16}) {
                    for (String pattern : new String[] {"all0", "all1", "few1", "few0", "mixed"}) {
                        cases.add(Arguments.of(new Problem(s[0], s[1], s[2], s[3], s[4], (int) s[5], layout, dtype, dtype,
                                seed++), pattern));
                    }
                }
            }
        }
        return cases.stream();
    }

    /**
     * Masks of only 0 and 1 (run_circuits, ACDC) take the sparse forward path, which sums the edges that differ
     * from each row's majority; outputs and all gradients still equal the reference.
     */
    @ParameterizedTest(name = "{0} {1}")
    @MethodSource("binaryMasks")
    void binaryMasksTakeTheSparsePathAndEqualReference(Problem p, String pattern) {
        assumeNativeKernels();
        long before = NativeKernelsLib.sparseForwardCount();
        float[][] values = binaryMasks(p, pattern);
        compare(p, values);
        assertTrue(NativeKernelsLib.sparseForwardCount() > before, "the sparse path ran for " + pattern);
        // Without mask gradients only the sources that some row needs are read (with them, all are, for the
        // checksum): the forward pass alone, as run_circuits calls it.
        before = NativeKernelsLib.sparseForwardCount();
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            Inputs in = new Inputs(p);
            for (int m = 0; m < p.masks(); m++) in.masks[m] = Tensor.create(values[m], p.maskShape()).to(p.maskDtype());
            Tensor[] ref = TorchKernels.INSTANCE.edgePatch(in.input, in.masks, in.patch, in.curr, p.layout());
            Tensor[] nat = NativeKernels.instance().edgePatch(in.input, in.masks, in.patch, in.curr, p.layout());
            for (int m = 0; m < p.masks(); m++) {
                assertClose(p + " " + pattern + " no-grad out[" + m + "]", ref[m], nat[m],
                        Tolerance.againstReference(p.dtype()));
            }
        }
        // Without gradients the sparse form is chosen by cost (planSparse): it always pays when most edges are 0
        // (it reads only the sources some row needs). Rows of mostly 1 without a running sum need every source
        // either way, so there the two forms cost about the same and either may run (the running-sum test below
        // covers that sparse form).
        if (pattern.equals("all0") || pattern.equals("few1")) {
            assertTrue(NativeKernelsLib.sparseForwardCount() > before, "the sparse path ran without gradients");
        }
    }

    /**
     * The running sum of one pass (RunningDeltaSum): calls that read growing prefixes of the same source buffers,
     * with mostly-1 binary masks, take the sum of all differences from it instead of reading every source; each
     * output still equals the reference, the sum is advanced to the longest prefix read, and a call reading fewer
     * sources than the sum holds falls back to reading them (same result, sum untouched).
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("runningSumDtypes")
    void runningSumAcrossCallsEqualsReference(torch.ScalarType dtype) {
        assumeNativeKernels();
        long batch = 2, seq = 3, dModel = 40, heads = 3, nSrc = 12;
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            torch.manual_seed(77);
            Tensor patchAll = torch.randn(nSrc, batch, seq, dModel).to(dtype);
            Tensor currAll = torch.randn(nSrc, batch, seq, dModel).to(dtype);
            Tensor input = torch.randn(batch, seq, dModel).to(dtype);
            RunningDeltaSum running = RunningDeltaSum.startingAt(input);
            MaskLayout layout = new MaskLayout(false, true, true);
            long longestRead = 0;
            for (long nIn : new long[] {3, 7, 12, 5}) {
                Problem p = new Problem(batch, seq, dModel, nIn, heads, 3, layout, dtype, torch.ScalarType.Float, 500 + nIn);
                float[][] values = binaryMasks(p, "few0");
                Tensor[] masks = new Tensor[values.length];
                for (int m = 0; m < masks.length; m++) masks[m] = Tensor.create(values[m], p.maskShape());
                Tensor patch = patchAll.narrow(0, 0, nIn);
                Tensor curr = currAll.narrow(0, 0, nIn);
                Tensor[] ref = TorchKernels.INSTANCE.edgePatch(input, masks, patch, curr, layout);
                Tensor[] nat = NativeKernels.instance().edgePatch(input, masks, patch, curr, layout, running);
                for (int m = 0; m < masks.length; m++) {
                    assertClose(dtype + " nIn " + nIn + " out[" + m + "]", ref[m], nat[m], Tolerance.againstReference(dtype));
                }
                longestRead = Math.max(longestRead, nIn);
                assertEquals(longestRead, running.rows(), "rows held after reading " + nIn + " sources");
            }
            assertEquals(12, running.rows(), "the sum holds the longest prefix read (12), not the last (5)");
            Tensor expected = patchAll.to(torch.ScalarType.Float).sub(currAll.to(torch.ScalarType.Float)).sum(0);
            assertClose(dtype + " running sum", expected, running.sum(), new Tolerance(1e-5, 1e-5));
        }
    }

    static Stream<torch.ScalarType> runningSumDtypes() {
        return Stream.of(torch.ScalarType.Float, torch.ScalarType.BFloat16);
    }

    @Test
    void runningSumOfTheWrongShapeIsRejectedInJava() {
        assumeNativeKernels();
        try (PointerScope scope = new PointerScope()) {
            Tensor input = torch.randn(2, 3, 8);
            Tensor patch = torch.randn(4, 2, 3, 8);
            Tensor curr = torch.randn(4, 2, 3, 8);
            Tensor[] masks = {torch.ones(4)};
            RunningDeltaSum wrong = RunningDeltaSum.startingAt(torch.randn(2, 3, 9));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> NativeKernels.instance()
                    .edgePatch(input, masks, patch, curr, new MaskLayout(false, false, false), wrong));
            assertTrue(e.getMessage().contains("running.sum") && e.getMessage().contains("[2, 3, 8]"), e.getMessage());
        }
    }

    @Test
    void denseMasksDoNotTakeTheSparsePath() {
        assumeNativeKernels();
        long before = NativeKernelsLib.sparseForwardCount();
        compare(new Problem(2, 3, 40, 9, 3, 3, new MaskLayout(false, true, true), torch.ScalarType.Float,
                torch.ScalarType.Float, 121));
        // half ones, half zeros: the sparse form would not pay
        compare(new Problem(2, 3, 40, 16, 3, 1, new MaskLayout(false, false, true), torch.ScalarType.Float,
                torch.ScalarType.Float, 122), binaryMasks(
                new Problem(2, 3, 40, 16, 3, 1, new MaskLayout(false, false, true), torch.ScalarType.Float,
                        torch.ScalarType.Float, 122), "half"));
        assertEquals(before, NativeKernelsLib.sparseForwardCount());
    }

    /**
     * Masks that all hold one value (integrated gradients' points) take the uniform forward path in fp32, which
     * sums the differences once per token instead of once per row; outputs and every gradient still equal the
     * reference and the float64 truth, on every layout. One value off the others, or bfloat16 activations, take the
     * dense path.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("allLayoutsForUniform")
    void uniformMasksTakeTheUniformPathAndEqualReference(Problem p) {
        assumeNativeKernels();
        long[] shape = p.maskShape();
        int size = 1;
        for (long d : shape) size *= (int) d;
        for (float value : new float[] {0.3f, 0.7f, 1.5f}) {
            float[][] values = new float[p.masks()][size];
            for (float[] v : values) java.util.Arrays.fill(v, value);
            long before = NativeKernelsLib.uniformForwardCount();
            compare(p, values);
            long ran = NativeKernelsLib.uniformForwardCount() - before;
            if (p.dtype() == torch.ScalarType.Float) {
                assertTrue(ran > 0, p + ": the uniform path did not run at " + value);
            } else {
                assertEquals(0, ran, p + ": bfloat16 takes the dense path");
            }
            // one value off: the dense path
            values[p.masks() - 1][size - 1] = value / 2;
            before = NativeKernelsLib.uniformForwardCount();
            compare(p, values);
            assertEquals(before, NativeKernelsLib.uniformForwardCount(), p + ": non-uniform masks took the uniform path");
        }
    }

    static Stream<Arguments> allLayoutsForUniform() {
        List<Arguments> cases = new ArrayList<>();
        long seed = 301;
        long[][] shapes = {{2, 4, 768, 144, 12, 3}, {2, 3, 768, 145, 1, 1}, {2, 5, 37, 29, 3, 2}, {1, 2, 1030, 9, 2, 1}};
        for (long[] s : shapes) {
            for (int l = 0; l < 8; l++) {
                MaskLayout layout = new MaskLayout((l & 4) != 0, (l & 2) != 0, (l & 1) != 0);
                for (torch.ScalarType dtype : new torch.ScalarType[] {torch.ScalarType.Float, torch.ScalarType.BFloat16}) {
                    if (dtype == torch.ScalarType.BFloat16 && l != 1) continue;   // the dtype fallback once per shape
                    cases.add(Arguments.of(new Problem(s[0], s[1], s[2], s[3], s[4], (int) s[5], layout, dtype, dtype, seed++)));
                }
            }
        }
        return cases.stream();
    }

    /** Binary masks of the problem's shape: each row's majority value and, with probability 5%, the other value. */
    static float[][] binaryMasks(Problem p, String pattern) {
        java.util.Random random = new java.util.Random(p.seed());
        long[] shape = p.maskShape();
        int nIn = (int) shape[shape.length - 1];
        int size = 1;
        for (long d : shape) size *= (int) d;
        float[][] out = new float[p.masks()][size];
        for (int m = 0; m < p.masks(); m++) {
            for (int e = 0; e < size; e++) {
                int row = nIn == 0 ? 0 : e / nIn;
                float v;
                switch (pattern) {
                    case "all0": v = 0; break;
                    case "all1": v = 1; break;
                    case "few1": v = random.nextDouble() < 0.05 ? 1 : 0; break;
                    case "few0": v = random.nextDouble() < 0.05 ? 0 : 1; break;
                    case "half": v = (e % nIn) % 2; break;
                    default: v = ((row + m) % 2 == 0) == (random.nextDouble() < 0.05) ? 0 : 1; break;
                }
                out[m][e] = v;
            }
        }
        return out;
    }

    @Test
    void forwardUnderNoGradNeedsNoGraph() {
        assumeNativeKernels();
        Problem p = new Problem(2, 3, 16, 4, 2, 2, new MaskLayout(false, false, true), torch.ScalarType.Float,
                torch.ScalarType.Float, 41);
        try (PointerScope scope = new PointerScope(); NoGradGuard noGrad = new NoGradGuard()) {
            Inputs in = new Inputs(p);
            Tensor mask = in.masks[0].clone().set_requires_grad(true);
            Tensor[] out = NativeKernels.instance().edgePatch(in.input, new Tensor[] {mask, in.masks[1]}, in.patch, in.curr,
                    p.layout());
            Tensor[] ref = TorchKernels.INSTANCE.edgePatch(in.input, new Tensor[] {mask, in.masks[1]}, in.patch, in.curr,
                    p.layout());
            assertFalse(out[0].requires_grad(), "no graph under NoGradGuard");
            assertClose("out[0]", ref[0], out[0], Tolerance.againstReference(p.dtype()));
            assertClose("out[1]", ref[1], out[1], Tolerance.againstReference(p.dtype()));
        }
    }

    /** Only curr requires grad: no difference tensor is saved, and its gradient is still right. */
    @Test
    void currGradientWithoutMaskGradients() {
        assumeNativeKernels();
        Problem p = new Problem(2, 3, 33, 5, 2, 2, new MaskLayout(true, false, true), torch.ScalarType.Float,
                torch.ScalarType.Float, 42);
        try (PointerScope scope = new PointerScope()) {
            Inputs in = new Inputs(p);
            Tensor[] grads = new Tensor[2];
            for (Kernels k : new Kernels[] {TorchKernels.INSTANCE, NativeKernels.instance()}) {
                Tensor curr = in.curr.clone().set_requires_grad(true);
                Tensor[] out = k.edgePatch(in.input, in.masks, in.patch, curr, p.layout());
                out[0].mul(in.upstream[0]).sum().add(out[1].mul(in.upstream[1]).sum()).backward();
                grads[k == TorchKernels.INSTANCE ? 0 : 1] = curr.grad();
            }
            assertClose("curr.grad", grads[0], grads[1], Tolerance.againstReference(p.dtype()));
        }
    }

    /** curr is a view of a buffer whose other rows are written after the call, as the patched forward pass does. */
    @Test
    void laterWritesToTheCurrBufferDoNotBreakBackward() {
        assumeNativeKernels();
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(43);
            Tensor buffer = torch.randn(6, 2, 3, 8);                   // [nSrc, batch, seq, dModel]
            Tensor input = torch.randn(2, 3, 8);
            Tensor patch = torch.randn(4, 2, 3, 8);
            Tensor curr = buffer.narrow(0, 0, 4);                      // the first 4 sources
            Tensor refMask = torch.rand(2, 4).set_requires_grad(true);  // [head, nIn]
            Tensor natMask = refMask.detach().clone().set_requires_grad(true);
            MaskLayout layout = new MaskLayout(false, false, true);
            Tensor ref = TorchKernels.INSTANCE.edgePatch(input, new Tensor[] {refMask}, patch, curr, layout)[0];
            Tensor nat = NativeKernels.instance().edgePatch(input, new Tensor[] {natMask}, patch, curr, layout)[0];
            buffer.narrow(0, 4, 2).fill_(new Scalar(7.0));           // a later source's output
            ref.sum().backward();
            nat.sum().backward();
            assertClose("mask.grad", refMask.grad(), natMask.grad(), Tolerance.againstReference(torch.ScalarType.Float));
        }
    }

    /** Changing the rows of curr that were read, before backward, is an error, not a wrong mask gradient. */
    @Test
    void changingCurrBeforeBackwardIsReported() {
        assumeNativeKernels();
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(44);
            Tensor curr = torch.randn(4, 2, 3, 8);
            Tensor mask = torch.rand(2, 4).set_requires_grad(true);
            Tensor out = NativeKernels.instance().edgePatch(torch.randn(2, 3, 8), new Tensor[] {mask},
                    torch.randn(4, 2, 3, 8), curr, new MaskLayout(false, false, true))[0];
            curr.narrow(0, 1, 1).fill_(new Scalar(0.5));
            RuntimeException e = assertThrows(RuntimeException.class, () -> out.sum().backward());
            assertTrue(e.getMessage().contains("edge_patch: patch or curr was modified in place between the forward "
                    + "and the backward pass"), e.getMessage());
        }
    }

    /**
     * The float64 ground truth that {@link #compare} holds both implementations to is TorchKernels itself; here it is
     * held to the formula of {@link Kernels}, written out as plain loops in double precision, for every mask layout:
     * outputs, mask gradients, curr's and input's gradients.
     */
    @ParameterizedTest(name = "batch {0}, seq {1}, head {2}")
    @MethodSource("allLayouts")
    void float64TruthEqualsTheFormulaByHand(boolean withBatch, boolean withSeq, boolean withHead) {
        MaskLayout layout = new MaskLayout(withBatch, withSeq, withHead);
        int batch = 2, seq = 3, dModel = 5, nIn = 4, heads = 3, masks = 2;
        Problem p = new Problem(batch, seq, dModel, nIn, heads, masks, layout, torch.ScalarType.Double,
                torch.ScalarType.Double, 31);
        try (PointerScope scope = new PointerScope()) {
            Inputs in = new Inputs(p);
            Run run = KernelTestSupport.run(TorchKernels.INSTANCE, in, layout, torch.ScalarType.Double);
            double[] input = doubles(in.input), patch = doubles(in.patch), curr = doubles(in.curr);
            int h = withHead ? heads : 1;
            double[] currGrad = new double[curr.length], inputGrad = new double[input.length];
            for (int m = 0; m < masks; m++) {
                double[] mask = doubles(in.masks[m]), up = doubles(in.upstream[m]);
                double[] out = new double[batch * seq * h * dModel], maskGrad = new double[mask.length];
                for (int b = 0; b < batch; b++) {
                    for (int s = 0; s < seq; s++) {
                        for (int hh = 0; hh < h; hh++) {
                            int maskRow = (((withBatch ? b : 0) * (withSeq ? seq : 1) + (withSeq ? s : 0)) * h + hh) * nIn;
                            for (int d = 0; d < dModel; d++) {
                                int o = ((b * seq + s) * h + hh) * dModel + d;
                                double v = input[(b * seq + s) * dModel + d];
                                inputGrad[(b * seq + s) * dModel + d] += up[o];
                                for (int i = 0; i < nIn; i++) {
                                    int src = ((i * batch + b) * seq + s) * dModel + d;
                                    v += mask[maskRow + i] * (patch[src] - curr[src]);
                                    maskGrad[maskRow + i] += up[o] * (patch[src] - curr[src]);
                                    currGrad[src] -= up[o] * mask[maskRow + i];
                                }
                                out[o] = v;
                            }
                        }
                    }
                }
                assertArrayClose(out, doubles(run.outputs()[m]), "out[" + m + "] " + layout);
                assertArrayClose(maskGrad, doubles(run.maskGrads()[m]), "masks[" + m + "].grad " + layout);
            }
            assertArrayClose(currGrad, doubles(run.currGrad()), "curr.grad " + layout);
            assertArrayClose(inputGrad, doubles(run.inputGrad()), "input.grad " + layout);
        }
    }

    static Stream<Arguments> allLayouts() {
        List<Arguments> out = new ArrayList<>();
        for (boolean b : new boolean[] {false, true}) {
            for (boolean s : new boolean[] {false, true}) {
                for (boolean h : new boolean[] {false, true}) out.add(Arguments.of(b, s, h));
            }
        }
        return out.stream();
    }

    private static double[] doubles(Tensor t) {
        Tensor c = t.to(torch.ScalarType.Double).contiguous();
        double[] out = new double[(int) c.numel()];
        c.data_ptr_double().get(out);
        return out;
    }

    private static void assertArrayClose(double[] expected, double[] actual, String what) {
        assertEquals(expected.length, actual.length, what + " size");
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-10 * (1 + Math.abs(expected[i])), what + " at " + i);
        }
    }

    /**
     * Native against TorchKernels twice: against TorchKernels in float64 on the same values (the ground truth,
     * tight tolerance) and against TorchKernels in the problem's own dtype (what a caller switching
     * implementations sees).
     */
    static void compare(Problem p) {
        compare(p, null);
    }

    /** {@link #compare(Problem)} with the masks' values given (null: random in [0, 1)). */
    static void compare(Problem p, float[][] maskValues) {
        try (PointerScope scope = new PointerScope()) {
            Inputs in = new Inputs(p);
            if (maskValues != null) {
                for (int m = 0; m < p.masks(); m++) {
                    in.masks[m] = Tensor.create(maskValues[m], p.maskShape()).to(p.maskDtype());
                }
            }
            Run truth = KernelTestSupport.run(TorchKernels.INSTANCE, in, p.layout(), torch.ScalarType.Double);
            Run ref = KernelTestSupport.run(TorchKernels.INSTANCE, in, p.layout());
            Run nat = KernelTestSupport.run(NativeKernels.instance(), in, p.layout());
            for (int m = 0; m < p.masks(); m++) {
                assertEquals(p.dtype(), nat.outputs()[m].scalar_type().intern(), "out[" + m + "] dtype");
                assertTrue(nat.outputs()[m].is_contiguous(), "out[" + m + "] contiguous");
                assertEquals(p.maskDtype(), nat.maskGrads()[m].scalar_type().intern(), "masks[" + m + "].grad dtype");
            }
            // With bfloat16 activations the mask gradients are bfloat16-accurate even for float32 masks: both
            // implementations keep patch - curr in the activations' dtype.
            torch.ScalarType maskAccuracy = p.dtype() == torch.ScalarType.BFloat16 ? p.dtype() : p.maskDtype();
            check(p, truth, nat, Tolerance.againstTruth(p.dtype()), Tolerance.againstTruth(maskAccuracy), "float64 truth");
            check(p, ref, nat, Tolerance.againstReference(p.dtype()), Tolerance.againstReference(maskAccuracy),
                    "reference " + p.dtype());
        }
    }

    private static void check(Problem p, Run expected, Run actual, Tolerance tol, Tolerance maskTol, String against) {
        String at = p + " vs " + against + ": ";
        for (int m = 0; m < p.masks(); m++) {
            assertClose(at + "out[" + m + "]", expected.outputs()[m], actual.outputs()[m], tol);
            assertClose(at + "masks[" + m + "].grad", expected.maskGrads()[m], actual.maskGrads()[m], maskTol);
        }
        assertClose(at + "curr.grad", expected.currGrad(), actual.currGrad(), tol);
        assertClose(at + "input.grad", expected.inputGrad(), actual.inputGrad(), tol);
    }
}
