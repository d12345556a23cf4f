package org.autocircuit.report;

import java.io.IOException;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.file.Path;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The outcome of one circuit-discovery run, as plain immutable values: what was run (task, model, data set, graph,
 * ablation, patch type, edge counts, seed, timings) and, per algorithm, the score of every edge, the metric curves
 * over circuit size, the faithfulness curve with CPR/CMD, the ROC curve against an official circuit and the top
 * edges. It is the {@code discover} command's JSON output (schema: {@code docs/schema/discover-result.schema.json})
 * and the input of {@link HtmlReport}.
 *
 * <p>Build one from the library's objects with {@link #builder()}; read and write it with {@link #read(Path)} and
 * {@link #write(Path)}. Non-finite numbers are written as the strings {@code "NaN"}, {@code "Infinity"} and
 * {@code "-Infinity"} (JSON has no literal for them; ACDC-style scores can be infinite).
 *
 * @param formatVersion {@link #FORMAT_VERSION}; a reader refuses any other
 * @param run           the run's parameters
 * @param graph         the graph the scores cover, with its nodes (for drawing)
 * @param algorithms    one entry per algorithm, keys unique
 */
public record DiscoveryResult(int formatVersion, Run run, GraphInfo graph, List<AlgorithmResult> algorithms) {

    /** The version of the JSON form this build reads and writes. */
    public static final int FORMAT_VERSION = 1;

    public DiscoveryResult {
        if (formatVersion != FORMAT_VERSION) {
            throw new IllegalArgumentException("formatVersion " + formatVersion + " is not supported; this build reads "
                + FORMAT_VERSION);
        }
        require(run != null, "run must not be null");
        require(graph != null, "graph must not be null");
        algorithms = copy(algorithms, "algorithms");
        require(!algorithms.isEmpty(), "algorithms must hold at least one algorithm");
        Set<String> keys = new HashSet<>();
        Map<String, String> nodeRoles = new HashMap<>();
        for (NodeInfo n : graph.nodes()) nodeRoles.put(n.role() + ":" + n.name(), n.role());
        for (AlgorithmResult a : algorithms) {
            require(keys.add(a.key()), "algorithm key '" + a.key() + "' appears twice");
            require(a.scores().size() == graph.nEdges(), "algorithm '" + a.key() + "' scores " + a.scores().size()
                + " edges; the graph has " + graph.nEdges());
            for (EdgeScore e : a.scores()) checkEdge(e, a.key(), graph, nodeRoles);
            for (EdgeScore e : a.topEdges()) checkEdge(e, a.key(), graph, nodeRoles);
        }
    }

    private static void checkEdge(EdgeScore e, String algorithm, GraphInfo graph, Map<String, String> nodeRoles) {
        if (!nodeRoles.containsKey("src:" + e.srcName()) || !nodeRoles.containsKey("dest:" + e.destName())) {
            throw new IllegalArgumentException("algorithm '" + algorithm + "': edge '" + e.edge()
                + "' names a node that graph.nodes lacks (src '" + e.srcName() + "', dest '" + e.destName() + "')");
        }
        if (graph.seqLen() == null ? e.seqIdx() != null : e.seqIdx() == null || e.seqIdx() >= graph.seqLen()) {
            throw new IllegalArgumentException("algorithm '" + algorithm + "': edge '" + e.edge() + "' has seqIdx "
                + e.seqIdx() + "; the graph " + (graph.seqLen() == null ? "has no token positions"
                : "has positions 0.." + (graph.seqLen() - 1)));
        }
    }

    /** A builder that fills a result from graphs, prune scores and measurements. */
    public static DiscoveryResultBuilder builder() {
        return new DiscoveryResultBuilder();
    }

    /** Reads and validates a result file. */
    public static DiscoveryResult read(Path file) throws IOException {
        return ResultJson.read(file);
    }

    /** Writes this result as indented JSON, atomically (a temp file in the same folder, then a rename). */
    public void write(Path file) throws IOException {
        ResultJson.write(this, file);
    }

    /** This result as indented JSON, the form {@link #write} stores and the schema in docs/schema describes. */
    public String toJson() {
        return ResultJson.toJson(this);
    }

    /** The algorithm with this key. */
    public AlgorithmResult algorithm(String key) {
        for (AlgorithmResult a : algorithms) {
            if (a.key().equals(key)) return a;
        }
        throw new IllegalArgumentException("no algorithm '" + key + "' in this result; have "
            + algorithms.stream().map(AlgorithmResult::key).toList());
    }

    /**
     * What was run.
     *
     * @param tool           the program and version that produced the result
     * @param createdAt      ISO-8601 instant
     * @param task           task key or description, e.g. {@code "ioi"}
     * @param model          model name or folder
     * @param dataset        data set file or name
     * @param ablation       {@code AblationType} name, e.g. {@code RESAMPLE}
     * @param patchType      {@code PatchType} name, e.g. {@code EDGE_PATCH}
     * @param edgeCounts     the requested circuit sizes (the curves hold the real, tie-expanded ones)
     * @param seed           the seed of seeded algorithms
     * @param timingsSeconds wall time of the run's phases, in seconds, in the order they ran
     * @param seqLabels      a label per token position (token graphs), or empty
     */
    public record Run(String tool, String createdAt, String task, String model, String dataset, String ablation,
                      String patchType, List<Integer> edgeCounts, long seed, Map<String, Double> timingsSeconds,
                      List<String> seqLabels) {
        public Run {
            require(tool != null && createdAt != null && task != null && model != null && dataset != null,
                "run.tool, createdAt, task, model and dataset must not be null");
            require(ablation != null && patchType != null, "run.ablation and run.patchType must not be null");
            edgeCounts = copy(edgeCounts, "run.edgeCounts");
            for (int k : edgeCounts) require(k >= 0, "run.edgeCounts must be >= 0, got " + k);
            timingsSeconds = timingsSeconds == null ? Map.of() : Collections.unmodifiableMap(new LinkedHashMap<>(timingsSeconds));
            timingsSeconds.forEach((k, v) -> require(k != null && v != null && v >= 0,
                "run.timingsSeconds needs a name and a non-negative time, got " + k + " = " + v));
            seqLabels = seqLabels == null ? List.of() : copy(seqLabels, "run.seqLabels");
        }
    }

    /**
     * The graph the scores cover.
     *
     * @param kind       {@code component} or {@code token} (factorized, without or with token positions),
     *                   {@code residual} or {@code residual-token} (unfactorized)
     * @param factorized every src feeds every later dest
     * @param seqLen     token positions, or null for a graph without them
     * @param nEdges     number of edges (one score each)
     * @param nodes      every src and dest node with its graph layer
     */
    public record GraphInfo(String kind, boolean factorized, Integer seqLen, int nEdges, List<NodeInfo> nodes) {
        public static final List<String> KINDS = List.of("component", "token", "residual", "residual-token");

        public GraphInfo {
            require(KINDS.contains(kind), "graph.kind must be one of " + KINDS + ", got " + kind);
            require(seqLen == null || seqLen > 0, "graph.seqLen must be positive or null, got " + seqLen);
            require(kind.equals(kindOf(factorized, seqLen)), "graph.kind '" + kind + "' contradicts factorized="
                + factorized + ", seqLen=" + seqLen);
            require(nEdges >= 0, "graph.nEdges must be >= 0, got " + nEdges);
            nodes = copy(nodes, "graph.nodes");
        }

        /** The kind name of a graph with these properties. */
        public static String kindOf(boolean factorized, Integer seqLen) {
            if (factorized) return seqLen == null ? "component" : "token";
            return seqLen == null ? "residual" : "residual-token";
        }
    }

    /**
     * A node of the graph.
     *
     * @param name  the node name ({@code "A1.0"}, {@code "A1.0.Q"}, {@code "MLP 0"}, {@code "Resid Start"})
     * @param role  {@code src} (writes to the residual stream) or {@code dest} (reads from it)
     * @param layer graph layer (attention and MLP of one block are separate layers in sequential models)
     */
    public record NodeInfo(String name, String role, int layer) {
        public NodeInfo {
            require(name != null && !name.isEmpty(), "node name must be non-empty");
            require("src".equals(role) || "dest".equals(role), "node '" + name + "' role must be src or dest, got " + role);
            require(layer >= 0, "node '" + name + "' layer must be >= 0, got " + layer);
        }
    }

    /**
     * One algorithm's results.
     *
     * @param key          stable key, e.g. {@code "EAP"}
     * @param name         display name
     * @param parameters   the algorithm's settings: string, integer (long), real (double) or boolean values
     * @param seconds      scoring wall time, or null when not measured
     * @param scores       the score of every edge, in graph edge order
     * @param topEdges     the edges of largest |score|, largest first
     * @param curves       metric value against circuit size, one per metric
     * @param faithfulness the faithfulness curve with CPR and CMD, or null
     * @param roc          ROC against an official circuit, or null when the task has none
     */
    public record AlgorithmResult(String key, String name, Map<String, Object> parameters, Double seconds,
                                  List<EdgeScore> scores, List<EdgeScore> topEdges, List<MetricCurve> curves,
                                  FaithfulnessResult faithfulness, RocResult roc) {
        public AlgorithmResult {
            require(key != null && !key.isEmpty(), "algorithm key must be non-empty");
            require(name != null, "algorithm '" + key + "' name must not be null");
            parameters = normaliseParameters(parameters, key);
            require(seconds == null || seconds >= 0, "algorithm '" + key + "' seconds must be >= 0, got " + seconds);
            scores = copy(scores, "algorithm '" + key + "' scores");
            topEdges = copy(topEdges, "algorithm '" + key + "' topEdges");
            curves = copy(curves, "algorithm '" + key + "' curves");
            Set<String> metricKeys = new HashSet<>();
            for (MetricCurve c : curves) {
                require(metricKeys.add(c.key()), "algorithm '" + key + "' has two curves for metric '" + c.key() + "'");
            }
        }

        /** The curve of one metric. */
        public MetricCurve curve(String metricKey) {
            for (MetricCurve c : curves) {
                if (c.key().equals(metricKey)) return c;
            }
            throw new IllegalArgumentException("algorithm '" + key + "' has no curve for metric '" + metricKey
                + "'; have " + curves.stream().map(MetricCurve::key).toList());
        }
    }

    /**
     * The score of one edge.
     *
     * @param edge   {@code "src->dest"}
     * @param seqIdx token position, or null in graphs without positions
     * @param score  the algorithm's score (larger |score| = more important); may be infinite
     */
    public record EdgeScore(String edge, Integer seqIdx, float score) {
        public EdgeScore {
            require(edge != null && edge.indexOf("->") > 0 && edge.indexOf("->") + 2 < edge.length(),
                "edge name must look like 'src->dest', got " + edge);
            require(seqIdx == null || seqIdx >= 0, "edge '" + edge + "' seqIdx must be >= 0, got " + seqIdx);
        }

        public String srcName() {
            return edge.substring(0, edge.indexOf("->"));
        }

        public String destName() {
            return edge.substring(edge.indexOf("->") + 2);
        }
    }

    /**
     * A metric measured on circuits of growing size.
     *
     * @param key         metric key, e.g. {@code "Logit Diff"}
     * @param name        display name
     * @param logX        the metric is meant to be read (and integrated) on a log edge axis
     * @param lowerBetter lower values are better
     * @param points      (real edge count, value), ascending edge count
     * @param auc         area under the curve with the metric's own flags, or null
     */
    public record MetricCurve(String key, String name, boolean logX, boolean lowerBetter, List<CurvePoint> points,
                              Double auc) {
        public MetricCurve {
            require(key != null && !key.isEmpty(), "metric key must be non-empty");
            require(name != null, "metric '" + key + "' name must not be null");
            points = copy(points, "metric '" + key + "' points");
            for (int i = 1; i < points.size(); i++) {
                require(points.get(i).edgeCount() > points.get(i - 1).edgeCount(),
                    "metric '" + key + "' points must have strictly ascending edge counts, got " + points);
            }
        }
    }

    /** One point of a metric curve: the metric of the circuit made of {@code edgeCount} edges. */
    public record CurvePoint(int edgeCount, double value) {
        public CurvePoint {
            require(edgeCount >= 0, "edgeCount must be >= 0, got " + edgeCount);
        }
    }

    /**
     * MIB faithfulness over the fraction grid {@code metrics.Faithfulness.FRACTIONS}.
     *
     * @param metricKey  the metric m behind f(C) = (m(C) − m(∅)) / (m(N) − m(∅))
     * @param emptyValue m(∅), every edge ablated
     * @param fullValue  m(N), the full model
     * @param points     one per fraction, ascending
     * @param cpr        circuit performance ratio (higher is better)
     * @param cmd        circuit–model distance (lower is better)
     */
    public record FaithfulnessResult(String metricKey, double emptyValue, double fullValue,
                                     List<FaithfulnessPoint> points, double cpr, double cmd) {
        public FaithfulnessResult {
            require(metricKey != null, "faithfulness.metricKey must not be null");
            points = copy(points, "faithfulness points");
            require(!points.isEmpty(), "faithfulness needs points");
        }
    }

    /**
     * @param fraction     requested fraction k of the edges
     * @param edgeCount    the real size of the circuit measured for k (ties can add edges)
     * @param metricValue  m(C_k)
     * @param faithfulness f(C_k)
     */
    public record FaithfulnessPoint(double fraction, int edgeCount, double metricValue, double faithfulness) {
        public FaithfulnessPoint {
            require(fraction > 0 && fraction <= 1, "faithfulness fraction must be in (0, 1], got " + fraction);
            require(edgeCount >= 0, "faithfulness edgeCount must be >= 0, got " + edgeCount);
        }
    }

    /**
     * The ROC curve of the scores against an official circuit ({@code measure_task_roc}).
     *
     * @param officialCircuit   name of the official circuit
     * @param officialEdgeCount its number of edges
     * @param points            (false positive rate, true positive rate), from (0,0) to (1,1)
     * @param auc               area under the ROC curve
     */
    public record RocResult(String officialCircuit, int officialEdgeCount, List<RocPoint> points, double auc) {
        public RocResult {
            require(officialCircuit != null, "roc.officialCircuit must not be null");
            require(officialEdgeCount >= 0, "roc.officialEdgeCount must be >= 0, got " + officialEdgeCount);
            points = copy(points, "roc points");
        }
    }

    /** One ROC point. */
    public record RocPoint(double fpr, double tpr) {
        public RocPoint {
            require(fpr >= 0 && fpr <= 1 && tpr >= 0 && tpr <= 1, "ROC point must lie in [0,1]², got (" + fpr + ", " + tpr + ")");
        }
    }

    // ---- helpers ----

    static void require(boolean ok, String message) {
        if (!ok) throw new IllegalArgumentException(message);
    }

    private static <T> List<T> copy(List<T> list, String what) {
        require(list != null, what + " must not be null");
        for (T t : list) require(t != null, what + " must not contain null");
        return List.copyOf(list);
    }

    /**
     * Keeps JSON-representable scalars only, with one Java type per JSON type (Long for integers, Double for reals),
     * so a result equals itself after a round trip through JSON.
     */
    private static Map<String, Object> normaliseParameters(Map<String, Object> parameters, String algorithm) {
        if (parameters == null) return Map.of();
        Map<String, Object> out = new LinkedHashMap<>();
        parameters.forEach((k, v) -> {
            require(k != null, "algorithm '" + algorithm + "' has a parameter without a name");
            Object norm;
            if (v instanceof String || v instanceof Boolean) {
                norm = v;
            } else if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte) {
                norm = ((Number) v).longValue();
            } else if (v instanceof BigInteger b) {
                norm = b.longValueExact();
            } else if (v instanceof Float || v instanceof Double || v instanceof BigDecimal) {
                norm = ((Number) v).doubleValue();
            } else {
                throw new IllegalArgumentException("algorithm '" + algorithm + "' parameter '" + k
                    + "' must be a string, number or boolean, got " + (v == null ? "null" : v.getClass().getSimpleName()));
            }
            out.put(k, norm);
        });
        return Collections.unmodifiableMap(out);
    }
}
