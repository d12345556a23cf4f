package org.autocircuit.testing;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Arrays;
import org.autocircuit.util.HostTensor;
import org.bytedeco.pytorch.Tensor;

/** Closeness assertions that report the worst element and its index (llm.c's tensor checker, as an assertion). */
public final class TensorAsserts {
    private TensorAsserts() {}

    public static void assertClose(float[] expected, float[] actual, double atol, double rtol, String what) {
        if (expected.length != actual.length) {
            fail(what + ": length " + actual.length + ", expected " + expected.length);
        }
        double worst = -1;
        int worstIdx = -1;
        int bad = 0;
        for (int i = 0; i < expected.length; i++) {
            double diff = Math.abs((double) expected[i] - actual[i]);
            boolean ok = diff <= atol + rtol * Math.abs(expected[i]) || (Float.isNaN(expected[i]) && Float.isNaN(actual[i]))
                || (Float.isInfinite(expected[i]) && expected[i] == actual[i]);
            if (!ok) bad++;
            if (!ok && diff > worst) {
                worst = diff;
                worstIdx = i;
            }
        }
        if (bad > 0) {
            StringBuilder sb = new StringBuilder(what + ": " + bad + " of " + expected.length + " elements differ; worst at index "
                + worstIdx + ": expected " + expected[worstIdx] + ", got " + actual[worstIdx] + " (|diff| " + worst
                + ", atol " + atol + ", rtol " + rtol + "). First pairs:");
            for (int i = 0; i < Math.min(6, expected.length); i++) sb.append(" (").append(expected[i]).append(", ").append(actual[i]).append(")");
            fail(sb.toString());
        }
    }

    public static void assertClose(float[] expected, Tensor actual, double atol, String what) {
        assertClose(expected, HostTensor.of(actual).floats(), atol, 0, what);
    }

    public static void assertClose(Tensor expected, Tensor actual, double atol, String what) {
        long[] es = expected.shape(), as = actual.shape();
        if (!Arrays.equals(es, as)) fail(what + ": shape " + Arrays.toString(as) + ", expected " + Arrays.toString(es));
        assertClose(HostTensor.of(expected).floats(), HostTensor.of(actual).floats(), atol, 0, what);
    }

    public static float maxAbsDiff(Tensor a, Tensor b) {
        float[] x = HostTensor.of(a).floats(), y = HostTensor.of(b).floats();
        float m = 0;
        for (int i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
        return m;
    }
}
