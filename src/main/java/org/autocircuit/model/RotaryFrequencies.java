package org.autocircuit.model;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The divisor of every rotary dimension's angle: position {@code p} turns dimension {@code i} by
 * {@code p / freq[i]}. In the half-split layout dimensions {@code i} and {@code i + rotaryDim/2} share a frequency, so
 * the table is the {@code rotaryDim/2} frequencies written twice ({@code "d -> (2 d)"}).
 */
final class RotaryFrequencies {
    private RotaryFrequencies() {}

    /** {@code [rotaryDim]} float32. */
    static Tensor of(ModelConfig.Rotary r) {
        int half = r.rotaryDim() / 2;
        Tensor freq;                                                                  // [rotaryDim / 2]
        if (r.scaling() instanceof ModelConfig.LinearScaling lin) {
            freq = defaultFreq(r, half).mul(new Scalar(lin.factor()));
        } else if (r.scaling() instanceof ModelConfig.Llama3Scaling l) {
            freq = llama3(r, half, l);
        } else {
            freq = defaultFreq(r, half);
        }
        return torch.cat(new TensorVector(freq, freq), 0).contiguous();
    }

    /** {@code theta ** (i / (rotaryDim / 2))} in float32, TransformerLens's {@code calculate_sin_cos_rotary}. */
    private static Tensor defaultFreq(ModelConfig.Rotary r, int half) {
        Tensor dim = torch.arange(new Scalar(half)).to(torch.ScalarType.Float);
        return torch.pow(new Scalar(r.theta()), dim.div(new Scalar((double) half)));
    }

    /**
     * Llama 3.1's scaling (the "NTK by parts" rule): with {@code wavelen = 2π / invFreq}, wavelengths longer than
     * {@code originalContext / lowFreqFactor} are stretched by {@code factor}, shorter than
     * {@code originalContext / highFreqFactor} kept, and those between interpolated smoothly. Computed in double and
     * rounded to float32.
     */
    private static Tensor llama3(ModelConfig.Rotary r, int half, ModelConfig.Llama3Scaling l) {
        float[] freq = new float[half];
        double lowWavelen = l.originalContext() / l.lowFreqFactor();
        double highWavelen = l.originalContext() / l.highFreqFactor();
        for (int i = 0; i < half; i++) {
            double invFreq = 1.0 / Math.pow(r.theta(), (2.0 * i) / r.rotaryDim());
            double wavelen = 2 * Math.PI / invFreq;
            double scaled = wavelen > lowWavelen ? invFreq / l.factor() : invFreq;
            if (wavelen >= highWavelen && wavelen <= lowWavelen) {
                double smooth = (l.originalContext() / wavelen - l.lowFreqFactor()) / (l.highFreqFactor() - l.lowFreqFactor());
                scaled = (1 - smooth) * scaled / l.factor() + smooth * scaled;
            }
            freq[i] = (float) (1.0 / scaled);
        }
        return org.bytedeco.pytorch.AbstractTensor.create(freq, half);
    }
}
