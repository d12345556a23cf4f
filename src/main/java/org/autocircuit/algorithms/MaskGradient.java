package org.autocircuit.algorithms;

import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.DataParallel;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.metrics.TensorOps;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.patching.SharedPrefix;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;

/**
 * Edge scores from the gradient of a task loss with respect to the edge masks.
 *
 * <p>At mask value 0 with logits and the average logit difference this is Edge Attribution Patching
 * (Syed, Rager and Conmy, 2023): the score of edge u→v is
 * {@code −Σ ∂(mean logit diff)/∂input_v · (patch_u − clean_u)}, a first-order estimate of what ablating
 * that edge does, from one corrupt pass, one patched pass and one backward pass per batch. With
 * {@code integratedGradSamples = n} the masks step through k/n for k = 0..n and the n+1 gradients are
 * summed (not averaged, no step size: quirk 5 of docs/quirks.md), as AutoCircuit does.
 */
public final class MaskGradient {
    private MaskGradient() {}

    /** What the loss reads from the output. */
    public enum GradFunction {
        LOGIT, PROB, LOGPROB,
        /** exp(logits) / Σ exp(logits), with the gradient flowing only through the numerator. */
        LOGIT_EXP;

        Tensor apply(Tensor logits) {
            return switch (this) {
                case LOGIT -> logits;
                case PROB -> logits.softmax(-1);
                case LOGPROB -> logits.log_softmax(-1);
                case LOGIT_EXP -> {
                    Tensor e = logits.exp();
                    yield e.div(e.sum(new long[] {-1}, true, new org.bytedeco.pytorch.ScalarTypeOptional()).detach());
                }
            };
        }

        public static GradFunction parse(String s) {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        }
    }

    /** How the answers become a loss. */
    public enum AnswerFunction {
        /** −(mean of answer − wrong-answer values). */
        AVG_DIFF,
        /** −(mean of answer values). */
        AVG_VAL,
        /** mean squared error against float answers (tracr x-proportion). */
        MSE;

        Tensor loss(Tensor tokenVals, PromptPairBatch batch) {
            return switch (this) {
                case AVG_DIFF -> TensorOps.batchAvgAnswerDiff(tokenVals, batch).neg();
                case AVG_VAL -> TensorOps.batchAvgAnswerVal(tokenVals, batch, false).neg();
                case MSE -> {
                    if (!(batch.answers() instanceof org.autocircuit.data.Answers.Stacked s)) {
                        throw new IllegalArgumentException("the mse answer function needs stacked answers");
                    }
                    Tensor target = s.values().toTensor().to(tokenVals.device(), torch.ScalarType.Float)
                        .reshape(tokenVals.shape());
                    yield tokenVals.sub(target).pow(new org.bytedeco.pytorch.Scalar(2)).mean();
                }
            };
        }

        public static AnswerFunction parse(String s) {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        }
    }

