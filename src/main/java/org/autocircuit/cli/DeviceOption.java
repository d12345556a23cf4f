package org.autocircuit.cli;

import org.autocircuit.kernels.Device;
import picocli.CommandLine.Option;

/**
 * {@code --device cpu|cuda|cuda:N}, shared by the commands that run a model. Checked before any heavy work: a
 * misspelt value, a CUDA device without libtorch's CUDA build, or a device index that does not exist is bad input
 * (exit code 2) with a message naming what is missing.
 */
final class DeviceOption {

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEVICE",
        description = "Where the model runs: cpu, cuda or cuda:N (default: ${DEFAULT-VALUE}). "
            + "`autocircuit doctor` lists the devices.")
    String device = "cpu";

    /**
     * The parsed, available device.
     *
     * @throws IllegalArgumentException for a bad value or an unavailable device (exit code 2)
     * @throws UnsupportedOperationException for an available CUDA device: the model does not run there yet
     */
    Device resolve() {
        Device d = Device.parse(device);
        try {
            d.ensureAvailable();
        } catch (IllegalStateException e) {
            throw new IllegalArgumentException("--device " + device + ": " + e.getMessage(), e);
        }
        if (d.isCuda()) {
            // The kernels run on CUDA, but the model and patching code still create their tensors on the CPU: running
            // on the CPU while the user asked for a GPU would be a silent lie (docs/native.md, "What remains").
            throw new UnsupportedOperationException("--device " + device + ": the model and patching code do not run "
                + "on CUDA yet (only the kernels do); use --device cpu");
        }
        return d;
    }
}
