package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Completeness "same under knockouts" (after Wang et al. 2022's completeness criterion): a complete
 * circuit should react to knocking out a set of its own edges the way the whole model reacts to the same knockouts.
 *
 * <p>On the clean prompts with corrupt (resample) ablation values, for a circuit C (the top {@code circuitSize} edges
 * by |score|) and knockouts K (edges whose knockout score is ≥ {@code knockoutThreshold}, signed):
 * <ul>
 *   <li>circuit with knockouts: ablate K ∩ C and everything outside C;</li>
 *   <li>model with knockouts: ablate K ∩ C only;</li>
 *   <li>circuit: ablate everything outside C; model: ablate nothing.</li>
 * </ul>
 * {@code normalKl = KL(model ‖ circuit)} and {@code knockoutKl = KL(model with knockouts ‖ circuit with knockouts)},
 * averaged over all prompts. A complete circuit has knockoutKl close to normalKl. Masks are left at the last setting.
 */
public final class Completeness {
    private Completeness() {}

    /**
     * @param circuitSize the number of edges actually in the circuit (more than requested when scores tie)
     * @param nKnockouts  the number of circuit edges knocked out
     */
    public record KnockoutResult(int circuitSize, int nKnockouts, double normalKl, double knockoutKl) {}

    /** AutoCircuit's {@code same_under_knockout} with the default knockout threshold 0. */
    public static KnockoutResult sameUnderKnockout(PatchableModel model, List<PromptPairBatch> testBatches,
                                                   PruneScores circuitScores, PruneScores knockoutScores, int circuitSize) {
        return sameUnderKnockout(model, testBatches, circuitScores, knockoutScores, circuitSize, 0.0);
    }

    public static KnockoutResult sameUnderKnockout(PatchableModel model, List<PromptPairBatch> testBatches,
                                                   PruneScores circuitScores, PruneScores knockoutScores, int circuitSize,
                                                   double knockoutThreshold) {
        int nEdges = model.graph().nEdges();
        if (circuitScores.graph().nEdges() != nEdges || knockoutScores.graph().nEdges() != nEdges) {
            throw new IllegalArgumentException("circuit and knockout scores must be for the model's graph of " + nEdges + " edges");
        }
        if (circuitSize < 0 || circuitSize > nEdges) {
            throw new IllegalArgumentException("circuitSize " + circuitSize + " outside [0, " + nEdges + "]");
        }
        if (testBatches.isEmpty()) throw new IllegalArgumentException("same under knockout needs at least one test batch");
        float threshold = circuitScores.threshold(circuitSize);
        float[] circuit = circuitScores.flat(), knockout = knockoutScores.flat();
        float[] koCircuit = new float[nEdges], koModel = new float[nEdges], circuitOnly = new float[nEdges];
        int size = 0, nKnockouts = 0;
        for (int i = 0; i < nEdges; i++) {
            boolean inCircuit = Math.abs(circuit[i]) >= threshold;
            boolean knocked = knockout[i] >= knockoutThreshold;
            if (inCircuit) size++;
            koCircuit[i] = inCircuit ? (knocked ? 1f : 0f) : 1f;
            koModel[i] = inCircuit && knocked ? 1f : 0f;
            circuitOnly[i] = inCircuit ? 0f : 1f;
            if (koModel[i] == 1f) nKnockouts++;
        }
        List<PruneScores> settings = List.of(PruneScores.ofFlat(model.graph(), koCircuit),
            PruneScores.ofFlat(model.graph(), koModel), PruneScores.ofFlat(model.graph(), circuitOnly));
        List<PromptPairBatch> sorted = new ArrayList<>(testBatches);
        sorted.sort(Comparator.comparingLong(PromptPairBatch::key));
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Map<String, List<Tensor>> logprobs = new LinkedHashMap<>();
            for (String k : List.of("koCircuit", "koModel", "circuit", "model")) logprobs.put(k, new ArrayList<>());
            for (PromptPairBatch batch : sorted) {
                Tensor clean = Inputs.clean(batch);
                Tensor padding = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
                logprobs.get("model").add(model.forward(clean, padding).log_softmax(-1));
                Tensor patch = Ablations.srcAblations(model, Inputs.corrupt(batch),
                    Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT), AblationType.RESAMPLE);
                try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                    int s = 0;
                    for (String k : List.of("koCircuit", "koModel", "circuit")) {
                        model.setMasks(settings.get(s++));
                        logprobs.get(k).add(model.forward(clean, padding).log_softmax(-1));
                    }
                }
            }
            double normalKl = kl(logprobs.get("circuit"), logprobs.get("model"));
            double knockoutKl = kl(logprobs.get("koCircuit"), logprobs.get("koModel"));
            return new KnockoutResult(size, nKnockouts, normalKl, knockoutKl);
        }
    }

    /** KL(target ‖ input) over all rows of the stacked batches. */
    private static double kl(List<Tensor> input, List<Tensor> target) {
        Tensor in = torch.cat(new TensorVector(input.toArray(new Tensor[0])), 0);
        Tensor tg = torch.cat(new TensorVector(target.toArray(new Tensor[0])), 0);
        return TensorOps.multibatchKlDiv(in, tg).item_double();
    }
}
