package org.autocircuit.patching;

import java.util.List;
import java.util.Map;
import org.bytedeco.pytorch.Tensor;

/**
 * The norm scales of one unpatched run, one {@code [batch, seq, 1]} tensor per hook point of
 * {@link org.autocircuit.model.HookedModel#normScaleHooks()} (Gemma-2: the RMS of every block's summed attention
 * output, before the post-attention norm's gain).
 *
 * <p>Why: a norm applied to a sum of sources ({@code norm(Σ_h result_h)}) is not a sum of per-source terms. The model
 * writes it as {@code Σ_h result_h / s · g}, one term per head, with the scale {@code s} a constant of the pass. Edge
 * patching then takes {@code s} from the unpatched run of the pass's input in every patched pass (the linearisation
 * EAP-IG uses): each head's source output is {@code result_h / s_clean · g}, whatever is patched. {@link PatchableModel}
 * finds these scales itself for passes that start at the first block (it runs the unpatched input once per batch and
 * keeps the result); passes that start at a later block are given them through
 * {@link PatchableModel.PatchMode#freezeNormScales}.
 *
 * <p>The tensors live in the scope that was open when the object was made (see {@link PatchableModel#normScales}).
 */
public final class NormScales {
    private final Map<String, Integer> index;   // hook name → position in `scales`
    private final Tensor[] scales;              // [batch, seq, 1] each

    NormScales(Map<String, Integer> index, Tensor[] scales) {
        this.index = index;
        this.scales = scales;
    }

    /** Prompts (rows) these scales are for. */
    public long batchSize() {
        return scales[0].size(0);
    }

    /** Positions these scales are for. */
    public long seqLen() {
        return scales[0].size(1);
    }

    /** The hook names, in block order. */
    public List<String> hookNames() {
        return List.copyOf(index.keySet());
    }

    /** The scale of hook {@code name}, {@code [batch, seq, 1]}. */
    public Tensor scale(String name) {
        Integer i = index.get(name);
        if (i == null) throw new IllegalArgumentException("no norm scale '" + name + "'; these are " + index.keySet());
        return scales[i];
    }

    /**
     * The same scales repeated {@code k} times along the batch: rows {@code [j·batch, (j+1)·batch)} are this batch,
     * as {@code Tensor.repeat(k, 1, 1)} lays out a batch repeated for {@code k} trials.
     */
    public NormScales repeat(int k) {
        Tensor[] out = new Tensor[scales.length];
        for (int i = 0; i < out.length; i++) out[i] = scales[i].repeat(k, 1, 1);
        return new NormScales(index, out);
    }

    /** The first {@code rows} rows. */
    public NormScales firstRows(long rows) {
        Tensor[] out = new Tensor[scales.length];
        for (int i = 0; i < out.length; i++) out[i] = scales[i].narrow(0, 0, rows);
        return new NormScales(index, out);
    }

    /** Whether {@code name} is one of these scales' hook points. */
    boolean covers(String name) {
        return index.containsKey(name);
    }

    /**
     * The frozen value for the hook {@code name} of a pass that computed {@code value} there: the scale itself, or its
     * last positions when the pass computed only those (a last block trimmed to the last position).
     *
     * @throws IllegalArgumentException when the pass's batch or positions do not fit these scales
     */
    Tensor forHook(String name, Tensor value) {
        Tensor s = scale(name);
        long batch = value.size(0), positions = value.size(1);
        if (batch != s.size(0) || positions > s.size(1)) {
            throw new IllegalArgumentException(name + ": a patched pass over " + batch + " prompts × " + positions
                + " positions, but the unpatched run's norm scales are for " + s.size(0) + " × " + s.size(1)
                + " (freezeNormScales was given the scales of another input)");
        }
        return positions == s.size(1) ? s : s.narrow(1, s.size(1) - positions, positions);
    }
}
