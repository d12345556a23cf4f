package org.autocircuit.graph;

/**
 * The named ways of choosing which circuit sizes (edge counts) to evaluate.
 */
public enum EdgeCounts {
    /** Every count 0..nEdges: exhaustive, for small graphs (AutoCircuit's default up to 200 edges). */
    ALL,
    /** 1..9, 10, 20..90, 100, 200..900, ... below nEdges: a log-spaced curve for large graphs. */
    LOGARITHMIC,
    /**
     * One count per distinct |score|, cumulative from the largest: with few distinct scores
     * (e.g. ground-truth or binary circuits) only these counts give distinct circuits, because
     * ties are always patched together.
     */
    GROUPS;

    /** This kind as a {@link TestEdges} argument. */
    public TestEdges asTestEdges() {
        return new TestEdges.Counts(this);
    }
}
