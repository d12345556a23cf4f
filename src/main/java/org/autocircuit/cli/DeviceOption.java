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
