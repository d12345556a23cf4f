package org.autocircuit.patching;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * {@code run_circuits}: for every requested edge count k, patch the circuit made of the k
 * edges with the largest |score| and record the model's output on every batch.
 *
 * <p>EDGE_PATCH runs on the corrupt prompt and gives circuit edges their values from the clean prompt;
 * TREE_PATCH runs on clean and ablates every edge outside the circuit with values from corrupt
 * ({@code reverseCleanCorrupt} swaps the roles). Edges whose score ties with the threshold all join the
 * circuit, so outputs are keyed by the number of edges actually in it (quirk 1 of docs/quirks.md).
 * Masks keep the last setting afterwards (quirk 2 of docs/quirks.md).
 *
 * <p>Two circuits need no patched pass. One whose masks are all 0 patches nothing, so its output is the unpatched
 * model's, computed by a plain pass. In the factorized graph, one whose masks are all 1 gives the output its input
 * from patch values alone ({@code input + Σ (patch − curr)} over every source, where {@code input} is the sum of the
 * current sources plus biases shared by both runs), so what the pass computed in between cannot matter: under
 * RESAMPLE ablation its output is the output of the pass that computed the patch values (EDGE_PATCH with every edge,
 * TREE_PATCH with none), whatever the padding. Both hold exactly up to float rounding (docs/how-it-works.md).
 */
public final class RunCircuits {
    private RunCircuits() {}

    public static CircuitOutputs run(PatchableModel model, List<PromptPairBatch> batches, List<Integer> testEdgeCounts,
                                     PruneScores scores, PatchType patchType, AblationType ablationType,
                                     boolean reverseCleanCorrupt) {
        return run(model, batches, testEdgeCounts, scores, patchType, ablationType, reverseCleanCorrupt, Progress.NONE);
    }

    public static CircuitOutputs run(PatchableModel model, List<PromptPairBatch> batches, List<Integer> testEdgeCounts,
                                     PruneScores scores, PatchType patchType, AblationType ablationType,
                                     boolean reverseCleanCorrupt, Progress progress) {
        if (scores.graph() != model.graph() && scores.graph().nEdges() != model.graph().nEdges()) {
            throw new IllegalArgumentException("prune scores are for a graph of " + scores.graph().nEdges()
                + " edges; the model has " + model.graph().nEdges());
        }
        if (scores.hasNaN()) throw new IllegalArgumentException("prune scores contain NaN");
        for (int k : testEdgeCounts) {
            if (k < 0 || k > model.graph().nEdges()) {
                throw new IllegalArgumentException("edge count " + k + " outside [0, " + model.graph().nEdges() + "]");
            }
        }
        boolean runOnClean = (patchType == PatchType.TREE_PATCH) != reverseCleanCorrupt;
        Ablations.CleanCorrupt inputSide = runOnClean ? Ablations.CleanCorrupt.CLEAN : Ablations.CleanCorrupt.CORRUPT;
        Ablations.CleanCorrupt patchSide = runOnClean ? Ablations.CleanCorrupt.CORRUPT : Ablations.CleanCorrupt.CLEAN;

        // the masks of every requested count, computed once on the host
        Map<Integer, MaskSet> maskSets = new LinkedHashMap<>();
        for (int k : testEdgeCounts) maskSets.put(k, MaskSet.of(scores, scores.threshold(k), patchType));

        CircuitOutputs.Builder outputs = CircuitOutputs.builder();
        long total = (long) batches.size() * maskSets.size();
        long done = 0;
        try (PointerScope runScope = new PointerScope(); NoGradGuard g = new NoGradGuard();
             PatchableModel.OutputsOnly o = model.outputsOnly()) {
            Tensor datasetPatch = ablationType.meanOverDataset()
                ? Ablations.datasetMean(model, batches, ablationType) : null;
            // the patch values' and the current outputs' buffers, reused by every batch of the first batch's shape
            Tensor patchBuffer = null;
            Tensor currBuffer = null;
            for (PromptPairBatch batch : batches) {
                int sharedLength = ablationType == AblationType.RESAMPLE ? SharedPrefix.length(model, batch) : 0;
                int tokens = batch.seqLen() - sharedLength;
                if (currBuffer == null || currBuffer.size(1) != batch.batchSize() || currBuffer.size(2) != tokens) {
                    patchBuffer = ablationType == AblationType.RESAMPLE ? model.sourceBuffer(batch.batchSize(), tokens) : null;
                    currBuffer = model.sourceBuffer(batch.batchSize(), tokens);
                }
                try (PointerScope batchScope = new PointerScope();
                     SharedPrefix shared = SharedPrefix.cache(model, batch, inputSide, sharedLength)) {
                    Tensor input = shared.tail(Inputs.input(batch, inputSide));
                    Tensor padding = shared.tail(Inputs.padding(batch, inputSide));
                    Tensor patchPadding = shared.tail(Inputs.padding(batch, patchSide));
                    Tensor[] patchRunOutput = new Tensor[1];
                    Tensor patch;
                    if (datasetPatch != null) {
                        patch = datasetPatch;
                    } else if (ablationType == AblationType.RESAMPLE) {
                        patch = model.srcOutputs(shared.tail(Inputs.input(batch, patchSide)), patchPadding, null,
                            patchRunOutput, patchBuffer);
                    } else {
                        patch = Ablations.srcAblations(model, Inputs.input(batch, patchSide), patchPadding, ablationType);
                    }
                    Tensor everyEdgeAblated = model.graph().factorized() ? patchRunOutput[0] : null;
                    // Transformers stop each pass at the final residual and unembed the batch's circuits together
                    // below: W_U (the largest matrix of GPT-2 small) is then read once per batch, not once per circuit.
                    PassResults results = new PassResults(model, batchScope);
                    for (MaskSet set : maskSets.values()) {
                        if (set.needsPatchedPass(everyEdgeAblated != null)) continue;
                        Progress.checkInterrupted("run_circuits");
                        if (set.allZero()) {
                            results.runAndPut(set.edgeCount, () -> results.pass(input, padding));
                        } else {
                            results.putLogits(set.edgeCount, everyEdgeAblated);
                        }
                        progress.update("run_circuits", ++done, total);
                    }
                    try (PatchableModel.PatchMode mode = model.patchMode(patch, currBuffer)) {
                        // models with post-norms (Gemma-2): every circuit's pass, whole or from a later block, takes
                        // the norm scales of the unpatched run of this input
                        mode.freezeNormScales(model.normScales(input, padding));
                        UnpatchedPrefix unpatched = new UnpatchedPrefix(model, batchScope);
                        for (MaskSet set : maskSets.values()) {
                            if (!set.needsPatchedPass(everyEdgeAblated != null)) continue;   // answered above
                            Progress.checkInterrupted("run_circuits");
                            set.applyTo(model);
                            results.runAndPut(set.edgeCount, () -> unpatched.pass(set, input, padding));
                            progress.update("run_circuits", ++done, total);
                        }
                    }
                    results.writeTo(outputs, batch.key());
                }
            }
        }
        // the masks end as the last circuit's even when no pass needed them (quirk 2 of docs/quirks.md)
        if (!maskSets.isEmpty() && !batches.isEmpty()) {
            MaskSet last = null;
            for (MaskSet set : maskSets.values()) last = set;
            last.applyTo(model);
        }
        return outputs.build();
    }

