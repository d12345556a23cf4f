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
        super("native " + op + " failed: " + cause.getMessage(), cause);
        this.op = op;
    }

    /** The native op that failed, e.g. {@code "edge_patch"}. */
    public String op() {
        return op;
    }
}
