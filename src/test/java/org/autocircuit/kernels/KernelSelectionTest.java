package org.autocircuit.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** KernelSelection: the property's modes, the fallback, and the forced-native failure. */
class KernelSelectionTest {

    @Test
    void parsesModes() {
        assertEquals(KernelSelection.Mode.AUTO, KernelSelection.Mode.parse(null));
        assertEquals(KernelSelection.Mode.AUTO, KernelSelection.Mode.parse(" "));
        assertEquals(KernelSelection.Mode.REFERENCE, KernelSelection.Mode.parse("torch"));
        assertEquals(KernelSelection.Mode.REFERENCE, KernelSelection.Mode.parse(" Reference "));
        assertEquals(KernelSelection.Mode.NATIVE, KernelSelection.Mode.parse(" Native "));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> KernelSelection.Mode.parse("gpu"));
        assertEquals("-Dautocircuit.kernels must be auto, reference (or torch) or native, got 'gpu'", e.getMessage());
    }

    @Test
    void torchModeIsTheReference() {
        assertSame(Kernels.reference(), KernelSelection.select(KernelSelection.Mode.REFERENCE));
    }

    @Test
    void autoFallsBackWhenUnavailable() {
        assertSame(Kernels.reference(),
                KernelSelection.select(KernelSelection.Mode.AUTO, new UnsatisfiedLinkError("no libjniNativeKernelsLib")));
    }

    @Test
    void forcedNativeFailsWithTheCauseWhenUnavailable() {
        Throwable cause = new UnsatisfiedLinkError("no jniNativeKernelsLib in java.library.path");
        UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
                () -> KernelSelection.select(KernelSelection.Mode.NATIVE, cause));
        assertSame(cause, e.getCause());
        assertTrue(e.getMessage().startsWith("-Dautocircuit.kernels=native, but the autocircuit native kernels are "
                + "unavailable: java.lang.UnsatisfiedLinkError: no jniNativeKernelsLib"), e.getMessage());
    }

    /** With the real availability: native exactly when the library loaded, else the reference. */
    @Test
    void autoFollowsAvailability() {
        Kernels k = KernelSelection.select(KernelSelection.Mode.AUTO);
        if (KernelAvailability.isAvailable()) {
            assertSame(NativeKernels.instance(), k);
            assertTrue(k.name().startsWith("native-"), k.name());
            assertSame(k, KernelSelection.select(KernelSelection.Mode.NATIVE));
        } else {
            assertSame(Kernels.reference(), k);
            UnsatisfiedLinkError e = assertThrows(UnsatisfiedLinkError.class,
                    () -> KernelSelection.select(KernelSelection.Mode.NATIVE));
            assertSame(KernelAvailability.unavailabilityCause(), e.getCause());
            assertThrows(UnsatisfiedLinkError.class, KernelAvailability::ensureAvailability);
        }
    }

    @Test
    void bestReadsTheProperty() {
        String old = System.getProperty(KernelSelection.PROPERTY);
        try {
            System.setProperty(KernelSelection.PROPERTY, "reference");
            assertSame(Kernels.reference(), KernelSelection.best());
        } finally {
            if (old == null) System.clearProperty(KernelSelection.PROPERTY);
            else System.setProperty(KernelSelection.PROPERTY, old);
        }
    }

    @Test
    void describesTheLibrary() {
        String d = KernelAvailability.describe();
        if (KernelAvailability.isAvailable()) {
            assertTrue(d.startsWith("autocircuit native kernels (api " + NativeKernelsLib.EXPECTED_API_VERSION + ", libtorch 2.13.0 headers, cpu "), d);
        } else {
            assertTrue(d.startsWith("unavailable: "), d);
        }
    }
}
