package org.autocircuit.patching;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.autocircuit.util.HostTensor;

/**
 * The outputs of {@code runCircuits}: for every circuit size actually patched, the (sliced) model output
 * of every batch, keyed by batch key ({@code CircuitOutputs}).
 *
 * <p>Keys are the <em>real</em> number of edges in the circuit, which can exceed the requested count when
 * scores tie at the threshold (quirk 1 of docs/quirks.md). Counts iterate in ascending order; batches in the order they
 * were added. Values are host copies, so the object outlives every native scope.
 */
public final class CircuitOutputs {
    private final TreeMap<Integer, Map<Long, HostTensor>> outputs;

    private CircuitOutputs(TreeMap<Integer, Map<Long, HostTensor>> outputs) {
        this.outputs = outputs;
    }

    /** Edge counts in ascending order. */
    public Set<Integer> edgeCounts() {
        return Collections.unmodifiableSet(outputs.keySet());
    }

    /** batch key → output {@code [batch, (seq,) vocab]} for one edge count. */
    public Map<Long, HostTensor> batchOutputs(int edgeCount) {
        Map<Long, HostTensor> m = outputs.get(edgeCount);
        if (m == null) {
            throw new IllegalArgumentException("no outputs for edge count " + edgeCount + "; have " + outputs.keySet());
        }
        return Collections.unmodifiableMap(m);
    }

    public HostTensor output(int edgeCount, long batchKey) {
        HostTensor t = batchOutputs(edgeCount).get(batchKey);
        if (t == null) throw new IllegalArgumentException("no output for batch key " + batchKey + " at " + edgeCount + " edges");
        return t;
    }

    public boolean isEmpty() {
        return outputs.isEmpty();
    }

    public static Builder builder() {
        return new Builder();
    }

    /** Collects outputs as a run progresses. */
    public static final class Builder {
        private final TreeMap<Integer, Map<Long, HostTensor>> outputs = new TreeMap<>();

        public Builder put(int edgeCount, long batchKey, HostTensor output) {
            outputs.computeIfAbsent(edgeCount, k -> new LinkedHashMap<>()).put(batchKey, output);
            return this;
        }

        public CircuitOutputs build() {
            TreeMap<Integer, Map<Long, HostTensor>> copy = new TreeMap<>();
            outputs.forEach((k, v) -> copy.put(k, Collections.unmodifiableMap(new LinkedHashMap<>(v))));
            return new CircuitOutputs(copy);
        }
    }
}
