package org.autocircuit.algorithms;

import java.util.Map;

/**
 * One entry of the algorithm registry: how tasks, the CLI and reports refer to an algorithm, the
 * parameters bound to it, and the function that scores the edges.
 *
 * @param key        AutoCircuit's registry key, e.g. {@code "Edge Answer Logit Diff Gradient At Clean"}; the identity
 * @param name       the display name, e.g. {@code "Edge Attribution Patching"}
 * @param shortName  the short label used in plots and tables, e.g. {@code "EAP"}
 * @param listed     whether AutoCircuit puts it in {@code PRUNE_ALGOS} (some registered algorithms are not listed)
 * @param parameters the bound parameters, for reports and JSON output (insertion-ordered, values printable)
 * @param algorithm  the scoring function
 */
public record RegisteredAlgorithm(String key, String name, String shortName, boolean listed,
                                  Map<String, Object> parameters, PruneAlgorithm algorithm) implements PruneAlgorithm {
    public RegisteredAlgorithm {
        if (key == null || key.isBlank()) throw new IllegalArgumentException("algorithm key must not be blank");
        if (algorithm == null) throw new IllegalArgumentException("algorithm '" + key + "' has no function");
        name = name == null ? key : name;
        shortName = shortName == null ? name : shortName;
        parameters = java.util.Collections.unmodifiableMap(new java.util.LinkedHashMap<>(parameters));
    }

    @Override
    public org.autocircuit.graph.PruneScores scores(PruneRun run) {
        return algorithm.scores(run);
    }
}
