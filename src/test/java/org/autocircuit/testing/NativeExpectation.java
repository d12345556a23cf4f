package org.autocircuit.testing;

import java.io.File;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.autocircuit.kernels.KernelAvailability;
import org.autocircuit.kernels.KernelSelection;
import org.junit.jupiter.api.Assertions;
import org.junit.jupiter.api.Assumptions;

/**
 * Whether this test run must have the native kernels, so that a broken native build fails the run instead of
 * turning every native-path test into a skip.
 *
 * <p>{@code -Dautocircuit.expectNative=true|false|auto} (default {@code auto}). {@code auto} expects them on a
 * supported platform (Linux x86-64 or arm64) with a C++ compiler on the PATH ({@code $CXX}, else {@code g++}) —
 * exactly where the build (src/main/cpp/build-native.sh) compiles them — unless the run asked for the reference
 * kernels ({@code -Dautocircuit.kernels=reference}). A machine with a compiler but no way to get the libtorch
 * headers says so with {@code -Dautocircuit.expectNative=false}.
 */
public final class NativeExpectation {
    public static final String PROPERTY = "autocircuit.expectNative";

    private NativeExpectation() {}

    /** Whether the native kernels must be available in this run. */
    public static boolean expected() {
        return reason().startsWith("expected");
    }

    /** Why they are (the text starts with "expected") or are not expected. */
    public static String reason() {
        String mode = System.getProperty(PROPERTY, "auto").trim().toLowerCase(Locale.ROOT);
        switch (mode) {
            case "true":
                return "expected: -D" + PROPERTY + "=true";
            case "false":
                return "not expected: -D" + PROPERTY + "=false";
            case "auto", "":
                break;
            default:
                throw new IllegalArgumentException("-D" + PROPERTY + " must be auto, true or false, got '" + mode + "'");
        }
        String kernels = System.getProperty(KernelSelection.PROPERTY, "").trim();
        if (kernels.equalsIgnoreCase("reference") || kernels.equalsIgnoreCase("torch")) {
            return "not expected: the run asked for the reference kernels (-D" + KernelSelection.PROPERTY + "=" + kernels + ")";
        }
        String os = System.getProperty("os.name", "").toLowerCase(Locale.ROOT);
        String arch = System.getProperty("os.arch", "");
        if (!os.contains("linux") || !(arch.equals("amd64") || arch.equals("x86_64") || arch.equals("aarch64"))) {
            return "not expected: the native build supports Linux x86-64 and arm64, this is " + os + " " + arch;
        }
        String cxx = System.getenv().getOrDefault("CXX", "g++");
        Path compiler = onPath(cxx);
        if (compiler == null) return "not expected: no C++ compiler ('" + cxx + "' is not on the PATH)";
        return "expected: " + compiler + " is on the PATH, so the build compiles them (-D" + PROPERTY
            + "=false where the libtorch headers cannot be had)";
    }

    /**
     * For a test of the native path: returns when the native kernels are available; otherwise fails the test where
     * they are {@link #expected()} and skips it, saying why, where they are not.
     */
    public static void requireNativeKernels() {
        if (KernelAvailability.isAvailable()) return;
        String message = "native kernels unavailable (" + KernelAvailability.unavailabilityCause() + "); "
            + reason() + "; build them with mvn process-classes, see docs/native.md";
        if (expected()) Assertions.fail(message);
        Assumptions.abort(message);
    }

    private static Path onPath(String program) {
        if (program.contains(File.separator)) {
            Path p = Path.of(program);
            return Files.isExecutable(p) ? p : null;
        }
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            if (dir.isEmpty()) continue;
            Path p = Path.of(dir, program);
            if (Files.isExecutable(p)) return p;
        }
        return null;
    }
}
