package org.autocircuit.patching;

/** Which edges {@code runCircuits} patches. */
public enum PatchType {
    /** Patch the circuit's edges: run on corrupt, give circuit edges their clean values. */
    EDGE_PATCH,
    /** Patch the complement: run on clean, ablate every edge outside the circuit. */
    TREE_PATCH;

    /** Parses {@code edge_patch}, {@code EDGE-PATCH}, {@code tree_patch}, ... naming the valid choices on error. */
    public static PatchType parse(String s) {
        String k = s == null ? "" : s.trim().toUpperCase(java.util.Locale.ROOT).replace('-', '_');
        for (PatchType t : values()) if (t.name().equals(k)) return t;
        throw new IllegalArgumentException("unknown patch type '" + s + "'; valid: edge_patch, tree_patch");
    }

    public String displayName() {
        return this == EDGE_PATCH ? "Edge Patch" : "Tree Patch";
    }
}
