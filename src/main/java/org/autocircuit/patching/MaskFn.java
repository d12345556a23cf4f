package org.autocircuit.patching;

import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * How a destination's mask parameters become the mask used in the forward pass.
 * 0 keeps an edge, 1 ablates it.
 */
public enum MaskFn {
    /** The raw mask values. */
    NONE,
    /** {@code sigmoid(mask)}. */
    SIGMOID,
    /**
     * A hard-concrete sample (Louizos et al. 2018, with the constants of Cao et al. 2021), drawn afresh for
     * every batch element on every forward pass.
     */
    HARD_CONCRETE;

    /** Left stretch bound γ of the hard-concrete distribution. */
    public static final double GAMMA = -0.1;
    /** Right stretch bound ζ. */
    public static final double ZETA = 1.1;
    /** Temperature β. */
    public static final double BETA = 2.0 / 3.0;
    /** The mask value whose hard-concrete keep probability is 0.9: ln(p/(1−p)) with p = (0.9−γ)/(ζ−γ) = ln 5. */
    public static final double INIT_MASK_VAL = Math.log(((0.9 - GAMMA) / (ZETA - GAMMA)) / (1 - (0.9 - GAMMA) / (ZETA - GAMMA)));
    /** β·ln(−γ/ζ): the logit shift that makes σ(mask − c) the probability that a sample is non-zero. */
    public static final double REGULARIZE_CONST = BETA * Math.log(-GAMMA / ZETA);

    /** Whether the applied mask gains a leading batch dimension. */
    public boolean addsBatchDim() {
        return this == HARD_CONCRETE;
    }

    /**
     * @param mask      {@code [batch?][seq?][head?][nIn]} mask parameters
     * @param batchSize batch size for per-example samples
     * @param hasBatch  whether {@code mask} already has the batch dimension
     */
    public Tensor apply(Tensor mask, long batchSize, boolean hasBatch) {
        return switch (this) {
            case NONE -> mask;
            case SIGMOID -> mask.sigmoid();
            case HARD_CONCRETE -> sampleHardConcrete(mask, batchSize, hasBatch);
        };
    }

    /** The hard-concrete sample: u ~ U(0,1) clamped to [1e-4, 1−1e-4]; s = σ((ln u − ln(1−u) + m)/β); z = clamp(s(ζ−γ)+γ, 0, 1). */
    public static Tensor sampleHardConcrete(Tensor mask, long batchSize, boolean hasBatch) {
        Tensor m = mask;
        if (!hasBatch) {
            long[] shape = mask.shape();
            long[] withBatch = new long[shape.length + 1];
            withBatch[0] = batchSize;
            System.arraycopy(shape, 0, withBatch, 1, shape.length);
            m = mask.unsqueeze(0).expand(withBatch);
        }
        Tensor u = torch.rand_like(m).clamp(new org.bytedeco.pytorch.ScalarOptional(new Scalar(1e-4)),
            new org.bytedeco.pytorch.ScalarOptional(new Scalar(1 - 1e-4)));
        Tensor logits = u.log().sub(u.neg().add(new Scalar(1)).log()).add(m).div(new Scalar(BETA));
        Tensor s = logits.sigmoid();
        return s.mul(new Scalar(ZETA - GAMMA)).add(new Scalar(GAMMA))
            .clamp(new org.bytedeco.pytorch.ScalarOptional(new Scalar(0.0)),
                new org.bytedeco.pytorch.ScalarOptional(new Scalar(1.0)));
    }
}
