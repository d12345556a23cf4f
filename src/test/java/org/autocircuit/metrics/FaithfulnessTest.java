package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Test;

class FaithfulnessTest {
    /** Points (k, m(C_k)) on MIB's grid whose faithfulness is f(k), for m(∅) = mEmpty, m(N) = mFull. */
    private static List<Measurement> points(double mEmpty, double mFull, DoubleUnaryOperator f) {
        List<Measurement> pts = new ArrayList<>();
        for (double k : Faithfulness.FRACTIONS) pts.add(new Measurement(k, mEmpty + f.applyAsDouble(k) * (mFull - mEmpty)));
        return pts;
    }

    @Test
    void perfectCircuitsSpanTheGrid() {
        List<Measurement> pts = points(2, 5, k -> 1);
        assertEquals(0.999, Faithfulness.cpr(2, 5, pts), 1e-12);
        assertEquals(0.0, Faithfulness.cmd(2, 5, pts), 1e-12);
    }

    @Test
    void linearFaithfulness() {
        // f(k) = k: the trapezoid rule is exact for a line. CPR = (1 − 0.001²)/2; CMD = ∫(1 − k) = 0.999 − CPR.
        List<Measurement> pts = points(-1, 3, k -> k);
        assertEquals(0.4999995, Faithfulness.cpr(-1, 3, pts), 1e-12);
        assertEquals(0.4990005, Faithfulness.cmd(-1, 3, pts), 1e-12);
    }

    @Test
    void stepAndOvershoot() {
        // f = 0 up to k = 0.1, then 1: CPR = 0.1·½ + 0.3 + 0.5 = 0.85; CMD = 0.999 − 0.85.
        List<Measurement> step = points(0, 10, k -> k > 0.15 ? 1 : 0);
        assertEquals(0.85, Faithfulness.cpr(0, 10, step), 1e-12);
        assertEquals(0.149, Faithfulness.cmd(0, 10, step), 1e-12);
        // f = 2 everywhere (circuit better than the model): CPR 1.998; the distance |1 − f| = 1 → CMD 0.999.
        // A metric that falls from ∅ to N (mEmpty 5, mFull 1) works the same way.
        List<Measurement> over = points(5, 1, k -> 2);
        assertEquals(1.998, Faithfulness.cpr(5, 1, over), 1e-12);
        assertEquals(0.999, Faithfulness.cmd(5, 1, over), 1e-12);
        assertEquals(0.5, Faithfulness.faithfulness(5, 1, 3), 1e-15);
    }

    @Test
    void badInput() {
        var e = assertThrows(IllegalArgumentException.class, () -> Faithfulness.cpr(3, 3, points(3, 4, k -> 1)));
        assertTrue(e.getMessage().contains("mFull equals mEmpty"), e.getMessage());
        List<Measurement> offGrid = new ArrayList<>(points(0, 1, k -> k));
        offGrid.set(3, new Measurement(0.011, 0.5));
        assertThrows(IllegalArgumentException.class, () -> Faithfulness.cmd(0, 1, offGrid));
        assertThrows(IllegalArgumentException.class, () -> Faithfulness.cpr(0, 1, offGrid.subList(0, 5)));
    }
}
