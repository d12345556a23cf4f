package org.autocircuit.data;

import java.util.Arrays;
import org.autocircuit.util.HostTensor;

/**
 * One clean/corrupt prompt pair, ready for batching ({@code PromptPair}).
 *
 * @param clean          {@code [seq]} int64 token ids, or {@code [seq, dModel]} float32 / {@code [seq]} int64 values
 *                       for models without a tokenizer (micro model, tracr)
 * @param corrupt        same shape and dtype as {@code clean}
 * @param answers        {@code [nAns]} (tracr: {@code [5, 1]}) correct answers: token ids or values
 * @param wrongAnswers   the wrong answers; their number may differ from {@code answers}
 * @param cleanPadding   {@code [seq]} int64 attention mask (1 real token, 0 left padding), or {@code null} when
 *                       the prompt is not padded
 * @param corruptPadding likewise for {@code corrupt}
 */
public record PromptPair(
        HostTensor clean,
        HostTensor corrupt,
        HostTensor answers,
        HostTensor wrongAnswers,
        HostTensor cleanPadding,
        HostTensor corruptPadding) {

    public PromptPair {
        if (clean == null || corrupt == null || answers == null || wrongAnswers == null) {
            throw new IllegalArgumentException("clean, corrupt, answers and wrongAnswers must not be null");
        }
        if (!Arrays.equals(clean.shape(), corrupt.shape()) || clean.dtype() != corrupt.dtype()) {
            throw new IllegalArgumentException("clean " + clean + " and corrupt " + corrupt + " differ in shape or dtype");
        }
        if (clean.dim() < 1 || clean.size(0) < 1) {
            throw new IllegalArgumentException("a prompt needs at least one position, got clean " + clean);
        }
        checkPadding("cleanPadding", cleanPadding, clean);
        checkPadding("corruptPadding", corruptPadding, clean);
    }

    /** A pair without padding. */
    public PromptPair(HostTensor clean, HostTensor corrupt, HostTensor answers, HostTensor wrongAnswers) {
        this(clean, corrupt, answers, wrongAnswers, null, null);
    }

    /** Number of positions. */
    public int seqLen() {
        return (int) clean.size(0);
    }

    private static void checkPadding(String name, HostTensor mask, HostTensor prompt) {
        if (mask == null) return;
        if (mask.dtype() != HostTensor.DType.INT64 || mask.dim() != 1 || mask.size(0) != prompt.size(0)) {
            throw new IllegalArgumentException(name + " must be an int64 [" + prompt.size(0) + "] mask, got " + mask);
        }
        for (long v : mask.longs()) {
            if (v != 0 && v != 1) throw new IllegalArgumentException(name + " must hold only 0 and 1, got " + v);
        }
    }
}
