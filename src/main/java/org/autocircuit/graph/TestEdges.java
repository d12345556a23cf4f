package org.autocircuit.graph;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * AutoCircuit's {@code TestEdges = EdgeCounts | List[int | float]}: either a named rule or an
 * explicit list of counts, where integers are edge counts and floating-point values are
 * fractions of all edges. The Java type of each element, not its value, decides:
 * {@code 1} is one edge, {@code 1.0} is every edge.
 */
public sealed interface TestEdges {

    /** A named rule. */
    record Counts(EdgeCounts kind) implements TestEdges {
        public Counts {
            if (kind == null) {
                throw new IllegalArgumentException("kind must not be null");
            }
        }
    }

    /**
     * An explicit list: {@link Integer} (also Long, Short, Byte) values are kept as counts,
     * {@link Double} / {@link Float} values f become {@code (int) (nEdges * f)}.
     */
    record Explicit(List<Number> values) implements TestEdges {
        public Explicit {
            if (values == null) {
                throw new IllegalArgumentException("values must not be null");
            }
            List<Number> copy = new ArrayList<>(values.size());
            for (int i = 0; i < values.size(); i++) {
                Number v = values.get(i);
                if (!(v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte
                        || v instanceof Double || v instanceof Float)) {
                    throw new IllegalArgumentException("values[" + i + "] must be an integer count or a "
                            + "floating-point fraction, got " + (v == null ? "null" : v.getClass().getName()));
                }
                copy.add(v);
            }
            values = List.copyOf(copy);
        }
    }

    /** A named rule. */
    static TestEdges of(EdgeCounts kind) {
        return new Counts(kind);
    }

    /** An explicit list of counts and/or fractions. */
    static TestEdges of(Number... values) {
        return new Explicit(values == null ? null : Arrays.asList(values));
    }
}
