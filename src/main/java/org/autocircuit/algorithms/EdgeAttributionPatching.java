package org.autocircuit.algorithms;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.DataParallel;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.BoolOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * Edge Attribution Patching in its exact, reference form (Syed, Rager and Conmy, 2023, "Attribution Patching
 * Outperforms Automated Circuit Discovery").
 *
 * <p>The score of edge u→v is the first-order estimate of how much the loss changes when u's contribution to v's
 * input is replaced by its corrupt value:
 * <pre>  score(u→v) = Σ_{batch, pos, dModel} ∂loss/∂input_v · (corrupt_u − clean_u)</pre>
 * with {@code loss = −mean logit difference} (or {@code −mean answer logit}), its gradient taken on the clean,
 * unpatched run, summed over batches. It needs no masks: the gradient at every destination input is captured
 * by hooks that route each input through a tensor of its own, and the source outputs come from two plain runs.
 * {@link MaskGradient} at mask 0 computes the same numbers through the masks (the two are tested equal); this form
 * exists to cross-check it and as AutoCircuit's registered "Edge Attribution Patching" algorithm.
 *
 * <p>Token graphs: AutoCircuit's version ignores the edge's position and gives every position the score summed over
 * all positions (recorded in the golden file's header). {@link Options#perPosition()} scores each token edge at its
 * own position instead, which is what the edge means and what {@link MaskGradient} gives; {@link Options#autoCircuit()}
 * reproduces AutoCircuit. On component graphs the two are the same.
 */
public final class EdgeAttributionPatching {
    private EdgeAttributionPatching() {}

    /**
     * @param answerDiff      loss −mean(answer − wrong answer) logit (true) or −mean answer logit (false)
     * @param perPosition     on token graphs, score each edge at its own position (true) or, as AutoCircuit does, give
     *                        every position the sum over all positions (false); no effect on component graphs
     * @param promptsPerPass  at most this many prompts of a batch in one forward and backward pass (0: the whole
     *                        batch). The loss is a mean over prompts and no prompt's activations depend on another's,
     *                        so the gradients of a batch's parts, each loss scaled by part size / batch size, add up
     *                        to the batch's: the scores are the same up to float rounding, and the memory the pass
     *                        keeps (every destination input's gradient, the autograd graph) shrinks with the part
     */
    public record Options(boolean answerDiff, boolean perPosition, int promptsPerPass) {
        public Options {
            if (promptsPerPass < 0) {
                throw new IllegalArgumentException("promptsPerPass must be >= 0 (0: whole batches), got " + promptsPerPass);
            }
        }

        /** Whole batches per pass. */
        public Options(boolean answerDiff, boolean perPosition) {
            this(answerDiff, perPosition, 0);
        }

        /** Logit difference, per-position token scores. */
        public static Options defaults() {
            return new Options(true, true);
        }

        /** AutoCircuit's {@code edge_attribution_patching_prune_scores(answer_diff=True)}, position quirk included. */
        public static Options autoCircuit() {
            return new Options(true, false);
        }

        /** These options with at most {@code n} prompts per pass (0: whole batches). */
        public Options withPromptsPerPass(int n) {
            return new Options(answerDiff, perPosition, n);
        }
    }

    /** The {@link PruneAlgorithm} form with {@link Options#defaults()}. */
    public static PruneScores scores(PruneRun run) {
        return scores(run, Options.defaults());
    }

    public static PruneScores scores(PruneRun run, Options options) {
        return scores(run.model(), run.train(), options, run.progress(), run.collective());
    }

    /** Data-parallel: this rank's {@link Collective#shard shard} of the batches, summed over ranks. */
    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Options options,
                                     Progress progress, Collective collective) {
        if (!collective.isDistributed()) return scores(model, batches, options, progress);
        if (model.inPatchMode()) throw new IllegalStateException("exact EAP runs the unpatched model; leave patch mode first");
        List<PromptPairBatch> mine = collective.shard(batches);
        PruneScores local = mine.isEmpty() ? PruneScores.zeros(model.graph()) : scores(model, mine, options, progress);
        return DataParallel.allReduceSum(collective, local);
    }

    /**
     * Computes the scores. Leaves the model's state (masks, patch mode) untouched.
     *
     * @throws IllegalStateException if the model is in patch mode
     */
    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Options options,
                                     Progress progress) {
        if (model.inPatchMode()) throw new IllegalStateException("exact EAP runs the unpatched model; leave patch mode first");
        Graph graph = model.graph();
        List<DestModule> dests = graph.destModules();
        Map<String, Tensor> sums = new LinkedHashMap<>();   // dest module → mask-shaped running sum
        try (PointerScope runScope = new PointerScope()) {
            // on the model's device, beside the gradients and differences added into them
            for (DestModule dm : dests) sums.put(dm.moduleName(), torch.zeros(dm.maskShape(), model.device().options(torch.ScalarType.Float)));
            long done = 0;
            for (PromptPairBatch batch : batches) {
                int size = batch.batchSize();
                int perPass = options.promptsPerPass() == 0 ? size : Math.min(options.promptsPerPass(), size);
                for (int start = 0; start < size; start += perPass) {
                    Progress.checkInterrupted("edge attribution patching");
                    int count = Math.min(perPass, size - start);
                    try (PointerScope step = new PointerScope()) {
                        addScores(model, batch.rows(start, count), size, options, sums);
                    }
                }
                progress.update("edge attribution patching", ++done, batches.size());
            }
            Map<String, float[]> out = new LinkedHashMap<>();
            for (DestModule dm : dests) out.put(dm.moduleName(), HostTensor.of(sums.get(dm.moduleName())).floats());
            return PruneScores.of(graph, out);
        }
    }

    /**
     * Adds the scores of {@code part}, prompts of a batch of {@code batchSize}, to {@code sums}: its loss is the batch
     * mean's share, {@code Σ_part / batchSize}, so that the parts of a batch add up to the whole batch's scores.
     */
    private static void addScores(PatchableModel model, PromptPairBatch part, int batchSize, Options options,
                                  Map<String, Tensor> sums) {
        boolean tokenGraph = model.graph().seqLen().isPresent();
        // corrupt − clean in the corrupt buffer, the clean one freed at once: one [nSrc, batch, seq, dModel] tensor
        // instead of three stays alive through the backward pass below (232 MB less at GPT-2 small's 16 × 15 tokens)
        Tensor diff = model.srcOutputs(Inputs.corrupt(part),
            Inputs.padding(part, Ablations.CleanCorrupt.CORRUPT), null);     // [nSrc, part, seq, dModel]
        Tensor clean = model.srcOutputs(Inputs.clean(part),
            Inputs.padding(part, Ablations.CleanCorrupt.CLEAN), null);
        diff.sub_(clean);
        clean.close();
        Map<String, Tensor> destInputs = destInputGradients(model, part, batchSize, options.answerDiff());
        for (DestModule dm : model.graph().destModules()) {
            Tensor grad = destInputs.get(dm.moduleName());  // [part, seq, (head,) dModel]
            Tensor srcDiff = diff.narrow(0, dm.inSrcStart(), dm.nIn());    // [nIn, part, seq, dModel]
            String g = dm.headed() ? "bshd" : "bsd";
            String h = dm.headed() ? "h" : "";
            Tensor score;
            if (tokenGraph && options.perPosition()) {
                score = torch.einsum(g + ",ibsd->s" + h + "i", new TensorVector(grad, srcDiff));
            } else {
                score = torch.einsum(g + ",ibsd->" + h + "i", new TensorVector(grad, srcDiff));
                if (tokenGraph) score = score.unsqueeze(0).expand(dm.maskShape());
            }
            sums.get(dm.moduleName()).add_(score);
        }
    }

    /**
     * One clean, unpatched forward and backward pass: the gradient of the loss at every destination module's input,
     * {@code [batch, seq, head, dModel]} for per-head destinations, {@code [batch, seq, dModel]} otherwise.
     */
    private static Map<String, Tensor> destInputGradients(PatchableModel model, PromptPairBatch batch, int batchSize,
                                                          boolean answerDiff) {
        Graph graph = model.graph();
        List<String> names = new ArrayList<>();
        List<Tensor> inputs = new ArrayList<>();
        Tensor logits = model.forwardWithHooks(Inputs.clean(batch), Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN),
            (name, value) -> {
                DestModule dm = graph.destModuleOrEmpty(name).orElse(null);
                if (dm == null) return value;
                Tensor x = value;
                if (dm.headed() && x.dim() == 3) {                                 // the shared residual, one copy per head
                    long[] s = x.shape();
                    x = x.unsqueeze(2).expand(s[0], s[1], dm.nodes().size(), s[2]);
                }
                // A copy of its own, so that the gradient at it is the gradient through this destination only
                // (the residual stream that feeds it also flows on past it). Before the first destination nothing
                // requires a gradient, so the copy becomes a leaf that does.
                x = x.clone();
                if (!x.requires_grad()) x.requires_grad_(true);
                names.add(name);
                inputs.add(x);
                return x;
            });
        Tensor loss = answerDiff
            ? TensorOps.batchAvgAnswerDiff(logits, batch).neg()
            : TensorOps.batchAvgAnswerVal(logits, batch, false).neg();
        // a part of a larger batch: its share of that batch's mean (the whole batch: the factor is exactly 1, skipped)
        if (batch.batchSize() != batchSize) loss = loss.mul(new Scalar((double) batch.batchSize() / batchSize));
        TensorVector grads = torch.grad(new TensorVector(loss), new TensorVector(inputs.toArray(new Tensor[0])),
            new TensorVector(), new BoolOptional(false), false, true);
        Map<String, Tensor> out = new LinkedHashMap<>();
        for (int i = 0; i < names.size(); i++) {
            Tensor g = grads.get(i);
            out.put(names.get(i), g.defined() ? g : torch.zeros_like(inputs.get(i)));
        }
        for (DestModule dm : graph.destModules()) {
            if (!out.containsKey(dm.moduleName())) {
                throw new IllegalStateException("the forward pass never reached destination hook " + dm.moduleName());
            }
        }
        return out;
    }
}
