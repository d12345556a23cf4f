package org.autocircuit.kernels;

import java.util.Arrays;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@link Kernels} over the fused native kernels ({@code src/main/cpp}, {@code src/main/cuda}): one pass reads
 * each source difference {@code patch[i] − curr[i]} once and writes the patched inputs of all destination
 * modules together, as a libtorch autograd function (gradients for input, every mask and curr; none for patch).
 *
 * <p>Arguments are validated here, in Java, before crossing into C++ (zstd-jni's rule): a caller's mistake is an
 * {@link IllegalArgumentException} naming the argument and the value expected. Supported: input, patch and curr
 * of one dtype, float32 or bfloat16 (bfloat16 accumulates in float32), contiguous, on the CPU, or on CUDA when
 * the library was built with CUDA (there float16 too); masks of any floating dtype and strides. Valid calls outside
 * that (float64, float16 on the CPU, another device) go to {@link TorchKernels} unchanged. A failure inside the library arrives as an
 * {@link AutoCircuitNativeException} naming the op.
 *
 * <p>Memory and in-place writes: no copy of {@code patch − curr} is kept for the mask gradients (the reference
 * keeps one, {@code [nIn, batch, seq, dModel]} per call); backward recomputes it from {@code patch} and
 * {@code curr}, so those must keep their values until backward. Writes to other rows of the buffer {@code curr}
 * is a view of (the later sources' outputs) are fine, unlike with autograd's version check; a change to the rows
 * that were read is detected by a checksum and makes backward throw instead of returning wrong mask gradients.
 * Backward runs inside libtorch's autograd engine, so that error reaches Java as the {@link RuntimeException}
 * of whatever called {@code backward()}.
 */
public final class NativeKernels implements Kernels {
    static final String OP_EDGE_PATCH = "edge_patch";

    private static final Logger LOG = LoggerFactory.getLogger(NativeKernels.class);
    private static volatile NativeKernels instance;

    private final Kernels delegate = Kernels.reference();
    private final boolean cuda;
    private final String name;

    private NativeKernels() {
        KernelAvailability.ensureAvailability();
        this.cuda = NativeKernelsLib.cudaCompiled();
        this.name = cuda ? "native-cuda" : "native-cpu";
    }

    /**
     * The native kernels.
     *
     * @throws UnsatisfiedLinkError when they are unavailable ({@link KernelAvailability#unavailabilityCause()})
     */
    public static NativeKernels instance() {
        NativeKernels k = instance;
        if (k == null) {
            synchronized (NativeKernels.class) {
                k = instance;
                if (k == null) instance = k = new NativeKernels();
            }
        }
        return k;
    }

    @Override
    public Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout) {
        return edgePatch(input, masks, patch, curr, layout, null);
    }

    @Override
    public Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout,
                              RunningDeltaSum running) {
        String unsupported = validate(input, masks, patch, curr, layout);
        if (unsupported == null && input.is_cuda() && !cuda) unsupported = "CUDA tensors (library built without CUDA)";
        if (unsupported != null) {
            LOG.debug("edge_patch: {} go to the reference kernels", unsupported);
            return delegate.edgePatch(input, masks, patch, curr, layout);
        }
        if (running != null) validateRunning(input, running);
        return callNative(input, masks, patch, curr, layout, running);
    }

    /** The running sum must match the input: {@code [batch, seq, dModel]} float32 on its device, rows ≥ 0. */
    static void validateRunning(Tensor input, RunningDeltaSum running) {
        Tensor sum = running.sum();
        if (sum.scalar_type().intern() != torch.ScalarType.Float || !Arrays.equals(shape(sum), shape(input))
                || !sum.is_contiguous() || !device(sum).equals(device(input))) {
            throw invalid("running.sum must be a contiguous float32 " + shapeString(input) + " on " + device(input)
                    + ", got " + sum.scalar_type().intern() + " " + shapeString(sum) + " on " + device(sum));
        }
        if (running.rows() < 0) throw invalid("running.rows must be >= 0, got " + running.rows());
    }

    @Override
    public String name() {
        return name;
    }

    /** Whether the library contains the CUDA kernels (and so takes CUDA tensors). */
    public boolean cudaCompiled() {
        return cuda;
    }

    /**
     * Crosses into C++ without validation (tests call it to see C++ failures arrive wrapped). The results are
     * handed to the caller's innermost {@link PointerScope}, like those of any libtorch op.
     */
    static Tensor[] callNative(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout) {
        return callNative(input, masks, patch, curr, layout, null);
    }

    static Tensor[] callNative(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout,
                               RunningDeltaSum running) {
        PointerScope callerScope = PointerScope.getInnerScope();
        Tensor[] result = new Tensor[masks.length];
        try (PointerScope scope = new PointerScope()) {
            TensorVector out;
            try {
                Tensor sum = running != null ? running.sum() : new Tensor();       // undefined: no running sum
                Tensor rows = running != null ? running.rowsTensor() : new Tensor();
                out = NativeKernelsLib.edgePatch(input, new TensorVector(masks), patch, curr, sum, rows,
                        layout.batch(), layout.seq(), layout.head());
            } catch (RuntimeException e) {
                throw new AutoCircuitNativeException(OP_EDGE_PATCH, e);
            }
            if (out.size() != masks.length) {
                throw new AutoCircuitNativeException(OP_EDGE_PATCH,
                        new IllegalStateException("returned " + out.size() + " outputs for " + masks.length + " masks"));
            }
            for (int m = 0; m < masks.length; m++) {
                Tensor t = new Tensor(out.get(m));  // a new at::Tensor sharing the output's storage
                if (callerScope != null) {
                    callerScope.attach(t);
                } else {
                    t.retainReference();           // outlives this scope; freed when collected
                }
                result[m] = t;
            }
        }
        return result;
    }

    /**
     * Checks the arguments of {@link #edgePatch}.
     *
     * @return null when the native kernels support the call, else what they do not support (the call then
     *         goes to the reference)
     * @throws IllegalArgumentException naming the argument, when the call is invalid for any implementation
     */
    static String validate(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout) {
        if (input == null) throw invalid("input must not be null");
        if (patch == null) throw invalid("patch must not be null");
        if (curr == null) throw invalid("curr must not be null");
        if (layout == null) throw invalid("layout must not be null");
        if (masks == null || masks.length == 0) throw invalid("masks must hold at least one mask");

        if (input.dim() != 3) throw invalid("input must be [batch, seq, dModel], got shape " + shapeString(input));
        long batch = input.size(0), seq = input.size(1), dModel = input.size(2);
        if (patch.dim() != 4 || patch.size(1) != batch || patch.size(2) != seq || patch.size(3) != dModel) {
            throw invalid("patch must be [nIn, " + batch + ", " + seq + ", " + dModel + "] to match input, got shape "
                    + shapeString(patch));
        }
        long nIn = patch.size(0);
        if (!Arrays.equals(shape(curr), shape(patch))) {
            throw invalid("curr must have the shape of patch " + shapeString(patch) + ", got " + shapeString(curr));
        }

        torch.ScalarType dtype = input.scalar_type().intern();
        if (!input.is_floating_point()) {
            throw invalid("input must be a floating-point tensor (float32 or bfloat16), got " + dtype);
        }
        if (patch.scalar_type().intern() != dtype) {
            throw invalid("patch must have dtype " + dtype + " like input, got " + patch.scalar_type().intern());
        }
        if (curr.scalar_type().intern() != dtype) {
            throw invalid("curr must have dtype " + dtype + " like input, got " + curr.scalar_type().intern());
        }

        String device = device(input);
        if (!device(patch).equals(device)) throw invalid("patch must be on " + device + " like input, got " + device(patch));
        if (!device(curr).equals(device)) throw invalid("curr must be on " + device + " like input, got " + device(curr));

        if (!input.is_contiguous()) throw invalid("input must be contiguous (call .contiguous())");
        if (!patch.is_contiguous()) throw invalid("patch must be contiguous (call .contiguous())");
        if (!curr.is_contiguous()) throw invalid("curr must be contiguous (call .contiguous())");

        for (int m = 0; m < masks.length; m++) {
            Tensor mask = masks[m];
            if (mask == null) throw invalid("masks[" + m + "] must not be null");
            if (!mask.is_floating_point()) {
                throw invalid("masks[" + m + "] must be a floating-point tensor, got " + mask.scalar_type().intern());
            }
            if (!device(mask).equals(device)) {
                throw invalid("masks[" + m + "] must be on " + device + " like input, got " + device(mask));
            }
            boolean ok = mask.dim() == layout.maskRank() && mask.size(-1) == nIn;
            int dim = 0;
            if (ok && layout.batch()) ok = mask.size(dim++) == batch;
            if (ok && layout.seq()) ok = mask.size(dim) == seq;
            if (!ok) {
                String expected = (layout.batch() ? "[" + batch + "]" : "") + (layout.seq() ? "[" + seq + "]" : "")
                        + (layout.head() ? "[heads]" : "") + "[" + nIn + "]";
                throw invalid("masks[" + m + "] must be " + expected + " for " + layout + ", got shape "
                        + shapeString(mask));
            }
        }

        if (!input.is_cpu() && !input.is_cuda()) return "device " + device;
        boolean half = dtype == torch.ScalarType.Half && input.is_cuda();  // float16: the CUDA kernels only
        if (dtype != torch.ScalarType.Float && dtype != torch.ScalarType.BFloat16 && !half) return "dtype " + dtype;
        return null;
    }

    private static IllegalArgumentException invalid(String message) {
        return new IllegalArgumentException("edgePatch: " + message);
    }

    private static long[] shape(Tensor t) {
        long[] s = new long[(int) t.dim()];
        for (int k = 0; k < s.length; k++) s[k] = t.size(k);
        return s;
    }

    private static String shapeString(Tensor t) {
        return Arrays.toString(shape(t));
    }

    private static String device(Tensor t) {
        if (t.is_cpu()) return "cpu";
        try (PointerScope scope = new PointerScope()) {
            return t.device().str().getString();
        }
    }
}
