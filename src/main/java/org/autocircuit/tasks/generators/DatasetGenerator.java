package org.autocircuit.tasks.generators;

import org.autocircuit.tasks.DatasetFile;

/**
 * Writes prompt pairs for one task in AutoCircuit's dataset format: clean and corrupt prompts,
 * answers and wrong answers, and, where every prompt has the same token layout, {@code word_idxs} and
 * {@code seq_labels}. Generation is deterministic for a given {@code (n, seed)}.
 */
public interface DatasetGenerator {

    /** Command-line key, e.g. {@code "ioi"}. */
    String key();

    /** One line on what the prompts are and where the template comes from. */
    String description();

    /**
     * Generates {@code n} prompt pairs.
     *
     * @throws IllegalArgumentException if {@code n < 1}
     */
    DatasetFile generate(int n, long seed);
}
