package org.autocircuit.graph;

import java.util.OptionalInt;

/** Validation shared by {@link SrcNode} and {@link DestNode}; package-private helpers only. */
final class Nodes {

    private Nodes() {
    }

    static void checkCommon(String name, String moduleName, int layer, OptionalInt headIdx) {
        if (name == null || name.isBlank()) {
            throw new IllegalArgumentException("name must be non-blank, got " + (name == null ? "null" : "'" + name + "'"));
        }
        if (moduleName == null || moduleName.isBlank()) {
            throw new IllegalArgumentException("moduleName must be non-blank for node " + name + ", got "
                    + (moduleName == null ? "null" : "'" + moduleName + "'"));
        }
        if (layer < 0) {
            throw new IllegalArgumentException("layer must be >= 0, got " + layer + " for node " + name);
        }
        if (headIdx == null) {
            throw new IllegalArgumentException("headIdx must be OptionalInt.empty() rather than null for node " + name);
        }
        if (headIdx.isPresent() && headIdx.getAsInt() < 0) {
            throw new IllegalArgumentException("headIdx must be >= 0, got " + headIdx.getAsInt() + " for node " + name);
        }
    }
}
