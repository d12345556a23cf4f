package org.autocircuit.metrics;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.LongOptional;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;

/**
 * The answer arithmetic of AutoCircuit's {@code utils/tensor_ops.py}, over libtorch tensors.
 *
 * <p>Every method that returns a {@link Tensor} is built from differentiable ops (gather, mean, sub, div, exp), so the
 * gradient-based prune algorithms can use it as their loss, exactly as AutoCircuit's mask-gradient code uses
 * {@code batch_avg_answer_diff}. Those methods create their result and temporaries in the caller's current
 * {@code PointerScope}. The methods returning {@code double} free their temporaries in a scope of their own.
 *
 * <p>Answers come in two forms ({@link Answers}): {@link Answers.Stacked} (one tensor {@code [batch, nAns]}, or
 * {@code [batch, 5, 1]} for tracr) takes the vectorised path, and {@link Answers.Ragged} (one 1-D tensor per prompt)
 * the per-prompt path, as in AutoCircuit. Answer indices are copied to {@code vals}'s device inside each call.
 */
public final class TensorOps {
    private TensorOps() {}

    /**
     * AutoCircuit's {@code indices_vals}: gathers {@code vals} at {@code idx} along the last dimension.
     *
     * @param vals [..., vocab] logits (or any function of them)
     * @param idx  [..., nIdx] integer indices with the same rank as {@code vals}
     * @return [..., nIdx]
     */
    public static Tensor indicesVals(Tensor vals, Tensor idx) {
        if (vals.dim() != idx.dim()) {
            throw new IllegalArgumentException("idx must have the rank of vals: vals " + Arrays.toString(vals.shape())
                + ", idx " + Arrays.toString(idx.shape()));
        }
        return vals.gather(-1, idx.to(vals.device(), torch.ScalarType.Long));
    }

    /** AutoCircuit's {@code vocab_avg_val}: the mean of {@link #indicesVals}, a 0-d tensor. */
    public static Tensor vocabAvgVal(Tensor vals, Tensor idx) {
        return indicesVals(vals, idx).mean();
    }

    /**
     * AutoCircuit's {@code batch_avg_answer_val}: the average value of the (wrong) answers. Stacked answers: the mean over
     * all gathered values; ragged answers: the mean over prompts of each prompt's mean.
     *
     * @param vals        [batch, vocab] (or [batch, 5, vocab] for tracr)
     * @param wrongAnswer use {@code batch.wrongAnswers()} instead of {@code batch.answers()}
     * @return a 0-d tensor
     */
    public static Tensor batchAvgAnswerVal(Tensor vals, PromptPairBatch batch, boolean wrongAnswer) {
        checkBatch(vals, batch);
        Answers answers = wrongAnswer ? batch.wrongAnswers() : batch.answers();
        if (answers instanceof Answers.Stacked stacked) {
            return vocabAvgVal(vals, stacked.values().toTensor());
        }
        List<Tensor> promptAvgs = new ArrayList<>();
        for (int i = 0; i < answers.batchSize(); i++) {
            promptAvgs.add(vocabAvgVal(vals.select(0, i), answers.prompt(i).toTensor()));
        }
        return stack(promptAvgs).mean();
    }

    /** {@link #batchAvgAnswerVal} of the correct answers. */
    public static Tensor batchAvgAnswerVal(Tensor vals, PromptPairBatch batch) {
        return batchAvgAnswerVal(vals, batch, false);
    }

    /**
     * AutoCircuit's {@code batch_answer_diffs}: per prompt (and, for tracr, per position), the mean value of the correct
     * answers minus the mean value of the wrong answers. This is the mean of differences per prompt, not the difference of
     * batch means.
     *
     * @param vals [batch, vocab] (or [batch, 5, vocab] for tracr)
     * @return [batch] (or [batch, 5])
     */
    public static Tensor batchAnswerDiffs(Tensor vals, PromptPairBatch batch) {
        checkBatch(vals, batch);
        if (batch.answers() instanceof Answers.Stacked ans && batch.wrongAnswers() instanceof Answers.Stacked wrong) {
            Tensor ansAvgs = indicesVals(vals, ans.values().toTensor()).mean(-1L);       // [batch (, 5)]
            Tensor wrongAvgs = indicesVals(vals, wrong.values().toTensor()).mean(-1L);   // [batch (, 5)]
            return ansAvgs.sub(wrongAvgs);
        }
        // Ragged answers (or one side ragged, which AutoCircuit rejects): the slower per-prompt path.
        List<Tensor> ansAvgs = new ArrayList<>();
        List<Tensor> wrongAvgs = new ArrayList<>();
        for (int i = 0; i < batch.batchSize(); i++) {
            Tensor promptVals = vals.select(0, i);
            ansAvgs.add(vocabAvgVal(promptVals, batch.answers().prompt(i).toTensor()));
            wrongAvgs.add(vocabAvgVal(promptVals, batch.wrongAnswers().prompt(i).toTensor()));
        }
        return stack(ansAvgs).sub(stack(wrongAvgs));                                   // [batch]
    }