    /**
     * Moves {@code t} from scope {@code from} (null or {@code to} itself: nothing to move) to {@code to}: {@code to}
     * takes its reference first, since {@code detach} releases {@code from}'s and would free the tensor at count 0.
     */
    private static void moveToScope(Tensor t, PointerScope from, PointerScope to) {
        if (from == null || from == to) return;
        to.attach(t);
        from.detach(t);
    }

    /**
     * How many leading positions a batch's clean and corrupt prompts share (tokens and padding), which its passes
     * skip under RESAMPLE ablation over a key/value cache of them; 0 where that is not usable (models without block
     * passes, caches handed over by the caller, token graphs, outputs other than the last position).
     */
    public static int sharedPrefixLength(PatchableModel model, PromptPairBatch batch) {
        return SharedPrefix.length(model, batch);
    }


    /**
     * The blocks a batch's patched passes share. A circuit's pass computes exactly the unpatched model up to the block
     * of its first patched destination, so the first pass records the residual stream before every block, and each
     * later pass restarts at the earliest block that may differ: its own first patched block, or an earlier one that
     * a previous pass rewrote (the current-output buffer holds the sources before the restart block). Transformers of
     * the factorized graph only; other passes run whole.
     */
    private static final class UnpatchedPrefix {
        private final PatchableModel model;
        private final PointerScope batchScope;
        private final boolean usable;
        private Tensor[] residPre;
        private int valid;   // residPre[valid] and the buffer's sources before block `valid` are the unpatched ones

        UnpatchedPrefix(PatchableModel model, PointerScope batchScope) {
            this.model = model;
            this.batchScope = batchScope;
            this.usable = model.supportsBlockPasses() && model.graph().factorized();
        }

        /** One patched pass with the masks already set: the final residual (transformers) or the output. */
        Tensor pass(MaskSet set, Tensor input, Tensor padding) {
            if (!model.supportsBlockPasses()) return model.forward(input, padding);
            if (!usable) return model.forwardResidual(input, padding);
            int first = set.firstPatchedBlock();
            if (residPre == null) {
                // the first pass records
                residPre = new Tensor[model.model().nLayers()];
                Tensor out = model.forwardResidual(input, padding, residPre);
                valid = Math.min(first, residPre.length - 1);
                // keep the recorded streams beyond this pass's own scope: the batch's scope frees them
                PointerScope passScope = PointerScope.getInnerScope();
                for (Tensor r : residPre) moveToScope(r, passScope, batchScope);
                return out;
            }
            int start = Math.min(first, valid);
            valid = start;
            return start == 0 ? model.forwardResidual(input, padding) : model.residualFromBlock(start, residPre[start], padding);
        }
    }

