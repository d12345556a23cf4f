package org.autocircuit.metrics;

import org.bytedeco.pytorch.Tensor;

/** The function applied to the logits before an answer metric: AutoCircuit's {@code prob_func} literal. */
public enum ProbFunc {
    LOGITS("logits"),
    SOFTMAX("softmax"),
    LOG_SOFTMAX("log_softmax");

    private final String key;

    ProbFunc(String key) {
        this.key = key;
    }

    /** The Python literal ({@code "logits"}, {@code "softmax"}, {@code "log_softmax"}). */
    public String key() {
        return key;
    }

    /**
     * Applies the function over the last (vocabulary) dimension. The result lives in the caller's scope; for
     * {@link #LOGITS} it is {@code logits} itself.
     */
    public Tensor apply(Tensor logits) {
        return switch (this) {
            case LOGITS -> logits;
            case SOFTMAX -> logits.softmax(-1);
            case LOG_SOFTMAX -> logits.log_softmax(-1);
        };
    }

    /** Looks a function up by its Python literal. */
    public static ProbFunc fromKey(String key) {
        for (ProbFunc f : values()) {
            if (f.key.equals(key)) return f;
        }
        throw new IllegalArgumentException("prob_func must be one of logits, softmax, log_softmax; got " + key);
    }
}
