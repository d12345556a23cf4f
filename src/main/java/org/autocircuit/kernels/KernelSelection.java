package org.autocircuit.kernels;

import java.util.Locale;
import java.util.concurrent.ConcurrentHashMap;
import java.util.Set;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Chooses the {@link Kernels} implementation: {@link NativeKernels} when the native library is available,
 * {@link TorchKernels} otherwise (Jlama's and netty's pattern). The choice is logged once at INFO.
 *
 * <p>{@code -Dautocircuit.kernels=}
 * <ul>
 *   <li>{@code auto} (default): native when available, else the reference;</li>
 *   <li>{@code reference} (or {@code torch}): always the reference; the native library is not even loaded (a
 *       kill switch);</li>
 *   <li>{@code native}: native or an {@link UnsatisfiedLinkError} carrying the unavailability cause: an explicit
 *       request is never silently downgraded.</li>
 * </ul>
 * {@link NativeKernels} itself still hands calls it does not support (float64, float16, a device the library
 * was not built for) to {@link TorchKernels}. {@link Kernels#best()} delegates here.
 */
public final class KernelSelection {
    /** The system property that picks the implementation. */
    public static final String PROPERTY = "autocircuit.kernels";

    private static final Logger LOG = LoggerFactory.getLogger(KernelSelection.class);
    private static final Set<String> LOGGED = ConcurrentHashMap.newKeySet();

    private KernelSelection() {}

    /** The values of {@value #PROPERTY}. */
    public enum Mode {
        AUTO, REFERENCE, NATIVE;

        /** Parses {@code auto}, {@code reference} (alias {@code torch}) or {@code native} (any case; blank: auto). */
        public static Mode parse(String value) {
            if (value == null || value.isBlank()) return AUTO;
            String v = value.trim().toLowerCase(Locale.ROOT);
            switch (v) {
                case "auto": return AUTO;
                case "reference":
                case "torch": return REFERENCE;
                case "native": return NATIVE;
                default:
                    throw new IllegalArgumentException("-D" + PROPERTY + " must be auto, reference (or torch) or native, got '"
                            + value + "'");
            }
        }
    }

    /** The mode set by {@value #PROPERTY} (default {@link Mode#AUTO}). */
    public static Mode configuredMode() {
        return Mode.parse(System.getProperty(PROPERTY));
    }

    /** The implementation for the configured mode. */
    public static Kernels best() {
        return select(configuredMode());
    }

    /** The implementation for {@code mode}; {@link Mode#NATIVE} throws when the native kernels are unavailable. */
    public static Kernels select(Mode mode) {
        return select(mode, KernelAvailability.unavailabilityCause());
    }

    /** {@link #select(Mode)} with the unavailability cause given (null: available); for tests. */
    static Kernels select(Mode mode, Throwable unavailabilityCause) {
        switch (mode) {
            case REFERENCE:
                logOnce("edge-patching kernels: torch (reference), as requested (-D" + PROPERTY + "=reference or explicit)");
                return Kernels.reference();
            case NATIVE:
                if (unavailabilityCause != null) {
                    throw (Error) new UnsatisfiedLinkError("-D" + PROPERTY + "=native, but the autocircuit native kernels "
                            + "are unavailable: " + unavailabilityCause + " (see docs/native.md)")
                            .initCause(unavailabilityCause);
                }
                logOnce("edge-patching kernels: native, as requested (-D" + PROPERTY + "=native or explicit) ("
                        + KernelAvailability.describe() + ")");
                return NativeKernels.instance();
            case AUTO:
            default:
                if (unavailabilityCause == null) {
                    logOnce("edge-patching kernels: native (" + KernelAvailability.describe() + ")");
                    return NativeKernels.instance();
                }
                logOnce("edge-patching kernels: torch (reference); native kernels unavailable: " + unavailabilityCause);
                return Kernels.reference();
        }
    }

    private static void logOnce(String message) {
        if (LOGGED.add(message)) LOG.info(message);
    }
}
