package org.autocircuit.graph;

import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One score per edge, as AutoCircuit's {@code PruneScores = Dict[dest module -> tensor shaped
 * like its patch mask]}. Every pruning algorithm returns one; a larger |score|
 * means a more important edge, and circuits of k edges are the k largest |scores|.
 *
 * <p>Held on the host as one {@code float[]} in {@link Graph#edges()} order, which is the
 * concatenation of every dest module's row-major mask in canonical module order. That makes
 * the value immutable, cheap to compare and serialise, and free of native scopes; the patching
 * code uploads per-module slices ({@link #module(String)}) when it needs tensors.
 *
 * <p>Immutable: every accessor returns a copy and {@link #with(Edge, float)} copies on write.
 */
public final class PruneScores {

    /** A float-to-float function, because java.util.function has none for primitive floats. */
    @FunctionalInterface
    public interface FloatUnaryOperator {
        float applyAsFloat(float v);
    }

    private final Graph graph;
    /** One score per edge, in graph.edges() order. Never exposed. */
    private final float[] values;
    /** Lazily computed |values| sorted descending; benign race (same result from any thread). */
    private volatile float[] descAbsCache;

    private PruneScores(Graph graph, float[] values) {
        this.graph = graph;
        this.values = values;
    }

    // ---- factories ----

    /** All scores 0 ({@code model.new_prune_scores()}). */
    public static PruneScores zeros(Graph g) {
        return filled(g, 0f);
    }

    /** All scores {@code v} ({@code model.new_prune_scores(init_val=v)}). */
    public static PruneScores filled(Graph g, float v) {
        Objects.requireNonNull(g, "graph");
        float[] values = new float[g.nEdges()];
        if (v != 0f || Float.floatToRawIntBits(v) != 0) {
            Arrays.fill(values, v);
        }
        return new PruneScores(g, values);
    }

    /**
     * From AutoCircuit's dict form: each dest module's mask-shaped scores flattened row-major.
     *
     * @throws IllegalArgumentException if a module is missing or unknown, or has the wrong length
     */
    public static PruneScores of(Graph g, Map<String, float[]> byModule) {
        Objects.requireNonNull(g, "graph");
        if (byModule == null) {
            throw new IllegalArgumentException("byModule must not be null");
        }
        for (String name : byModule.keySet()) {
            if (g.destModuleOrEmpty(name).isEmpty()) {
                throw new IllegalArgumentException("unknown dest module '" + name + "'; valid: " + g.destModuleNames());
            }
        }
        float[] values = new float[g.nEdges()];
        List<DestModule> modules = g.destModules();
        for (int m = 0; m < modules.size(); m++) {
            DestModule dm = modules.get(m);
            float[] v = byModule.get(dm.moduleName());
            if (v == null) {
                throw new IllegalArgumentException("missing scores for dest module '" + dm.moduleName()
                        + "' (expected " + dm.maskNumel() + " values, shape " + Arrays.toString(dm.maskShape()) + ")");
            }
            if (v.length != dm.maskNumel()) {
                throw new IllegalArgumentException("dest module '" + dm.moduleName() + "' needs " + dm.maskNumel()
                        + " values (shape " + Arrays.toString(dm.maskShape()) + "), got " + v.length);
            }
            System.arraycopy(v, 0, values, g.moduleOffset(m), v.length);
        }
        return new PruneScores(g, values);
    }

    /** From one value per edge in {@link Graph#edges()} order (the inverse of {@link #flat()}). */
    public static PruneScores ofFlat(Graph g, float[] flatInEdgeOrder) {
        Objects.requireNonNull(g, "graph");
        if (flatInEdgeOrder == null || flatInEdgeOrder.length != g.nEdges()) {
            throw new IllegalArgumentException("flatInEdgeOrder needs " + g.nEdges() + " values, got "
                    + (flatInEdgeOrder == null ? "null" : flatInEdgeOrder.length));
        }
        return new PruneScores(g, flatInEdgeOrder.clone());
    }

    /**
     * {@code circuit_prune_scores(edges=...)}: 1.0 for every listed edge, 0 elsewhere. Each element
     * is an {@link Edge} of this graph, or an edge name, which selects that edge at every token
     * position (as AutoCircuit matches names).
     *
     * @throws IllegalArgumentException for an unknown name, a foreign edge, or another element type
     */
    public static PruneScores circuit(Graph g, Collection<?> edgesOrNames) {
        Objects.requireNonNull(g, "graph");
        if (edgesOrNames == null) {
            throw new IllegalArgumentException("edgesOrNames must not be null");
        }
        float[] values = new float[g.nEdges()];
        for (Object o : edgesOrNames) {
            if (o instanceof Edge e) {
                values[g.edgeIndex(e)] = 1f;
            } else if (o instanceof String name) {
                for (int i : g.edgeIndicesNamed(name)) {
                    values[i] = 1f;
                }
            } else {
                throw new IllegalArgumentException("edgesOrNames may hold Edge or String, got "
                        + (o == null ? "null" : o.getClass().getName() + " " + o));
            }
        }
        return new PruneScores(g, values);
    }

    /**
     * {@code circuit_prune_scores(edge_dict=...)} keyed by edge name: each named edge gets its
     * value at every position. This is the intended behaviour; AutoCircuit's name branch looks the
     * score up by Edge and throws (quirk 8 of docs/quirks.md).
     *
     * @throws IllegalArgumentException for an unknown name or a null value
     */
    public static PruneScores circuit(Graph g, Map<String, Float> scoreByEdgeName) {
        Objects.requireNonNull(g, "graph");
        if (scoreByEdgeName == null) {
            throw new IllegalArgumentException("scoreByEdgeName must not be null");
        }
        float[] values = new float[g.nEdges()];
        for (Map.Entry<String, Float> e : scoreByEdgeName.entrySet()) {
            if (e.getValue() == null) {
                throw new IllegalArgumentException("score for edge '" + e.getKey() + "' is null");
            }
            for (int i : g.edgeIndicesNamed(e.getKey())) {
                values[i] = e.getValue();
            }
        }
        return new PruneScores(g, values);
    }

    // ---- accessors ----

    /** The graph whose edges these scores belong to. */
    public Graph graph() {
        return graph;
    }

    /** The score of one edge ({@code edge.prune_score(ps)}). */
    public float score(Edge e) {
        return values[graph.edgeIndex(e)];
    }

    /** The scores of one dest module, flattened row-major in its mask layout; a copy. */
    public float[] module(String moduleName) {
        int m = moduleIndex(moduleName);
        int from = graph.moduleOffset(m);
        return Arrays.copyOfRange(values, from, graph.moduleOffset(m + 1));
    }

    /** The mask shape of one dest module (the shape of {@link #module(String)} as a tensor). */
    public long[] shape(String moduleName) {
        return graph.destModule(moduleName).maskShape();
    }

    /** Dest module names in canonical order (the dict keys). */
    public List<String> moduleNames() {
        return graph.destModuleNames();
    }

    /** Every module's scores as a map in canonical order (AutoCircuit's dict form); fresh arrays. */
    public Map<String, float[]> byModule() {
        Map<String, float[]> out = new LinkedHashMap<>();
        for (String name : moduleNames()) {
            out.put(name, module(name));
        }
        return Collections.unmodifiableMap(out);
    }

    /** One score per edge in {@link Graph#edges()} order ({@code flat_prune_scores}); a copy. */
    public float[] flat() {
        return values.clone();
    }

    /** |scores| sorted descending ({@code desc_prune_scores}); a copy. NaN sorts first, as in torch. */
    public float[] descAbs() {
        return descAbsSorted().clone();
    }

    private float[] descAbsSorted() {
        float[] cached = descAbsCache;
        if (cached == null) {
            float[] abs = new float[values.length];
            for (int i = 0; i < abs.length; i++) {
                abs[i] = Math.abs(values[i]);
            }
            Arrays.sort(abs);
            for (int i = 0, j = abs.length - 1; i < j; i++, j--) {
                float t = abs[i];
                abs[i] = abs[j];
                abs[j] = t;
            }
            descAbsCache = cached = abs;
        }
        return cached;
    }

    /**
     * {@code prune_scores_threshold(ps, k)}: +Infinity for k = 0 (no edge passes), else the k-th
     * largest |score| (1-based). Every edge with |score| &gt;= the threshold is in the circuit, so
     * ties can admit more than k edges (quirk 1 of docs/quirks.md).
     *
     * @throws IllegalArgumentException if k &lt; 0 or k &gt; nEdges
     */
    public float threshold(int k) {
        if (k < 0 || k > values.length) {
            throw new IllegalArgumentException("k must be in [0, " + values.length + "], got " + k);
        }
        return k == 0 ? Float.POSITIVE_INFINITY : descAbsSorted()[k - 1];
    }

    /** Number of edges whose |score| is at least {@code threshold}: the edges a circuit really patches. */
    public int countAtLeast(float threshold) {
        int n = 0;
        for (float v : values) {
            if (Math.abs(v) >= threshold) {
                n++;
            }
        }
        return n;
    }

    /** A copy with one edge's score replaced. */
    public PruneScores with(Edge e, float v) {
        float[] copy = values.clone();
        copy[graph.edgeIndex(e)] = v;
        return new PruneScores(graph, copy);
    }

    /** A copy with {@code f} applied to every score. */
    public PruneScores map(FloatUnaryOperator f) {
        Objects.requireNonNull(f, "f");
        float[] copy = new float[values.length];
        for (int i = 0; i < copy.length; i++) {
            copy[i] = f.applyAsFloat(values[i]);
        }
        return new PruneScores(graph, copy);
    }

    /** Number of non-zero scores (NaN counts as non-zero, as in torch.count_nonzero). */
    public int countNonZero() {
        int n = 0;
        for (float v : values) {
            if (v != 0f) {
                n++;
            }
        }
        return n;
    }

    /** True if any score is NaN. */
    public boolean hasNaN() {
        for (float v : values) {
            if (Float.isNaN(v)) {
                return true;
            }
        }
        return false;
    }

    private int moduleIndex(String moduleName) {
        int m = moduleName == null ? -1 : graph.destModuleIndexOf(moduleName);
        if (m < 0) {
            throw new IllegalArgumentException("unknown dest module '" + moduleName + "'; valid: "
                    + graph.destModuleNames());
        }
        return m;
    }

    // ---- value semantics ----

    /**
     * Equal graphs and bit-identical scores (Arrays.equals on floats: NaN equals NaN, 0.0 differs
     * from -0.0). Use a tolerance in tests that compare computed scores.
     */
    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        return o instanceof PruneScores p && graph.equals(p.graph) && Arrays.equals(values, p.values);
    }

    @Override
    public int hashCode() {
        return 31 * graph.hashCode() + Arrays.hashCode(values);
    }

    /** Summary plus the largest few |scores| by edge, for logs and assertion messages. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("PruneScores[edges=").append(values.length)
                .append(", nonZero=").append(countNonZero());
        // Linear top-5 selection: a full sort would cost O(n log n) on million-edge graphs.
        int[] top = new int[Math.min(5, values.length)];
        int nTop = 0;
        for (int i = 0; i < values.length; i++) {
            if (values[i] == 0f) {
                continue;
            }
            int pos = nTop < top.length ? nTop++ : top.length;
            while (pos > 0 && !(Math.abs(values[top[pos - 1]]) >= Math.abs(values[i]))) {
                if (pos < top.length) {
                    top[pos] = top[pos - 1];
                }
                pos--;
            }
            if (pos < top.length) {
                top[pos] = i;
            }
        }
        if (nTop > 0) {
            sb.append(", top={");
            for (int j = 0; j < nTop; j++) {
                sb.append(j > 0 ? ", " : "").append(graph.edges().get(top[j])).append('=').append(values[top[j]]);
            }
            sb.append(countNonZero() > nTop ? ", ...}" : "}");
        }
        return sb.append(']').toString();
    }
}
