package org.autocircuit.kernels;

import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * {@link Kernels} bound to one {@link Device} ({@link Kernels#forDevice}): every tensor handed in must live on
 * that device and have a dtype the kernels have on it, else an {@link IllegalArgumentException} names the op, the
 * argument, its device (or dtype) and the kernels' device, before any work. A CUDA tensor given to the CPU kernels,
 * or the reverse, is a caller's mistake that would otherwise surface as a libtorch error deep inside a pass.
 */
final class DeviceKernels implements Kernels {
    private final Kernels delegate;
    private final Device device;

    DeviceKernels(Kernels delegate, Device device) {
        this.delegate = delegate;
        this.device = device;
    }

    /** The device these kernels run on. */
    Device device() {
        return device;
    }

    @Override
    public Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout) {
        check(input, masks, patch, curr);
        return delegate.edgePatch(input, masks, patch, curr, layout);
    }

    @Override
    public Tensor[] edgePatch(Tensor input, Tensor[] masks, Tensor patch, Tensor curr, MaskLayout layout,
                              RunningDeltaSum running) {
        check(input, masks, patch, curr);
        if (running != null) checkTensor("running.sum", running.sum(), false);
        return delegate.edgePatch(input, masks, patch, curr, layout, running);
    }

    private void check(Tensor input, Tensor[] masks, Tensor patch, Tensor curr) {
        checkTensor("input", input, true);
        checkTensor("patch", patch, true);
        checkTensor("curr", curr, true);
        if (masks != null) {
            for (int m = 0; m < masks.length; m++) checkTensor("masks[" + m + "]", masks[m], false);
        }
    }

    private void checkTensor(String name, Tensor t, boolean activation) {
        if (t == null) return;  // the delegate names null arguments
        if (!device.holds(t)) {
            throw new IllegalArgumentException("edgePatch: " + name + " is on " + Device.torchName(t) + " but these kernels ("
                    + delegate.name() + ") run on " + device + "; move it with .to(...) or use Kernels.forDevice("
                    + Device.torchName(t) + ")");
        }
        torch.ScalarType dtype = t.scalar_type().intern();
        if (!supported(dtype, activation)) {
            throw new IllegalArgumentException("edgePatch: " + name + " has dtype " + dtype + ", which the kernels on "
                    + device + " lack (they take " + supportedList(activation) + ")");
        }
    }

    /** Activations: float32, bfloat16, float16 and (the CPU reference only) float64; masks: any floating type. */
    private boolean supported(torch.ScalarType dtype, boolean activation) {
        boolean floating = dtype == torch.ScalarType.Float || dtype == torch.ScalarType.BFloat16
                || dtype == torch.ScalarType.Half || dtype == torch.ScalarType.Double;
        if (!activation) return floating;
        return floating && !(device.isCuda() && dtype == torch.ScalarType.Double);
    }

    private String supportedList(boolean activation) {
        if (!activation || !device.isCuda()) return "float32, bfloat16, float16 or float64";
        return "float32, bfloat16 or float16";
    }

    @Override
    public String name() {
        return delegate.name() + "@" + device;
    }
}