    /**
     * The parameters of one run. Exactly one of {@code maskVal} and {@code integratedGradSamples} is set.
     *
     * @param cleanCorrupt which side of each pair supplies per-batch ablation values (null for ZERO and dataset means)
     */
    public record Options(GradFunction gradFunction, AnswerFunction answerFunction, Double maskVal,
                          Integer integratedGradSamples, AblationType ablationType, Ablations.CleanCorrupt cleanCorrupt) {
        public Options {
            if ((maskVal == null) == (integratedGradSamples == null)) {
                throw new IllegalArgumentException("exactly one of maskVal and integratedGradSamples must be set; got "
                    + maskVal + " and " + integratedGradSamples);
            }
            if (integratedGradSamples != null && integratedGradSamples < 1) {
                throw new IllegalArgumentException("integratedGradSamples must be ≥ 1, got " + integratedGradSamples);
            }
        }

        /** Edge Attribution Patching: logits, average logit difference, masks at 0, corrupt resample values. */
        public static Options eap() {
            return new Options(GradFunction.LOGIT, AnswerFunction.AVG_DIFF, 0.0, null, AblationType.RESAMPLE,
                Ablations.CleanCorrupt.CORRUPT);
        }

        /** Integrated gradients of the logit difference with {@code n} samples (n+1 points). */
        public static Options integratedGradients(int n) {
            return new Options(GradFunction.LOGIT, AnswerFunction.AVG_DIFF, null, n, AblationType.RESAMPLE,
                Ablations.CleanCorrupt.CORRUPT);
        }
    }

    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Options options) {
        return scores(model, batches, options, Progress.NONE);
    }

    /** Computes the scores; leaves the masks at the last value used (quirk 2 of docs/quirks.md). */
    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Options options, Progress progress) {
        return scores(model, batches, options, progress, Collective.single());
    }

    /**
     * Data-parallel: each rank takes its {@link Collective#shard shard} of the batches and the per-edge sums are
     * added over ranks (the score is a sum over batches, so the result is one process's up to float rounding).
     * Dataset-mean ablations are computed from all batches on every rank, as one process would.
     */
    public static PruneScores scores(PatchableModel model, List<PromptPairBatch> batches, Options options, Progress progress,
                                     Collective collective) {
        if (!collective.isDistributed()) return scoresOf(model, batches, batches, options, progress);
        List<PromptPairBatch> mine = collective.shard(batches);
        PruneScores local = mine.isEmpty() ? PruneScores.zeros(model.graph())
            : scoresOf(model, options.ablationType().meanOverDataset() ? batches : mine, mine, options, progress);
        return DataParallel.allReduceSum(collective, local);
    }

    /** The scores summed over {@code batches}, with ablation values computed from {@code ablationBatches}. */
    private static PruneScores scoresOf(PatchableModel model, List<PromptPairBatch> ablationBatches,
                                        List<PromptPairBatch> batches, Options options, Progress progress) {
        return scoresOf(model, ablationBatches, batches, options, progress, true);
    }

    /**
     * {@link #scoresOf(PatchableModel, List, List, Options, Progress)}; with {@code sharedPrefix}, under RESAMPLE
     * ablation, each batch runs on the tokens after its clean and corrupt prompts' shared prefix, over a key/value
     * cache of it ({@link RunCircuits#sharedPrefixLength}). That is exact: the prefix's activations are the same on
     * both sides and do not depend on the masks (the model is causal and {@code patch − curr} is 0 there), so the
     * prefix contributes nothing to any mask gradient and only its keys and values reach later positions. False
     * runs the whole prompts (tests compare the two).
     */
    static PruneScores scoresOf(PatchableModel model, List<PromptPairBatch> ablationBatches, List<PromptPairBatch> batches,
                                Options options, Progress progress, boolean sharedPrefix) {
        return scoresOf(model, ablationBatches, batches, options, progress, sharedPrefix, true);
    }

    /** Integrated-gradient points at mask 1 skipped by {@link #allOnesPassIsThePatchRun} (tests). */
    static long allOnesPointsSkipped;

    /**
     * {@link #scoresOf(PatchableModel, List, List, Options, Progress, boolean)}; with {@code skipAllOnes}, an
     * integrated-gradients point at mask 1 is not run where {@link #allOnesPassIsThePatchRun} holds (false runs it:
     * tests compare the two).
     */
    static PruneScores scoresOf(PatchableModel model, List<PromptPairBatch> ablationBatches, List<PromptPairBatch> batches,
                                Options options, Progress progress, boolean sharedPrefix, boolean skipAllOnes) {
        AblationType type = options.ablationType();
        if (type.needsCleanCorrupt() != (options.cleanCorrupt() != null)) {
            throw new IllegalArgumentException(type + (type.needsCleanCorrupt()
                ? " needs cleanCorrupt (CLEAN or CORRUPT)" : " takes no cleanCorrupt, got " + options.cleanCorrupt()));
        }
        int points = options.integratedGradSamples() == null ? 1 : options.integratedGradSamples() + 1;
        long total = (long) points * batches.size(), done = 0;
        try (PointerScope runScope = new PointerScope()) {
            // Per-batch ablation values (resample, zero, batch means) are computed batch by batch and serve all of the
            // batch's points, so only one batch's [nSrc, batch, seq, dModel] values is alive at a time; dataset means
            // are one tensor for all batches.
            boolean perBatch = !options.ablationType().meanOverDataset();
            Map<Long, Tensor> shared = perBatch ? null : Ablations.batchSrcAblations(model, ablationBatches,
                options.ablationType(), options.cleanCorrupt());
            try (PatchableModel.MaskTraining training = model.trainMaskMode()) {
                for (PromptPairBatch batch : batches) {
                    int prefix = sharedPrefix && options.ablationType() == AblationType.RESAMPLE
                        ? RunCircuits.sharedPrefixLength(model, batch) : 0;
                    try (PointerScope batchScope = new PointerScope();
                         SharedPrefix cache = SharedPrefix.cache(model, batch, Ablations.CleanCorrupt.CLEAN, prefix)) {
                        Tensor input = cache.tail(Inputs.clean(batch));
                        Tensor padding = cache.tail(Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN));
                        Tensor patch = !perBatch ? shared.get(batch.key()) : prefix == 0
                            ? Ablations.batchSrcAblations(model, List.of(batch), options.ablationType(), options.cleanCorrupt())
                                .get(batch.key())
                            : Ablations.srcAblations(model, cache.tail(Inputs.input(batch, options.cleanCorrupt())),
                                cache.tail(Inputs.padding(batch, options.cleanCorrupt())), AblationType.RESAMPLE);
                        boolean skipOnes = skipAllOnes && options.maskVal() == null
                            && allOnesPassIsThePatchRun(model, batch, options);
                        // one current-output buffer for the batch's points (each pass writes every row before reading it)
                        Tensor currBuffer = torch.empty_like(patch);
                        for (int sample = 0; sample < points; sample++) {
                            double maskValue = options.maskVal() != null
                                ? options.maskVal() : (double) sample / options.integratedGradSamples();
                            model.setAllMasks(maskValue);
                            Progress.checkInterrupted("mask gradient");
                            if (skipOnes && maskValue == 1.0) {
                                // the pass would be the patch run itself: patch − curr is 0 up to rounding, and so
                                // is every mask gradient it would add
                                allOnesPointsSkipped++;
                                progress.update("mask gradient", ++done, total);
                                continue;
                            }
                            // Every mask holds maskValue: the source outputs' gradient through the patch differences
                            // is then -maskValue times the destination inputs' (0 at mask 0), carried without a
                            // per-source product (PatchableModel.patchModeAtUniformMasks).
                            try (PointerScope step = new PointerScope();
                                 PatchableModel.PatchMode mode = maskValue == 0.0
                                     ? model.patchModeAtZeroMasks(patch, currBuffer)
                                     : model.patchModeAtUniformMasks(patch, maskValue, currBuffer)) {
                                Tensor logits = model.forward(input, padding);
                                Tensor loss = options.answerFunction().loss(options.gradFunction().apply(logits), batch);
                                mode.backward(loss);   // also the Q/K/V mask gradients of heads that shared an input
                            }
                            progress.update("mask gradient", ++done, total);
                        }
                    }
                }
                return model.maskGradients();
            }
        }
    }

    /**
     * Whether the patched pass of {@code batch} with every mask at 1 is, in exact arithmetic, the run that produced its
     * patch values, so that every one of its mask gradients {@code Σ g · (patch − curr)} is 0 up to float rounding.
     * With every mask 1 each destination reads {@code x + Σ (patch − curr)} over its sources, and in a factorized graph
     * of a transformer x is the sum of those sources' current outputs plus terms that no prompt changes (the attention
     * output biases), so it reads the sum of their patch values: the patch run's input. By induction over the
     * destinations in pass order every source then reproduces its patch value. That needs resample ablation (patch
     * values from this batch's own run of the other side, computed here), the same padding on both sides (the pass
     * runs with the clean side's attention mask), and masks applied as set (no mask function, dropout or per-example
     * masks). Integrated gradients' last point is such a pass. Not in a model with norm scales frozen at the unpatched
     * run (Gemma-2's post-norms): there the all-1 pass norms every head with the clean run's scale, the patch values
     * with the patch run's own, so the heads' {@code patch − curr} is not 0.
     */
    static boolean allOnesPassIsThePatchRun(PatchableModel model, PromptPairBatch batch, Options options) {
        if (options.ablationType() != AblationType.RESAMPLE || !model.graph().factorized()
                || !model.model().residualIsSumOfSources() || !model.appliesMasksAsSet()
                || !model.model().normScaleHooks().isEmpty()) {
            return false;
        }
        try (PointerScope scope = new PointerScope()) {
            Tensor clean = Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
            Tensor side = Inputs.padding(batch, options.cleanCorrupt());
            if (clean == null || side == null) return clean == side;
            return java.util.Arrays.equals(clean.shape(), side.shape()) && torch.equal(clean, side);
        }
    }
}
