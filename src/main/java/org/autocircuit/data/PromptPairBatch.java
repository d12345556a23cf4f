package org.autocircuit.data;

import org.autocircuit.util.HostTensor;

/**
 * A batch of clean/corrupt prompt pairs.
 *
 * @param key             a deterministic hash of the clean and corrupt contents: identical batches share
 *                        a key on purpose (results are stored once per key)
 * @param batchDivergeIdx the first position at which any clean and corrupt prompt of the batch differ
 * @param clean           {@code [batch, seq]} int64 token ids, or {@code [batch, seq, dModel]} float32
 *                        inputs for models without a tokenizer (the micro model)
 * @param corrupt         same shape as {@code clean}
 * @param cleanPadding    {@code [batch, seq]} int64 attention mask of the clean prompts (1 real token, 0
 *                        left padding), or {@code null} when no prompt of the batch is padded
 * @param corruptPadding  likewise for {@code corrupt}
 * @param answers         the correct answers
 * @param wrongAnswers    the wrong answers
 */
public record PromptPairBatch(
        long key,
        int batchDivergeIdx,
        HostTensor clean,
        HostTensor corrupt,
        HostTensor cleanPadding,
        HostTensor corruptPadding,
        Answers answers,
        Answers wrongAnswers) {

    public PromptPairBatch {
        if (!java.util.Arrays.equals(clean.shape(), corrupt.shape())) {
            throw new IllegalArgumentException("clean " + clean + " and corrupt " + corrupt + " differ in shape");
        }
        if (answers.batchSize() != clean.size(0) || wrongAnswers.batchSize() != clean.size(0)) {
            throw new IllegalArgumentException("answers of " + answers.batchSize() + " and wrong answers of "
                + wrongAnswers.batchSize() + " prompts for a batch of " + clean.size(0));
        }
    }

    public int batchSize() { return (int) clean.size(0); }

    public int seqLen() { return (int) clean.size(1); }

    /**
     * Prompts {@code [start, start + count)} of this batch, for a data-parallel rank that evaluates part of a batch.
     * The part keeps this batch's key (results and checkpoints name the whole batch), its sequence length and
     * padding, and its {@code batchDivergeIdx} (a lower bound for any subset: positions before it agree in every
     * prompt of the part too).
     */
    public PromptPairBatch rows(int start, int count) {
        if (start < 0 || count < 1 || start + (long) count > batchSize()) {
            throw new IndexOutOfBoundsException("prompts [" + start + ", " + (start + (long) count) + ") of a batch of "
                + batchSize() + " (a part needs at least one prompt)");
        }
        if (start == 0 && count == batchSize()) return this;
        return new PromptPairBatch(key, batchDivergeIdx, clean.rows(start, count), corrupt.rows(start, count),
            cleanPadding == null ? null : cleanPadding.rows(start, count),
            corruptPadding == null ? null : corruptPadding.rows(start, count),
            answers.rows(start, count), wrongAnswers.rows(start, count));
    }
}
