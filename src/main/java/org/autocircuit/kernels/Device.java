package org.autocircuit.kernels;

import java.util.Locale;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * Where tensors live and kernels run: {@code cpu}, {@code cuda} (the current CUDA device) or {@code cuda:N}. A
 * plain value: {@link #parse} checks the spelling only; {@link #ensureAvailable()} checks that this process can
 * use it (a libtorch CUDA build, a device with that index) and otherwise throws an exception that says what is
 * missing and how to get it.
 *
 * <p>Today the model and patching code create every tensor on the CPU; {@code Device} is the value they will
 * carry (docs/native.md, "GPU": what remains to plumb). The kernels already check that the tensors they are
 * handed are on the device they were made for ({@link Kernels#forDevice}).
 *
 * @param type  the kind of device
 * @param index the CUDA device index, or -1 for "the current CUDA device" and for the CPU
 */
public record Device(Type type, int index) {

    /** The kinds of device. */
    public enum Type { CPU, CUDA }

    /** The CPU. */
    public static final Device CPU = new Device(Type.CPU, -1);

    /** The current CUDA device. */
    public static final Device CUDA = new Device(Type.CUDA, -1);

    public Device {
        if (type == null) throw new IllegalArgumentException("device type must not be null");
        if (type == Type.CPU && index != -1) throw new IllegalArgumentException("the cpu device has no index, got " + index);
        if (index < -1) throw new IllegalArgumentException("a CUDA device index must be >= 0, got " + index);
    }

    /** The CUDA device with this index ({@code cuda:N}). */
    public static Device cuda(int index) {
        if (index < 0) throw new IllegalArgumentException("a CUDA device index must be >= 0, got " + index);
        return new Device(Type.CUDA, index);
    }

    /**
     * Parses {@code cpu}, {@code cuda} or {@code cuda:N} (any case, surrounding blanks ignored).
     *
     * @throws IllegalArgumentException naming the value and the valid forms
     */
    public static Device parse(String value) {
        if (value == null) throw new IllegalArgumentException("device must be cpu, cuda or cuda:N, got null");
        String v = value.trim().toLowerCase(Locale.ROOT);
        if (v.equals("cpu")) return CPU;
        if (v.equals("cuda")) return CUDA;
        if (v.startsWith("cuda:")) {
            String n = v.substring(5);
            if (!n.isEmpty() && n.length() <= 4 && n.chars().allMatch(Character::isDigit)) return cuda(Integer.parseInt(n));
        }
        throw new IllegalArgumentException("device must be cpu, cuda or cuda:N (N a device index), got '" + value + "'");
    }

    /**
     * The device one rank of a data-parallel launch uses: {@code cuda} without an index becomes {@code cuda:localRank}
     * (one GPU per process on each machine, as NCCL wants); every other device is kept.
     */
    public Device forLocalRank(int localRank) {
        if (localRank < 0) throw new IllegalArgumentException("local rank must be >= 0, got " + localRank);
        return type == Type.CUDA && index < 0 ? cuda(localRank) : this;
    }

    /** The device a tensor lives on ({@code cpu}, {@code cuda:N}, or for other kinds an exception naming it). */
    public static Device of(Tensor t) {
        if (t.is_cpu()) return CPU;
        if (t.is_cuda()) return cuda(cudaIndex(t));
        throw new IllegalArgumentException("tensor is on " + torchName(t) + ", which is neither cpu nor cuda");
    }

    private static int cudaIndex(Tensor t) {
        try (PointerScope scope = new PointerScope()) {
            return t.device().index();
        }
    }

    /** libtorch's name of a tensor's device, e.g. {@code cpu}, {@code cuda:0}, {@code meta}: for error messages. */
    public static String torchName(Tensor t) {
        if (t.is_cpu()) return "cpu";
        try (PointerScope scope = new PointerScope()) {
            return t.device().str().getString();
        }
    }

    /** Whether a tensor is on this device ({@code cuda} without an index accepts any CUDA device). */
    public boolean holds(Tensor t) {
        if (type == Type.CPU) return t.is_cpu();
        return t.is_cuda() && (index < 0 || cudaIndex(t) == index);
    }

    /** libtorch's device ({@code cpu}, {@code cuda} (the current CUDA device) or {@code cuda:N}); the caller owns it. */
    public org.bytedeco.pytorch.Device toTorch() {
        return new org.bytedeco.pytorch.Device(toString());
    }

    /**
     * Options for a new tensor of {@code dtype} on this device (in the caller's scope): what code that makes tensors
     * for a model uses, so that they land beside its weights.
     */
    public org.bytedeco.pytorch.TensorOptions options(org.bytedeco.pytorch.global.torch.ScalarType dtype) {
        org.bytedeco.pytorch.TensorOptions o = new org.bytedeco.pytorch.TensorOptions(dtype);
        return type == Type.CPU ? o : o.device(new org.bytedeco.pytorch.DeviceOptional(toTorch()));
    }

    /** {@code t} itself when it is on this device, else a copy there (of the same dtype); null stays null. */
    public Tensor place(Tensor t) {
        if (t == null || holds(t)) return t;
        try (org.bytedeco.pytorch.Device target = toTorch()) {
            return t.to(target, t.scalar_type());
        }
    }

    /** Whether this is a CUDA device. */
    public boolean isCuda() {
        return type == Type.CUDA;
    }

    /**
     * Throws when this process cannot use the device: for CUDA, when libtorch is the CPU build or no device with
     * the index exists. The CPU is always available.
     *
     * @throws IllegalStateException saying what is missing (the CUDA build, a device) and how to provide it
     */
    public void ensureAvailable() {
        if (type == Type.CPU) return;
        CudaSupport.Status status = CudaSupport.status();
        checkAvailable(status.gpuJarOnClasspath(), status.libtorchCudaBuild(), status.torchDeviceCount(), status.detail());
    }

    /**
     * The availability rule of {@link #ensureAvailable()} on given facts (for tests).
     *
     * @param gpuJar      whether the pytorch -gpu jar is on the classpath
     * @param cudaBuild   whether libtorch's CUDA build is loaded
     * @param deviceCount the CUDA devices libtorch sees
     * @param detail      appended to the message (what was found), or null
     */
    void checkAvailable(boolean gpuJar, boolean cudaBuild, int deviceCount, String detail) {
        if (type == Type.CPU) return;
        String suffix = detail == null || detail.isEmpty() ? "" : " (" + detail + ")";
        if (gpuJar && !cudaBuild) {
            throw new IllegalStateException("device " + this + ": libtorch's CUDA build is on the classpath but not loaded"
                    + suffix + "; `autocircuit doctor` lists what is missing");
        }
        if (!cudaBuild) {
            throw new IllegalStateException("device " + this + ": this libtorch is the CPU build (the pytorch "
                    + "linux-x86_64 jar), which has no CUDA; build with `mvn -Pgpu package` to get libtorch's CUDA build, "
                    + "then check with `autocircuit doctor`" + suffix);
        }
        if (deviceCount <= 0) {
            throw new IllegalStateException("device " + this + ": libtorch's CUDA build is loaded but sees no CUDA device "
                    + "(no NVIDIA GPU, no driver, or CUDA_VISIBLE_DEVICES hides them); `autocircuit doctor` says more"
                    + suffix);
        }
        if (index >= deviceCount) {
            throw new IllegalStateException("device " + this + " does not exist: " + deviceCount + " CUDA device"
                    + (deviceCount == 1 ? " (cuda:0)" : "s (cuda:0 to cuda:" + (deviceCount - 1) + ")") + suffix);
        }
    }

    @Override
    public String toString() {
        return type == Type.CPU ? "cpu" : index < 0 ? "cuda" : "cuda:" + index;
    }
}
