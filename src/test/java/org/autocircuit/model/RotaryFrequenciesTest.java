package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.junit.jupiter.api.Test;

/** The divisor of each rotary dimension's angle, for the three scaling types, against values worked out by hand. */
class RotaryFrequenciesTest {

    private static float[] freq(ModelConfig.Rotary r) {
        try (PointerScope scope = new PointerScope()) {
            return HostTensor.of(RotaryFrequencies.of(r)).floats();
        }
    }

    @Test
    void defaultIsThetaToTheFractionOfTheDimensionWrittenTwice() {
        float[] f = freq(new ModelConfig.Rotary(8, 10000, new ModelConfig.NoScaling()));
        float[] expected = {1, 10, 100, 1000};   // 10000^(i/4)
        assertEquals(8, f.length);
        for (int i = 0; i < 4; i++) {
            assertEquals(expected[i], f[i], expected[i] * 1e-6, "dim " + i);
            assertEquals(f[i], f[i + 4], 0, "half-split: dims " + i + " and " + (i + 4) + " share a frequency");
        }
    }

    @Test
    void linearScalingDividesEveryAngleByTheFactor() {
        float[] plain = freq(new ModelConfig.Rotary(8, 10000, new ModelConfig.NoScaling()));
        float[] scaled = freq(new ModelConfig.Rotary(8, 10000, new ModelConfig.LinearScaling(4)));
        for (int i = 0; i < 8; i++) assertEquals(4 * plain[i], scaled[i], plain[i] * 1e-5);
    }

    /**
     * Llama 3.2's settings (θ 5·10⁵, head 64, factor 32, low 1, high 4, original context 8192): wavelengths 2π·freq
     * under 8192/4 = 2048 are kept, over 8192 stretched 32×, and those between interpolated, so the result is monotonic
     * and runs from 1 to 32·θ^(62/64).
     */
    @Test
    void llama3KeepsShortWavelengthsAndStretchesLongOnes() {
        double theta = 500000;
        float[] f = freq(new ModelConfig.Rotary(64, theta, new ModelConfig.Llama3Scaling(32, 1, 4, 8192)));
        assertEquals(1.0, f[0], 1e-6, "the fastest dimension is untouched");
        double slowest = Math.pow(theta, 62.0 / 64);
        assertEquals(32 * slowest, f[31], 32 * slowest * 1e-5, "the slowest dimension is stretched by the factor");
        for (int i = 0; i < 32; i++) {
            double plain = Math.pow(theta, 2.0 * i / 64);
            double wavelen = 2 * Math.PI * plain;
            if (wavelen < 2048) assertEquals(plain, f[i], plain * 1e-5, "short wavelength kept at dim " + i);
            if (wavelen > 8192) assertEquals(32 * plain, f[i], 32 * plain * 1e-5, "long wavelength stretched at dim " + i);
            if (i > 0) assertTrue(f[i] > f[i - 1], "monotonic at dim " + i);
        }
    }
}
