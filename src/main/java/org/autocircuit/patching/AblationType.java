package org.autocircuit.patching;

import java.util.Arrays;
import java.util.Locale;
import java.util.stream.Collectors;

/**
 * What an ablated (patched) edge carries instead of its current value.
 */
public enum AblationType {
    /** The source's activation on the other prompt of the pair (clean ↔ corrupt). */
    RESAMPLE,
    /** Zeros. */
    ZERO,
    /** Per-position mean over every clean prompt of the data set. */
    TOKENWISE_MEAN_CLEAN,
    /** Per-position mean over every corrupt prompt of the data set. */
    TOKENWISE_MEAN_CORRUPT,
    /** Average of the two dataset means above. */
    TOKENWISE_MEAN_CLEAN_AND_CORRUPT,
    /** Per-position mean over the batch. */
    BATCH_TOKENWISE_MEAN,
    /** Mean over the batch and every position. */
    BATCH_ALL_TOK_MEAN;

    /** The ablation value is one mean over the whole data set, shared by every batch. */
    public boolean meanOverDataset() {
        return this == TOKENWISE_MEAN_CLEAN || this == TOKENWISE_MEAN_CORRUPT || this == TOKENWISE_MEAN_CLEAN_AND_CORRUPT;
    }

    public boolean cleanDataset() {
        return this == TOKENWISE_MEAN_CLEAN || this == TOKENWISE_MEAN_CLEAN_AND_CORRUPT;
    }

    public boolean corruptDataset() {
        return this == TOKENWISE_MEAN_CORRUPT || this == TOKENWISE_MEAN_CLEAN_AND_CORRUPT;
    }

    /** Whether the values come from one side of each prompt pair (so a clean/corrupt choice is needed). */
    public boolean needsCleanCorrupt() {
        return this == RESAMPLE || this == BATCH_TOKENWISE_MEAN || this == BATCH_ALL_TOK_MEAN;
    }

    /** AutoCircuit's display name: "Tokenwise Mean Corrupt". */
    public String displayName() {
        return Arrays.stream(name().split("_"))
            .map(w -> w.charAt(0) + w.substring(1).toLowerCase(Locale.ROOT))
            .collect(Collectors.joining(" "));
    }

    /** Parses a name case-insensitively ("resample", "TOKENWISE_MEAN_CORRUPT", "tokenwise-mean-corrupt"). */
    public static AblationType parse(String s) {
        String key = s.trim().toUpperCase(Locale.ROOT).replace('-', '_').replace(' ', '_');
        try {
            return valueOf(key);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown ablation type '" + s + "'; valid: "
                + Arrays.stream(values()).map(v -> v.name().toLowerCase(Locale.ROOT)).collect(Collectors.joining(", ")));
        }
    }
}
