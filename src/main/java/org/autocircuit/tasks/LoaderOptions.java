package org.autocircuit.tasks;

/**
 * The options of AutoCircuit's {@code load_datasets_from_json}, with its defaults.
 *
 * <p>{@code batch_size} may be a {@code (train, test)} pair in Python; here it is always two fields.
 * Build with {@link #builder()}:
 * <pre>{@code
 * LoaderOptions opts = LoaderOptions.builder().batchSize(8).trainTestSize(16, 16).returnSeqLength(true)
 *     .shuffle(false).build();
 * }</pre>
 *
 * @param prependBos      prepend the tokenizer's BOS string to every prompt and shift {@code word_idxs} by one
 *                        (needs a tokenizer)
 * @param trainBatchSize  prompts per train batch (≥ 1)
 * @param testBatchSize   prompts per test batch (≥ 1)
 * @param trainSize       number of train prompts (≥ 0); the train batches drop the remainder
 * @param testSize        number of test prompts (≥ 0); the test set may be empty
 * @param returnSeqLength set the loaders' {@code seqLen} to the padded prompt length (token-position circuits);
 *                        then no prompt may be padded
 * @param tailDivergence  cut the prompts at the first position where any clean and corrupt prompt differ; the
 *                        common prefix goes to a key/value cache (needs a tokenizer)
 * @param shuffle         shuffle the prompts with CPython's {@code random.shuffle} before splitting
 * @param randomSeed      seed of that shuffle ({@code random.seed(randomSeed)})
 * @param pad             left-pad prompts of different lengths with the tokenizer's pad id
 */
public record LoaderOptions(
        boolean prependBos,
        int trainBatchSize,
        int testBatchSize,
        int trainSize,
        int testSize,
        boolean returnSeqLength,
        boolean tailDivergence,
        boolean shuffle,
        long randomSeed,
        boolean pad) {

    public LoaderOptions {
        if (trainBatchSize < 1) throw new IllegalArgumentException("trainBatchSize must be ≥ 1, got " + trainBatchSize);
        if (testBatchSize < 1) throw new IllegalArgumentException("testBatchSize must be ≥ 1, got " + testBatchSize);
        if (trainSize < 0) throw new IllegalArgumentException("trainSize must be ≥ 0, got " + trainSize);
        if (testSize < 0) throw new IllegalArgumentException("testSize must be ≥ 0, got " + testSize);
        if ((long) trainSize + testSize == 0) {
            throw new IllegalArgumentException("trainSize + testSize must be ≥ 1, got 0 (nothing to load)");
        }
        if ((long) trainSize + testSize > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("trainSize + testSize overflows: " + trainSize + " + " + testSize);
        }
    }

    /** AutoCircuit's defaults: prepend_bos, batch 32, sizes (128, 128), shuffle with seed 42, pad. */
    public static Builder builder() {
        return new Builder();
    }

    /** A builder that starts from these options. */
    public Builder toBuilder() {
        return new Builder().prependBos(prependBos).trainBatchSize(trainBatchSize).testBatchSize(testBatchSize)
            .trainSize(trainSize).testSize(testSize).returnSeqLength(returnSeqLength).tailDivergence(tailDivergence)
            .shuffle(shuffle).randomSeed(randomSeed).pad(pad);
    }

    /** {@code trainSize + testSize}: how many prompts the loader keeps. */
    public int totalSize() {
        return trainSize + testSize;
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private boolean prependBos = true;
        private int trainBatchSize = 32;
        private int testBatchSize = 32;
        private int trainSize = 128;
        private int testSize = 128;
        private boolean returnSeqLength = false;
        private boolean tailDivergence = false;
        private boolean shuffle = true;
        private long randomSeed = 42;
        private boolean pad = true;

        private Builder() {
        }

        public Builder prependBos(boolean v) { prependBos = v; return this; }

        /** Sets both the train and the test batch size (Python's int {@code batch_size}). */
        public Builder batchSize(int v) { trainBatchSize = v; testBatchSize = v; return this; }

        /** Python's tuple {@code batch_size=(train, test)}. */
        public Builder batchSize(int train, int test) { trainBatchSize = train; testBatchSize = test; return this; }

        public Builder trainBatchSize(int v) { trainBatchSize = v; return this; }

        public Builder testBatchSize(int v) { testBatchSize = v; return this; }

        /** Python's {@code train_test_size=(train, test)}. */
        public Builder trainTestSize(int train, int test) { trainSize = train; testSize = test; return this; }

        public Builder trainSize(int v) { trainSize = v; return this; }

        public Builder testSize(int v) { testSize = v; return this; }

        public Builder returnSeqLength(boolean v) { returnSeqLength = v; return this; }

        public Builder tailDivergence(boolean v) { tailDivergence = v; return this; }

        public Builder shuffle(boolean v) { shuffle = v; return this; }

        public Builder randomSeed(long v) { randomSeed = v; return this; }

        public Builder pad(boolean v) { pad = v; return this; }

        public LoaderOptions build() {
            return new LoaderOptions(prependBos, trainBatchSize, testBatchSize, trainSize, testSize, returnSeqLength,
                tailDivergence, shuffle, randomSeed, pad);
        }
    }
}
