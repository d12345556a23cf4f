package org.autocircuit.graph;

import java.util.Locale;

/**
 * How the graph of a grouped-query-attention model gives K and V destinations, where several query heads read one
 * key/value head. Models without grouped-query attention have one graph either way.
 */
public enum GqaLayout {
    /**
     * One K and one V destination per query head, as AutoCircuit does with TransformerLens's
     * {@code ungroup_grouped_query_attention} (and MIB): each query head's copy of its key/value head's input is
     * patched on its own. The layout AutoCircuit's numbers are comparable with.
     */
    UNGROUPED,
    /**
     * One K and one V destination per key/value head: fewer edges and proportionally less patching work. At zero masks
     * the gradient of a grouped destination's mask is the sum of those of its query heads' ungrouped ones.
     */
    GROUPED;

    /** Parses {@code ungrouped} / {@code grouped}, naming the option in the error. */
    public static GqaLayout parse(String s, String option) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "ungrouped" -> UNGROUPED;
            case "grouped" -> GROUPED;
            default -> throw new IllegalArgumentException(option + " must be ungrouped or grouped, got '" + s + "'");
        };
    }
}