    /** AutoCircuit's {@code batch_avg_answer_diff}: the mean of {@link #batchAnswerDiffs}, a 0-d tensor. */
    public static Tensor batchAvgAnswerDiff(Tensor vals, PromptPairBatch batch) {
        return batchAnswerDiffs(vals, batch).mean();
    }

    /**
     * AutoCircuit's {@code batch_answer_diff_percents}: {@code diffs(pred) / diffs(target) · 100} per prompt.
     *
     * @param pred   [batch, vocab] circuit values
     * @param target [batch, vocab] full-model values
     * @return [batch] (or [batch, 5])
     */
    public static Tensor batchAnswerDiffPercents(Tensor pred, Tensor target, PromptPairBatch batch) {
        Tensor targetDiffs = batchAnswerDiffs(target, batch);
        Tensor predDiffs = batchAnswerDiffs(pred, batch);
        return predDiffs.div(targetDiffs).mul(new Scalar(100.0));
    }

    /**
     * AutoCircuit's {@code correct_answer_proportion}: the fraction of prompts whose highest logit is the (single) answer.
     * Argmax takes the first maximum, so a tie with an earlier token counts as wrong.
     *
     * @param logits [batch, vocab]
     * @throws IllegalArgumentException if a prompt has more than one answer
     */
    public static double correctAnswerProportion(Tensor logits, PromptPairBatch batch) {
        try (var scope = new PointerScope()) {
            return correctAnswerProportionTensor(logits, batch).item_double();
        }
    }

    /** {@link #correctAnswerProportion} as a 0-d float32 tensor in the caller's scope (not differentiable). */
    static Tensor correctAnswerProportionTensor(Tensor logits, PromptPairBatch batch) {
        checkBatch(logits, batch);
        if (batch.answers() instanceof Answers.Stacked stacked) {
            HostTensor ans = stacked.values();
            if (ans.size(-1) != 1) {
                throw new IllegalArgumentException("correct answer proportion needs one answer per prompt; batch.answers "
                    + "has shape " + Arrays.toString(ans.shape()));
            }
            Tensor maxIdxs = logits.argmax(new LongOptional(-1), true);                  // [batch (, 5), 1]
            Tensor answers = ans.toTensor().to(logits.device(), torch.ScalarType.Long);
            return maxIdxs.eq(answers).toType(torch.ScalarType.Float).mean();
        }
        List<Tensor> corrects = new ArrayList<>();
        for (int i = 0; i < batch.batchSize(); i++) {
            HostTensor ans = batch.answers().prompt(i);
            requireSingleAnswer(ans, i);
            Tensor maxIdx = logits.select(0, i).argmax(new LongOptional(-1), false);     // []
            corrects.add(maxIdx.eq(ans.toTensor().to(logits.device(), torch.ScalarType.Long)));  // [1]
        }
        return stack(corrects).toType(torch.ScalarType.Float).mean();
    }

    /**
     * AutoCircuit's {@code correct_answer_greater_than_incorrect_proportion}: the fraction of prompts whose answer logit is
     * at least every wrong-answer logit (the argmax of {@code [answer, wrong...]} is 0; argmax takes the first maximum, so
     * ties go to the correct answer).
     *
     * @param logits [batch, vocab]
     * @throws IllegalArgumentException if a prompt has more than one answer
     */
    public static double correctAnswerGreaterThanIncorrectProportion(Tensor logits, PromptPairBatch batch) {
        try (var scope = new PointerScope()) {
            return correctAnswerGreaterThanIncorrectProportionTensor(logits, batch).item_double();
        }
    }

