package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.testing.NativeExpectation;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The run fails, instead of quietly skipping every native-path test and running the golden suite on the reference
 * kernels only, when the native kernels did not build or load on a machine where the build compiles them
 * (a C++ compiler on the PATH; {@link NativeExpectation} says exactly when, and how to opt out).
 */
class NativeKernelsExpectedTest {

    @Test
    void nativeKernelsAreAvailableWhereTheBuildCompilesThem() {
        String reason = NativeExpectation.reason();
        Assumptions.assumeTrue(NativeExpectation.expected(), reason);
        assertTrue(KernelAvailability.isAvailable(), () -> "native kernels unavailable: "
            + KernelAvailability.unavailabilityCause() + " (" + reason + "). The build's [native] lines say what went "
            + "wrong; docs/native.md lists the causes and fixes");
        assertTrue(Kernels.best() instanceof NativeKernels, "Kernels.best() picks the native kernels when they load");
    }
}
