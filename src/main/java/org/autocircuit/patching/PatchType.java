package org.autocircuit.patching;

/** Which edges {@code runCircuits} patches (SPEC §2, §6.1). */
public enum PatchType {
    /** Patch the circuit's edges: run on corrupt, give circuit edges their clean values. */
    EDGE_PATCH,
    /** Patch the complement: run on clean, ablate every edge outside the circuit. */
    TREE_PATCH;

    public String displayName() {
        return this == EDGE_PATCH ? "Edge Patch" : "Tree Patch";
    }
}
