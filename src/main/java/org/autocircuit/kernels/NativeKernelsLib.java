package org.autocircuit.kernels;

import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.annotation.ByRef;
import org.bytedeco.javacpp.annotation.ByVal;
import org.bytedeco.javacpp.annotation.Cast;
import org.bytedeco.javacpp.annotation.Const;
import org.bytedeco.javacpp.annotation.Name;
import org.bytedeco.javacpp.annotation.Namespace;
import org.bytedeco.javacpp.annotation.Platform;
import org.bytedeco.javacpp.annotation.StdString;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The JavaCPP binding of {@code src/main/cpp/autocircuit/kernels.h}: the only class that crosses into the
 * native kernels library ({@code libjniNativeKernelsLib.so}, built by {@code src/main/cpp/build-native.sh}).
 *
 * <p>Standalone on purpose: it does not inherit the {@code torch} preset (which would make the JavaCPP
 * builder recompile the whole preset); it names libtorch's {@code at::Tensor} and
 * {@code std::vector<torch::Tensor>} through the preset's {@link Tensor} and {@link TensorVector}, and links
 * {@code c10} and {@code torch_cpu}, which the preset has already loaded when this class loads.
 *
 * <p>Only {@link NativeKernels} and {@link KernelAvailability} call it; {@link NativeKernels} validates every
 * argument first. Loading this class throws ({@link UnsatisfiedLinkError}) when the library is absent:
 * {@link KernelAvailability} catches that.
 */
@Platform(include = "autocircuit/kernels.h", link = {"c10", "torch_cpu"}, compiler = "cpp20")
@Namespace("autocircuit::kernels")
public final class NativeKernelsLib {
    static {
        Loader.load(torch.class);  // libc10 and libtorch_cpu first: the dynamic linker resolves ours against them
        Loader.load(NativeKernelsLib.class);
    }

    private NativeKernelsLib() {}

    /** The C++ API version; {@link KernelAvailability} requires {@link #EXPECTED_API_VERSION}. */
    @Name("api_version")
    public static native int apiVersion();

    /** The API version this Java class was written for. */
    public static final int EXPECTED_API_VERSION = 5;

    /** The libtorch version of the headers the library was compiled against, e.g. {@code "2.13.0"}. */
    @Name("libtorch_version")
    public static native @StdString String libtorchVersion();

    /** The CPU tile-kernel variant in use: {@code "avx2"} or {@code "baseline"}. */
    @Name("cpu_isa")
    public static native @StdString String cpuIsa();

    /**
     * Switches the CPU tile kernels to {@code isa} ({@code "baseline"} or {@code "avx2"}) for the whole process;
     * false when that variant is not compiled in or this CPU lacks its instructions. For tests and comparisons.
     */
    @Name("use_cpu_isa")
    public static native @Cast("bool") boolean useCpuIsa(@StdString String isa);

    /**
     * Turns the sparse binary-mask forward path on or off for the whole process (on by default) and returns the
     * previous setting. For tests and benchmarks.
     */
    @Name("set_sparse_binary")
    public static native @Cast("bool") boolean setSparseBinary(@Cast("bool") boolean enabled);

    /** How many CPU forward passes took the sparse binary-mask path so far. */
    @Name("sparse_forward_count")
    public static native @Cast("int64_t") long sparseForwardCount();

    /**
     * Turns the uniform-mask forward path (every mask value equal, fp32: each row is the input plus that value times
     * one sum of the differences) on or off for the whole process (on by default) and returns the previous setting.
     * For tests and benchmarks.
     */
    @Name("set_uniform")
    public static native @Cast("bool") boolean setUniform(@Cast("bool") boolean enabled);

    /** How many CPU forward passes took the uniform-mask path so far. */
    @Name("uniform_forward_count")
    public static native @Cast("int64_t") long uniformForwardCount();

    /** Whether the library contains the CUDA kernels. */
    @Name("cuda_compiled")
    public static native @Cast("bool") boolean cudaCompiled();

    /** One line describing the build, for logs. */
    @Name("build_info")
    public static native @StdString String buildInfo();

    /**
     * {@code autocircuit::kernels::edge_patch}: see {@code kernels.h}. The returned vector holds one output per
     * mask; the caller owns it (and the tensors copied out of it) in its current scope.
     */
    @Name("edge_patch")
    public static native @ByVal TensorVector edgePatch(
            @Const @ByRef Tensor input,
            @Const @ByRef TensorVector masks,
            @Const @ByRef Tensor patch,
            @Const @ByRef Tensor curr,
            @Const @ByRef Tensor deltaSum,
            @Const @ByRef Tensor deltaRows,
            @Cast("bool") boolean maskBatch,
            @Cast("bool") boolean maskSeq,
            @Cast("bool") boolean maskHead);

    /**
     * {@code autocircuit::kernels::unembed_logsumexp}: per row of {@code h} the log-sum-exp over the vocabulary of
     * {@code h · W + bias} and the dot product of those logits with a row of {@code weights} (undefined: none),
     * without the logits (see {@code kernels.h}); only {@link UnembedLogSumExp} calls it.
     */
    @Name("unembed_logsumexp")
    public static native @ByVal Tensor unembedLogSumExp(
            @Const @ByRef Tensor h,
            @Const @ByRef Tensor wPacked,
            @Const @ByRef Tensor bias,
            @Const @ByRef Tensor weights);
}
