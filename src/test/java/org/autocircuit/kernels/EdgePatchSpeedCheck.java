package org.autocircuit.kernels;

import static org.autocircuit.kernels.KernelTestSupport.assumeNativeKernels;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * A rough speed check of the K1 workload (README's performance table: the masked-difference step alone at GPT-2-small
 * shapes), reference against native, in one process so that the ratio is what counts on a shared machine. Not
 * a timed unit test and not a benchmark (those live in benchmarks/, with JMH): it prints medians and ratios.
 *
 * <pre>
 *   mvn -o test-compile exec:java -Dexec.classpathScope=test \
 *       -Dexec.mainClass=org.autocircuit.kernels.EdgePatchSpeedCheck [-Dexec.args="256 800 4096"]
 * </pre>
 *
 * or as the {@code slow}-tagged test below. Each case is checked against the reference before it is timed.
 */
class EdgePatchSpeedCheck {

    private static final int WARMUP = 2;
    private static final int RUNS = 7;

    record Shape(String name, long nIn, long heads, int masks, MaskLayout layout) {}

    static final List<Shape> SHAPES = List.of(
            new Shape("Q/K/V of layer 11 (nIn 144, 3 x 12 heads)", 144, 12, 3, new MaskLayout(false, false, true)),
            new Shape("MLP in of layer 11 (nIn 156, 1 mask)", 156, 1, 1, new MaskLayout(false, false, false)),
            new Shape("Resid End (nIn 157, 1 mask)", 157, 1, 1, new MaskLayout(false, false, false)),
            new Shape("Q/K/V of layer 5 (nIn 66, 3 x 12 heads)", 66, 12, 3, new MaskLayout(false, false, true)));

    @Test
    @Tag("slow")
    void printSpeedRatios() {
        assumeNativeKernels();
        report(new long[] {256});
    }

    public static void main(String[] args) {
        long[] tokens = args.length == 0 ? new long[] {256, 800} : Arrays.stream(args).mapToLong(Long::parseLong).toArray();
        if (!KernelAvailability.isAvailable()) {
            System.out.println("native kernels unavailable: " + KernelAvailability.unavailabilityCause());
            return;
        }
        report(tokens);
    }

    static void report(long[] tokenCounts) {
        System.out.printf("edge_patch speed check: %s, %d threads, %s%n", KernelAvailability.describe(),
                torch.get_num_threads(), System.getProperty("os.arch"));
        System.out.printf("%-44s %-5s %6s | %-22s | %-22s | %-22s%n", "shape (D 768)", "dtype", "B*S",
                "forward, no grad (ms)", "forward, mask grads", "forward + backward");
        for (long tokens : tokenCounts) {
            for (Shape s : SHAPES) {
                for (torch.ScalarType dtype : new torch.ScalarType[] {torch.ScalarType.Float, torch.ScalarType.BFloat16}) {
                    System.out.println(line(s, dtype, tokens));
                }
            }
        }
    }

    private static String line(Shape s, torch.ScalarType dtype, long tokens) {
        long batch = 16, seq = tokens / batch, d = 768;
        try (PointerScope scope = new PointerScope()) {
            torch.manual_seed(5);
            Tensor input = torch.randn(batch, seq, d).to(dtype);
            Tensor patch = torch.randn(s.nIn(), batch, seq, d).to(dtype);
            Tensor curr = torch.randn(s.nIn(), batch, seq, d).to(dtype);
            Tensor[] masks = new Tensor[s.masks()];
            for (int m = 0; m < masks.length; m++) {
                masks[m] = (s.layout().head() ? torch.rand(s.heads(), s.nIn()) : torch.rand(s.nIn())).to(dtype);
            }
            Kernels ref = TorchKernels.INSTANCE, nat = NativeKernels.instance();
            check(ref, nat, input, masks, patch, curr, s.layout(), dtype);
            double[] r = {
                time(() -> forwardNoGrad(ref, input, masks, patch, curr, s.layout())),
                time(() -> forwardMaskGrads(ref, input, masks, patch, curr, s.layout(), false)),
                time(() -> forwardMaskGrads(ref, input, masks, patch, curr, s.layout(), true)),
            };
            double[] n = {
                time(() -> forwardNoGrad(nat, input, masks, patch, curr, s.layout())),
                time(() -> forwardMaskGrads(nat, input, masks, patch, curr, s.layout(), false)),
                time(() -> forwardMaskGrads(nat, input, masks, patch, curr, s.layout(), true)),
            };
            StringBuilder b = new StringBuilder(String.format("%-44s %-5s %6d", s.name(),
                    dtype == torch.ScalarType.Float ? "fp32" : "bf16", tokens));
            for (int k = 0; k < 3; k++) b.append(String.format(" | %7.1f -> %6.1f x%4.1f", r[k], n[k], r[k] / n[k]));
            return b.toString();
        }
    }

    private static void forwardNoGrad(Kernels k, Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout l) {
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            k.edgePatch(input, masks, patch, curr, l);
        }
    }

    /** Masks (and curr, input) require grad, as in EAP / mask-gradient scoring; optionally run backward too. */
    private static void forwardMaskGrads(Kernels k, Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout l,
                                         boolean backward) {
        try (PointerScope scope = new PointerScope()) {
            Tensor[] leaves = new Tensor[masks.length];
            for (int m = 0; m < masks.length; m++) leaves[m] = masks[m].detach().set_requires_grad(true);
            Tensor c = curr.detach().set_requires_grad(true);
            Tensor in = input.detach().set_requires_grad(true);
            Tensor[] out = k.edgePatch(in, leaves, patch, c, l);
            if (backward) {
                Tensor loss = null;
                for (Tensor o : out) loss = loss == null ? o.sum() : loss.add(o.sum());
                loss.backward();
            }
        }
    }

    private static void check(Kernels ref, Kernels nat, Tensor input, Tensor[] masks, Tensor patch, Tensor curr,
                              MaskLayout l, torch.ScalarType dtype) {
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor[] a = ref.edgePatch(input, masks, patch, curr, l);
            Tensor[] b = nat.edgePatch(input, masks, patch, curr, l);
            KernelTestSupport.Tolerance tol = KernelTestSupport.Tolerance.againstReference(dtype);
            for (int m = 0; m < a.length; m++) KernelTestSupport.assertClose("speed-check out[" + m + "]", a[m], b[m], tol);
        }
    }

    private static double time(Runnable r) {
        for (int k = 0; k < WARMUP; k++) r.run();
        List<Double> ms = new ArrayList<>();
        for (int k = 0; k < RUNS; k++) {
            long t0 = System.nanoTime();
            r.run();
            ms.add((System.nanoTime() - t0) / 1e6);
        }
        ms.sort(null);
        return ms.get(ms.size() / 2);
    }
}
