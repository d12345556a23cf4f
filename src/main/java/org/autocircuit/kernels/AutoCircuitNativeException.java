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
    public static String advice(String message) {
        if (message == null) return "";
        String m = message.toLowerCase(java.util.Locale.ROOT);
        if (m.contains("out of memory") || m.contains("cudaerrormemoryallocation")) {
            return " (out of device memory: try a smaller batch size, or fewer prompts per batch)";
        }
        return "";
    }

    /**
     * {@link #advice(String)} for any failure, native or from a libtorch op of the model (where the allocation
     * that failed is named in libtorch's message): the first message along the cause chain that says the device
     * ran out of memory gives the advice; "" when none does, or when the message already carries it.
     */
    public static String outOfMemoryAdvice(Throwable failure) {
        String top = failure == null ? null : failure.getMessage();
        if (top != null && top.contains("out of device memory: try a smaller batch")) return "";
        for (Throwable t = failure; t != null; t = t.getCause() == t ? null : t.getCause()) {
            String a = advice(t.getMessage());
            if (!a.isEmpty()) return a;
        }
        return "";
    }

    /** The native op that failed, e.g. {@code "edge_patch"}. */
    public String op() {
        return op;
    }
}
