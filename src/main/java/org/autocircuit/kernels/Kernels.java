package org.autocircuit.kernels;

import org.bytedeco.pytorch.Tensor;

/**
 * The performance-critical step of edge patching: the masked sum of source differences that every
 * destination adds to its input.
 *
 * <pre>
 *   out_m[b, s, (h), :] = input[b, s, :] + Σ_i mask_m[(b), (s), (h), i] · (patch[i, b, s, :] − curr[i, b, s, :])
 * </pre>
 *
 * Mask value 0 keeps edge i as it is in the current pass; 1 replaces its contribution by the patch
 * (ablation) value; values in between interpolate (mask gradients, integrated gradients).
 *
 * <p>Several destination modules that read the same sources (Q, K and V of one block) are passed
 * together, so an implementation can read each source difference once for all of them.
 * Implementations must be differentiable with respect to {@code masks}, {@code curr} and {@code input}.
 * {@link TorchKernels} is the plain-libtorch reference that always works; native implementations are
 * tested against it.
 */
public interface Kernels {

    /**
     * @param input  {@code [batch, seq, dModel]} the unpatched input of the destinations (the residual stream)
     * @param masks  one mask per destination module, each {@code [batch?][seq?][head?][nIn]} as {@code layout}
     *               says, already passed through the mask function
     * @param patch  {@code [nIn, batch, seq, dModel]} the ablation values of the incoming sources
     * @param curr   {@code [nIn, batch, seq, dModel]} the sources' outputs in the current forward pass
     * @param layout the mask layout shared by all {@code masks}
     * @return one patched input per mask: {@code [batch, seq, head, dModel]} when {@code layout.head()},
     *         else {@code [batch, seq, dModel]}; owned by the caller's current scope
     */
    Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout);

    /**
     * {@link #edgePatch(Tensor, Tensor[], Tensor, Tensor, MaskLayout)} within a pass that carries a running sum of
     * the source differences (see {@link RunningDeltaSum}); the result is the same. Implementations that cannot use
     * the sum ignore it, as this default does.
     *
     * @param running the pass's running sum, or null
     */
    default Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout,
                               RunningDeltaSum running) {
        return edgePatch(input, masks, patch, curr, layout);
    }

    /** A short name for logs and benchmark tables ({@code "torch"}, {@code "native-cpu"}, ...). */
    String name();

    /**
     * The implementation chosen by {@code -Dautocircuit.kernels=auto|native|reference} (default auto: the native
     * kernels when their library is available, else the reference); see {@link KernelSelection}.
     *
     * @throws UnsatisfiedLinkError when {@code native} is forced and the native kernels are unavailable
     */
    static Kernels best() {
        return KernelSelection.best();
    }

    /**
     * The kernels for one device, which refuse tensors on any other device (an {@link IllegalArgumentException}
     * naming the op, the argument and both devices): on the CPU, {@link #best()}; on CUDA, the native kernels
     * when their library was built with CUDA, else the reference (libtorch's own CUDA ops).
     *
     * @throws IllegalStateException when the device is unavailable ({@link Device#ensureAvailable()}: no libtorch
     *                               CUDA build, no such device)
     */
    static Kernels forDevice(Device device) {
        if (device == null) throw new IllegalArgumentException("device must not be null");
        device.ensureAvailable();
        Kernels k = best();
        if (device.isCuda() && k instanceof NativeKernels n && !n.cudaCompiled()) k = reference();
        return new DeviceKernels(k, device);
    }

    /** The plain-libtorch reference implementation. */
    static Kernels reference() {
        return TorchKernels.INSTANCE;
    }
}
