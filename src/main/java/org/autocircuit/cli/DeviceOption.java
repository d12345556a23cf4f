package org.autocircuit.cli;

import org.autocircuit.distributed.DistributedEnvironment;
import org.autocircuit.kernels.Device;
import picocli.CommandLine.Option;

/**
 * {@code --device cpu|cuda|cuda:N}, shared by the commands that run a model. Checked before any heavy work: a
 * misspelt value, a CUDA device without libtorch's CUDA build, or a device index that does not exist is bad input
 * (exit code 2) with a message naming what is missing.
 */
final class DeviceOption {

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "DEVICE",
        description = "Where the model runs: cpu, cuda or cuda:N (default: ${DEFAULT-VALUE}). Under `launch`, cuda "
            + "means cuda:LOCAL_RANK. `autocircuit doctor` lists the devices.")
    String device = "cpu";

    @Option(names = "--dtype", defaultValue = "float32", paramLabel = "DTYPE",
        description = "The model's weights and activations: float32, bfloat16 or float16 (default: ${DEFAULT-VALUE}). "
            + "Masks and the edge-patching sums stay float32.")
    String dtype = "float32";

    /** The parsed model dtype (exit code 2 for another value). */
    org.bytedeco.pytorch.global.torch.ScalarType dtype() {
        try {
            return org.autocircuit.model.HookedTransformer.parseDtype(dtype);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--dtype: " + e.getMessage(), e);
        }
    }

    /**
     * The parsed, available device; in a process started by {@code autocircuit launch} (or torchrun / Slurm),
     * {@code cuda} without an index is the GPU of the process's local rank.
     *
     * @throws IllegalArgumentException for a bad value or an unavailable device (exit code 2)
     */
    Device resolve() {
        Device d = Device.parse(device);
        if (d.isCuda()) d = d.forLocalRank(DistributedEnvironment.fromEnvironment().localRank());
        try {
            d.ensureAvailable();
        } catch (IllegalStateException e) {
            throw new IllegalArgumentException("--device " + device + ": " + e.getMessage(), e);
        }
        return d;
    }
}
