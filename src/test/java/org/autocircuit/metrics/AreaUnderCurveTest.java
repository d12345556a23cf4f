package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

class AreaUnderCurveTest {
    private static Measurement m(double x, double y) {
        return new Measurement(x, y);
    }

    @Test
    void linearAreaAboveTheBaselineSortsByX() {
        // Baseline y(0) = 1. [0,1]: 1·(0 + 2)/2 = 1; [1,3]: 2·(2 + 1)/2 = 3.
        List<Measurement> pts = List.of(m(3, 2), m(0, 1), m(1, 3));
        assertEquals(4.0, AreaUnderCurve.measurementsAuc(pts, false, false, null), 1e-12);
    }

    @Test
    void logXSkipsTheSegmentFromZero() {
        // Baseline 5. [0,1] skipped; [1,10] → [0,1] in log10: 1·(2 + 4)/2 = 3; [10,100]: 1·(4 + 1)/2 = 2.5.
        List<Measurement> pts = List.of(m(0, 5), m(1, 7), m(10, 9), m(100, 6));
        assertEquals(5.5, AreaUnderCurve.measurementsAuc(pts, true, false, null), 1e-12);
    }

    @Test
    void logYClampsAtYMinAndKeepsTheRawBaseline() {
        // yMin 0.01, raw baseline 0.001. y → log10(max(y, .01)) + 2: 0.001 → 0, 0.1 → 1, 1 → 2.
        // [0,10]: 10·((0 − .001) + (1 − .001))/2 = 4.99; [10,20]: 10·((1 − .001) + (2 − .001))/2 = 14.99.
        List<Measurement> pts = List.of(m(0, 0.001), m(10, 0.1), m(20, 1));
        assertEquals(19.98, AreaUnderCurve.measurementsAuc(pts, false, true, 0.01), 1e-9);
    }

    @Test
    void logXAndLogYTogether() {
        // yMin 1e-2, baseline 0.5 (raw). [0,1] skipped. [1,10] → x ∈ [0,1]; y 0.1 → 1, 1 → 2: (1−.5 + 2−.5)/2 = 1.
        List<Measurement> pts = List.of(m(0, 0.5), m(1, 0.1), m(10, 1));
        assertEquals(1.0, AreaUnderCurve.measurementsAuc(pts, true, true, 1e-2), 1e-12);
        assertEquals(1.0, PruneMetrics.CLEAN_KL_DIV.auc(pts), 1e-12);
    }

    @Test
    void areaIsFlooredAtEps() {
        List<Measurement> falling = List.of(m(0, 5), m(1, 1));           // area −2
        assertEquals(1e-3, AreaUnderCurve.measurementsAuc(falling, false, false, null), 0.0);
        assertEquals(0.5, AreaUnderCurve.measurementsAuc(falling, false, false, null, 0.5), 0.0);
        // A single point has no segments: the area is eps.
        assertEquals(1e-3, AreaUnderCurve.measurementsAuc(List.of(m(0, 3)), true, false, null), 0.0);
    }

    @Test
    void firstXMustBeZero() {
        var e = assertThrows(IllegalArgumentException.class,
            () -> AreaUnderCurve.measurementsAuc(List.of(m(2, 3), m(1, 2)), false, false, null));
        assertTrue(e.getMessage().contains("x"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> AreaUnderCurve.measurementsAuc(List.of(), false, false, null));
        assertThrows(IllegalArgumentException.class,
            () -> AreaUnderCurve.measurementsAuc(List.of(m(0, 1), m(1, 2)), false, true, null));
    }
}