    /** {@link #correctAnswerGreaterThanIncorrectProportion} as a 0-d float32 tensor in the caller's scope. */
    static Tensor correctAnswerGreaterThanIncorrectProportionTensor(Tensor logits, PromptPairBatch batch) {
        checkBatch(logits, batch);
        if (batch.answers() instanceof Answers.Stacked ans && batch.wrongAnswers() instanceof Answers.Stacked wrong) {
            if (ans.values().size(-1) != 1) {
                throw new IllegalArgumentException("correct-greater-than-incorrect needs one answer per prompt; "
                    + "batch.answers has shape " + Arrays.toString(ans.values().shape()));
            }
            Tensor answerLogits = indicesVals(logits, ans.values().toTensor());        // [batch, 1]
            Tensor wrongLogits = indicesVals(logits, wrong.values().toTensor());       // [batch, nWrong]
            Tensor combined = torch.cat(new TensorVector(answerLogits, wrongLogits), -1);  // [batch, 1 + nWrong]
            return combined.argmax(new LongOptional(-1), false).eq(new Scalar(0L))
                .toType(torch.ScalarType.Float).mean();
        }
        List<Tensor> corrects = new ArrayList<>();
        for (int i = 0; i < batch.batchSize(); i++) {
            HostTensor ans = batch.answers().prompt(i);
            requireSingleAnswer(ans, i);
            Tensor promptLogits = logits.select(0, i);                                 // [vocab]
            Tensor answerLogits = indicesVals(promptLogits, ans.toTensor());           // [1]
            Tensor wrongLogits = indicesVals(promptLogits, batch.wrongAnswers().prompt(i).toTensor());  // [nWrong_i]
            Tensor combined = torch.cat(new TensorVector(answerLogits, wrongLogits), -1);
            corrects.add(combined.argmax(new LongOptional(-1), false).eq(new Scalar(0L)));  // []
        }
        return stack(corrects).toType(torch.ScalarType.Float).mean();
    }

    /**
     * AutoCircuit's {@code multibatch_kl_div}: {@code Σ exp(target)·(target − input) / prod(shape[:-1])}, the mean over
     * rows of KL(target ‖ input). Both arguments are log-probabilities over the last dimension; the other dimensions are
     * batch dimensions.
     *
     * @param inputLogprobs  [..., vocab]
     * @param targetLogprobs [..., vocab], the same shape
     * @return a 0-d tensor (differentiable in both arguments)
     */
    public static Tensor multibatchKlDiv(Tensor inputLogprobs, Tensor targetLogprobs) {
        long[] shape = inputLogprobs.shape();
        if (!Arrays.equals(shape, targetLogprobs.shape())) {
            throw new IllegalArgumentException("inputLogprobs " + Arrays.toString(shape) + " and targetLogprobs "
                + Arrays.toString(targetLogprobs.shape()) + " differ in shape");
        }
        if (shape.length == 0) {
            throw new IllegalArgumentException("inputLogprobs must have a class dimension, got a scalar");
        }
        long nRows = 1;
        for (int d = 0; d < shape.length - 1; d++) nRows *= shape[d];
        Tensor klSum = targetLogprobs.exp().mul(targetLogprobs.sub(inputLogprobs)).sum();
        return klSum.div(new Scalar((double) nRows));
    }

    /** Stacks 0-d (or equal-shaped) tensors along a new first dimension, in the caller's scope. */
    static Tensor stack(List<Tensor> tensors) {
        return torch.stack(new TensorVector(tensors.toArray(new Tensor[0])));
    }

    private static void checkBatch(Tensor vals, PromptPairBatch batch) {
        if (vals.dim() < 1 || vals.size(0) != batch.batchSize()) {
            throw new IllegalArgumentException("vals must have the batch size " + batch.batchSize()
                + " as its first dimension, got shape " + Arrays.toString(vals.shape()));
        }
    }

    private static void requireSingleAnswer(HostTensor ans, int prompt) {
        if (ans.dim() != 1 || ans.size(0) != 1) {
            throw new IllegalArgumentException("batch.answers of prompt " + prompt + " must have shape [1], got "
                + Arrays.toString(ans.shape()));
        }
    }
}
