package org.autocircuit.kernels;

/**
 * A failure inside the native kernels library, wrapped once at the {@link NativeKernels} boundary. The cause is
 * the {@link RuntimeException} JavaCPP raised from the C++ exception; its message (a {@code TORCH_CHECK} text
 * such as {@code "edge_patch: ..."}, or a CUDA error with file and line) is repeated in this message after the
 * op name.
 */
public final class AutoCircuitNativeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final String op;

    public AutoCircuitNativeException(String op, Throwable cause) {
        super("native " + op + " failed: " + cause.getMessage() + advice(cause.getMessage()), cause);
        this.op = op;
    }

    /**
     * What to do about a failure whose message says the device ran out of memory (libtorch's "CUDA out of memory.
     * Tried to allocate ...", or a CUDA kernel's cudaErrorMemoryAllocation): the message already names the
     * allocation; the activations of edge patching grow with batch x sequence x sources, so a smaller batch helps.
     */
    static String advice(String message) {
        if (message == null) return "";
        String m = message.toLowerCase(java.util.Locale.ROOT);
        if (m.contains("out of memory") || m.contains("cudaerrormemoryallocation")) {
            return " (out of device memory: try a smaller batch size, or fewer prompts per batch)";
        }
        return "";
    }

    /** The native op that failed, e.g. {@code "edge_patch"}. */
    public String op() {
        return op;
    }
}
