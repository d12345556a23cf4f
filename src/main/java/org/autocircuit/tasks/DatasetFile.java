package org.autocircuit.tasks;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A parsed dataset file: the prompt pairs and the optional drawing labels and word
 * indices, exactly as written (no BOS shift). {@link Datasets#readFile} reads one,
 * {@link Datasets#write} writes one.
 *
 * @param prompts   at least one prompt pair
 * @param seqLabels one label per token before BOS is prepended; empty when the file has none
 * @param wordIdxs  name → token index before BOS is prepended, in file order; empty when the file has none
 */
public record DatasetFile(List<RawPromptPair> prompts, List<String> seqLabels, Map<String, Integer> wordIdxs) {

    public DatasetFile {
        if (prompts == null || prompts.isEmpty()) throw new IllegalArgumentException("a dataset needs at least one prompt");
        prompts = List.copyOf(prompts);
        seqLabels = seqLabels == null ? List.of() : List.copyOf(seqLabels);
        if (wordIdxs == null) {
            wordIdxs = Map.of();
        } else {
            for (var e : wordIdxs.entrySet()) {
                if (e.getKey() == null || e.getValue() == null) {
                    throw new IllegalArgumentException("word_idxs has a null key or value: " + e);
                }
            }
            wordIdxs = Collections.unmodifiableMap(new LinkedHashMap<>(wordIdxs));
        }
    }

    /** A dataset with prompts only. */
    public static DatasetFile of(List<RawPromptPair> prompts) {
        return new DatasetFile(prompts, List.of(), Map.of());
    }
}