    /**
     * The outputs of one batch's circuits, by edge count. For a transformer each pass returns its (sliced) final
     * residual, kept in the batch's scope, and {@link #writeTo} unembeds them all in one product; other models'
     * passes return their outputs.
     */
    private static final class PassResults {
        private final PatchableModel model;
        private final PointerScope batchScope;
        private final Map<Integer, Tensor> residuals = new LinkedHashMap<>();
        private final Map<Integer, Tensor> logits = new LinkedHashMap<>();

        PassResults(PatchableModel model, PointerScope batchScope) {
            this.model = model;
            this.batchScope = batchScope;
        }

        Tensor pass(Tensor input, Tensor padding) {
            return model.supportsBlockPasses() ? model.forwardResidual(input, padding) : model.forward(input, padding);
        }

        void putLogits(int edgeCount, Tensor output) {
            logits.put(edgeCount, output);
        }

        /** Runs one pass in a scope of its own and keeps only its result, moved to the batch's scope. */
        void runAndPut(int edgeCount, java.util.function.Supplier<Tensor> pass) {
            try (PointerScope step = new PointerScope()) {
                Tensor out = pass.get();
                moveToScope(out, step, batchScope);
                (model.supportsBlockPasses() ? residuals : logits).put(edgeCount, out);
            }
        }

        void writeTo(CircuitOutputs.Builder outputs, long batchKey) {
            boolean onePositionEach = residuals.values().stream().allMatch(r -> r.dim() == 2);
            if (!onePositionEach) {
                // whole sequences: one product per circuit keeps the logits of only one circuit in memory at a time
                residuals.forEach((count, r) -> logits.put(count, model.unembed(r)));
            } else if (!residuals.isEmpty()) {
                List<Tensor> stacked = new java.util.ArrayList<>(residuals.values());
                Tensor all = model.unembed(torch.cat(new TensorVector(stacked.toArray(new Tensor[0])), 0));
                long row = 0;
                for (Map.Entry<Integer, Tensor> e : residuals.entrySet()) {
                    long n = e.getValue().size(0);
                    logits.put(e.getKey(), all.narrow(0, row, n));
                    row += n;
                }
            }
            // CircuitOutputs orders counts itself
            logits.forEach((count, out) -> outputs.put(count, batchKey, HostTensor.of(out)));
        }
    }

    /**
     * The 0/1 masks of one circuit and the number of edges it really patches (ties included).
     *
     * @param allZero every mask is 0 (nothing patched)
     * @param allOne  every mask is 1 (every edge takes its patch value)
     * @param firstPatchedBlock the lowest block ({@code blocks.N.} of the hook name) of a destination with a mask
     *                          that is not 0; {@code Integer.MAX_VALUE} when none is
     */
    record MaskSet(int edgeCount, PruneScores masks, boolean allZero, boolean allOne, int firstPatchedBlock) {
        /**
         * Whether this circuit's output needs a patched pass: not when nothing is patched (a plain pass gives it),
         * nor when everything is and the patch run's own output is at hand ({@code patchRunOutput}).
         */
        boolean needsPatchedPass(boolean patchRunOutput) {
            return !allZero && !(allOne && patchRunOutput);
        }

        static MaskSet of(PruneScores scores, float threshold, PatchType type) {
            Map<String, float[]> byModule = new LinkedHashMap<>();
            int count = 0, ones = 0, total = 0, firstBlock = Integer.MAX_VALUE;
            for (String module : scores.moduleNames()) {
                float[] s = scores.module(module);
                float[] m = new float[s.length];
                for (int i = 0; i < s.length; i++) {
                    boolean inCircuit = Math.abs(s[i]) >= threshold;
                    if (type == PatchType.EDGE_PATCH) {
                        m[i] = inCircuit ? 1f : 0f;
                        if (inCircuit) count++;
                    } else {
                        m[i] = inCircuit ? 0f : 1f;
                        if (inCircuit) count++;
                    }
                    if (m[i] == 1f) ones++;
                    if (m[i] != 0f) firstBlock = Math.min(firstBlock, blockOf(module));
                }
                total += s.length;
                byModule.put(module, m);
            }
            return new MaskSet(count, PruneScores.of(scores.graph(), byModule), ones == 0, ones == total, firstBlock);
        }

        /** N of a {@code blocks.N.} hook name; 0 for any other (conservative: the pass then starts at block 0). */
        private static int blockOf(String hookName) {
            if (!hookName.startsWith("blocks.")) return 0;
            int dot = hookName.indexOf('.', 7);
            try {
                return dot < 0 ? 0 : Integer.parseInt(hookName.substring(7, dot));
            } catch (NumberFormatException e) {
                return 0;
            }
        }

        void applyTo(PatchableModel model) {
            model.setMasks(masks);
        }
    }
}
