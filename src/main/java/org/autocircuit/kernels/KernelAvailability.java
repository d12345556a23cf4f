package org.autocircuit.kernels;

import java.io.IOException;
import org.bytedeco.javacpp.Loader;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether the native kernels library can be used in this process, probed once (netty's {@code Epoll} shape).
 *
 * <p>The probe, run by the static initialiser, never throws: it honours the kill switch
 * {@code -Dautocircuit.kernels=reference} (the library is then not even loaded), loads {@link NativeKernelsLib}
 * (libtorch first), checks the C++ API version and that the library was compiled against the headers of the
 * libtorch version the {@code pytorch} preset runs (other headers compile, link and then misread tensors), and
 * runs one tiny {@code edge_patch} against {@link TorchKernels}. Any failure becomes the
 * {@link #unavailabilityCause()}, logged at DEBUG (stack trace at TRACE). See docs/native.md for the causes and
 * their fixes.
 */
public final class KernelAvailability {
    private static final Logger LOG = LoggerFactory.getLogger(KernelAvailability.class);

    private static final Probe PROBE = probe();

    private KernelAvailability() {}

    /** Whether {@link NativeKernels} can be used. */
    public static boolean isAvailable() {
        return PROBE.cause == null;
    }

    /**
     * Throws {@link UnsatisfiedLinkError} (with the cause attached) when the native kernels are unavailable.
     */
    public static void ensureAvailability() {
        if (PROBE.cause != null) {
            throw (Error) new UnsatisfiedLinkError("autocircuit native kernels unavailable: " + PROBE.cause)
                    .initCause(PROBE.cause);
        }
    }

    /** Why the native kernels are unavailable, or null when they are available. */
    public static Throwable unavailabilityCause() {
        return PROBE.cause;
    }

    /** The native library's description ({@code NativeKernelsLib.buildInfo()}), or why it is unavailable. */
    public static String describe() {
        return PROBE.cause == null ? PROBE.buildInfo : "unavailable: " + PROBE.cause;
    }

    private record Probe(Throwable cause, String buildInfo) {}

    private static Probe probe() {
        try {
            String mode = System.getProperty(KernelSelection.PROPERTY, "").trim();
            if (mode.equalsIgnoreCase("torch") || mode.equalsIgnoreCase("reference")) {
                throw new UnsupportedOperationException(
                        "native kernels disabled by -D" + KernelSelection.PROPERTY + "=" + mode);
            }
            int api = NativeKernelsLib.apiVersion();  // loads libtorch, then the library
            if (api != NativeKernelsLib.EXPECTED_API_VERSION) {
                throw new IllegalStateException("the native kernels library has API version " + api + ", this code needs "
                        + NativeKernelsLib.EXPECTED_API_VERSION + ": rebuild it (mvn process-classes)");
            }
            String headers = NativeKernelsLib.libtorchVersion();
            String preset = presetLibtorchVersion();
            if (preset != null && !preset.equals(headers)) {
                throw new IllegalStateException("the native kernels were compiled against libtorch " + headers
                        + " headers but the pytorch preset runs libtorch " + preset
                        + ": rebuild them with the matching headers (docs/native.md)");
            }
            selfTest();
            String info = NativeKernelsLib.buildInfo();
            LOG.debug("native kernels available: {}", info);
            return new Probe(null, info);
        } catch (Throwable t) {
            LOG.debug("native kernels unavailable: {}", t.toString());
            LOG.trace("native kernels unavailable", t);
            return new Probe(t, null);
        }
    }

    /** "2.13.0" from the preset's Maven version "2.13.0-1.5.14", or null when the jar does not say. */
    private static String presetLibtorchVersion() {
        try {
            String version = Loader.getVersion("org.bytedeco", "pytorch");
            if (version == null) return null;
            int dash = version.indexOf('-');
            return dash > 0 ? version.substring(0, dash) : version;
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /**
     * One edge_patch on fixed values (not random: the probe must not advance the global generator), compared
     * with {@link TorchKernels}: catches a library that loads but reads tensors wrongly.
     */
    private static void selfTest() {
        try (PointerScope scope = new PointerScope()) {
            float[] inputValues = new float[2 * 3 * 5];
            float[] patchValues = new float[2 * 2 * 3 * 5];
            float[] currValues = new float[2 * 2 * 3 * 5];
            for (int k = 0; k < patchValues.length; k++) {
                patchValues[k] = (k % 7) - 3;
                currValues[k] = (k % 5) * 0.5f;
                if (k < inputValues.length) inputValues[k] = k * 0.25f;
            }
            Tensor input = Tensor.create(inputValues, 2, 3, 5);                      // [batch, seq, dModel]
            Tensor patch = Tensor.create(patchValues, 2, 2, 3, 5);                   // [nIn, batch, seq, dModel]
            Tensor curr = Tensor.create(currValues, 2, 2, 3, 5);
            Tensor mask = Tensor.create(new float[] {1f, 0f, 0.5f, 0.25f, 0f, 1f}, 3, 2);  // [head, nIn]
            TensorVector out = NativeKernelsLib.edgePatch(input, new TensorVector(mask), patch, curr, new Tensor(),
                new Tensor(), false, false, true);
            Tensor expected = TorchKernels.INSTANCE.edgePatch(input, new Tensor[] {mask}, patch, curr,
                    new MaskLayout(false, false, true))[0];
            if (out.size() != 1 || !torch.allclose(out.get(0), expected, 1e-6, 1e-6, false)) {
                throw new IllegalStateException("self-test failed: native edge_patch differs from TorchKernels");
            }
        }
    }
}
