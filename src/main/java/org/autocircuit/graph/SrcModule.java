package org.autocircuit.graph;

/**
 * A module that hosts src nodes; its wrapper copies its output into rows
 * {@code [srcStart, srcStart + count)} of the shared src-output tensor. AutoCircuit requires the
 * src indices of one module to be contiguous (it stores them as a slice), and the graph factories
 * guarantee it.
 *
 * @param moduleName TransformerLens hook name
 * @param layer      graph layer of its src nodes
 * @param srcStart   first global src index
 * @param count      number of src nodes (heads, or 1)
 * @param headed     true when each src node is one head slice of the module output
 */
public record SrcModule(String moduleName, int layer, int srcStart, int count, boolean headed) {

    public SrcModule {
        if (moduleName == null || moduleName.isBlank()) {
            throw new IllegalArgumentException("moduleName must be non-blank, got "
                    + (moduleName == null ? "null" : "'" + moduleName + "'"));
        }
        if (layer < 0) {
            throw new IllegalArgumentException("layer must be >= 0, got " + layer + " for " + moduleName);
        }
        if (srcStart < 0) {
            throw new IllegalArgumentException("srcStart must be >= 0, got " + srcStart + " for " + moduleName);
        }
        if (count <= 0) {
            throw new IllegalArgumentException("count must be positive, got " + count + " for " + moduleName);
        }
        if (!headed && count != 1) {
            throw new IllegalArgumentException("an unheaded module hosts exactly one src, got count=" + count
                    + " for " + moduleName);
        }
    }

    /** One past the last global src index. */
    public int srcEnd() {
        return srcStart + count;
    }
}
