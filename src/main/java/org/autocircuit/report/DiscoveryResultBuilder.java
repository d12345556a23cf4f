package org.autocircuit.report;

import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.TreeSet;
import org.autocircuit.graph.DestNode;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.SrcNode;
import org.autocircuit.metrics.Faithfulness;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.MetricContext;
import org.autocircuit.metrics.PruneMetric;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.report.DiscoveryResult.AlgorithmResult;
import org.autocircuit.report.DiscoveryResult.CurvePoint;
import org.autocircuit.report.DiscoveryResult.EdgeScore;
import org.autocircuit.report.DiscoveryResult.FaithfulnessPoint;
import org.autocircuit.report.DiscoveryResult.FaithfulnessResult;
import org.autocircuit.report.DiscoveryResult.GraphInfo;
import org.autocircuit.report.DiscoveryResult.MetricCurve;
import org.autocircuit.report.DiscoveryResult.NodeInfo;
import org.autocircuit.report.DiscoveryResult.RocPoint;
import org.autocircuit.report.DiscoveryResult.RocResult;

/**
 * Fills a {@link DiscoveryResult} from the library's own objects: the {@link Graph}, each algorithm's
 * {@link PruneScores}, the {@link CircuitOutputs} of {@code RunCircuits} measured by {@link PruneMetric}s.
 *
 * <pre>{@code
 * DiscoveryResult result = DiscoveryResult.builder()
 *     .task("ioi").model(modelDir.toString()).dataset(data.toString())
 *     .graph(pm.graph()).ablation(ablation).patchType(patchType).edgeCounts(counts).seed(seed)
 *     .seqLabels(loaded.test().seqLabels()).timing("score", scoreSeconds)
 *     .algorithm("EAP", "Edge Attribution Patching", scores)
 *         .parameter("gradFunction", "LOGIT").seconds(scoreSeconds)
 *         .measure(ctx, outs, metrics)              // one curve per metric
 *         .faithfulness(PruneMetrics.LOGIT_DIFF)    // from that metric's curve; see faithfulnessEdgeCounts
 *         .add()
 *     .build();
 * }</pre>
 */
public final class DiscoveryResultBuilder {
    /** The tool name written into results unless {@link #tool(String)} says otherwise. */
    public static final String DEFAULT_TOOL = "autocircuit-java 0.1.0";
    /** How many top edges an algorithm lists unless {@link AlgorithmBuilder#topEdges(int)} says otherwise. */
    public static final int DEFAULT_TOP_EDGES = 20;

    private String tool = DEFAULT_TOOL;
    private String createdAt = Instant.now().truncatedTo(ChronoUnit.SECONDS).toString();
    private String task;
    private String model;
    private String dataset;
    private String ablation;
    private String patchType;
    private List<Integer> edgeCounts = List.of();
    private long seed;
    private final Map<String, Double> timings = new LinkedHashMap<>();
    private List<String> seqLabels = List.of();
    private Graph graph;
    private final List<AlgorithmResult> algorithms = new ArrayList<>();

    DiscoveryResultBuilder() {}

    public DiscoveryResultBuilder tool(String v) { tool = v; return this; }
    /** ISO-8601 instant; defaults to the builder's creation time. */
    public DiscoveryResultBuilder createdAt(String v) { createdAt = v; return this; }
    public DiscoveryResultBuilder task(String v) { task = v; return this; }
    public DiscoveryResultBuilder model(String v) { model = v; return this; }
    public DiscoveryResultBuilder dataset(String v) { dataset = v; return this; }
    public DiscoveryResultBuilder ablation(AblationType v) { ablation = v.name(); return this; }
    public DiscoveryResultBuilder patchType(PatchType v) { patchType = v.name(); return this; }
    /** The requested circuit sizes. */
    public DiscoveryResultBuilder edgeCounts(List<Integer> v) { edgeCounts = List.copyOf(v); return this; }
    public DiscoveryResultBuilder seed(long v) { seed = v; return this; }
    /** Labels of the token positions (token graphs), e.g. {@code PromptDataLoader.seqLabels()}. */
    public DiscoveryResultBuilder seqLabels(List<String> v) { seqLabels = v == null ? List.of() : List.copyOf(v); return this; }

    /** Wall time of one phase of the run; phases keep the order of the calls. */
    public DiscoveryResultBuilder timing(String phase, double seconds) {
        timings.put(phase, seconds);
        return this;
    }

    /** The graph every algorithm scored (taken from the first algorithm's scores when not given). */
    public DiscoveryResultBuilder graph(Graph g) {
        if (graph != null && !graph.equals(g)) {
            throw new IllegalArgumentException("graph differs from the one set before (" + graph + " vs " + g + ")");
        }
        graph = Objects.requireNonNull(g, "graph");
        return this;
    }

    /** Starts the entry of one algorithm; {@link AlgorithmBuilder#add()} returns to this builder. */
    public AlgorithmBuilder algorithm(String key, String name, PruneScores scores) {
        Objects.requireNonNull(scores, "scores");
        graph(scores.graph());
        return new AlgorithmBuilder(key, name, scores);
    }

    /** Adds an algorithm entry built elsewhere. */
    public DiscoveryResultBuilder algorithm(AlgorithmResult result) {
        algorithms.add(Objects.requireNonNull(result, "result"));
        return this;
    }

    /**
     * @throws IllegalArgumentException naming the first missing or inconsistent field
     */
    public DiscoveryResult build() {
        if (graph == null) throw new IllegalArgumentException("graph is not set (give it, or add an algorithm's scores)");
        var run = new DiscoveryResult.Run(tool, createdAt, task, model, dataset, ablation, patchType, edgeCounts,
            seed, timings, seqLabels);
        return new DiscoveryResult(DiscoveryResult.FORMAT_VERSION, run, graphInfo(graph), algorithms);
    }

    /** The graph's kind, size and nodes as result data. */
    public static GraphInfo graphInfo(Graph g) {
        Integer seqLen = g.seqLen().isPresent() ? g.seqLen().getAsInt() : null;
        List<NodeInfo> nodes = new ArrayList<>();
        for (SrcNode s : g.srcs()) nodes.add(new NodeInfo(s.name(), "src", s.layer()));
        for (DestNode d : g.dests()) nodes.add(new NodeInfo(d.name(), "dest", d.layer()));
        return new GraphInfo(GraphInfo.kindOf(g.factorized(), seqLen), g.factorized(), seqLen, g.nEdges(), nodes);
    }

    /**
     * The circuit sizes that {@link AlgorithmBuilder#faithfulness} needs measured: 0 (the empty circuit), every
     * edge (the full model) and round(k · nEdges) for each fraction k of {@link Faithfulness#FRACTIONS}. Merge them
     * into the counts given to {@code RunCircuits.run}.
     */
    public static List<Integer> faithfulnessEdgeCounts(int nEdges) {
        TreeSet<Integer> counts = new TreeSet<>(List.of(0, nEdges));
        for (double k : Faithfulness.FRACTIONS) counts.add(requestedCount(k, nEdges));
        return List.copyOf(counts);
    }

    private static int requestedCount(double fraction, int nEdges) {
        return (int) Math.round(fraction * nEdges);
    }

    /** Collects one algorithm's results. */
    public final class AlgorithmBuilder {
        private final String key;
        private final String name;
        private final PruneScores scores;
        private final Map<String, Object> parameters = new LinkedHashMap<>();
        private Double seconds;
        private int topEdges = DEFAULT_TOP_EDGES;
        private final Map<String, MetricCurve> curves = new LinkedHashMap<>();
        /** The measurements behind each curve, for faithfulness. */
        private final Map<String, List<Measurement>> measured = new LinkedHashMap<>();
        private FaithfulnessResult faithfulness;
        private RocResult roc;

        private AlgorithmBuilder(String key, String name, PruneScores scores) {
            this.key = key;
            this.name = name;
            this.scores = scores;
        }

        public AlgorithmBuilder parameter(String name, Object value) {
            parameters.put(name, value);
            return this;
        }

        public AlgorithmBuilder seconds(double s) {
            seconds = s;
            return this;
        }

        /** How many edges of largest |score| to list (default {@value DiscoveryResultBuilder#DEFAULT_TOP_EDGES}). */
        public AlgorithmBuilder topEdges(int n) {
            if (n < 0) throw new IllegalArgumentException("topEdges must be >= 0, got " + n);
            topEdges = n;
            return this;
        }

        /**
         * One metric's curve. Its AUC (with the metric's log flags) is recorded when the curve starts at 0
         * edges and has at least two points, which is what the AUC needs.
         *
         * @param points (edge count, value) as {@link PruneMetric#measure} returns them
         */
        public AlgorithmBuilder curve(PruneMetric metric, List<Measurement> points) {
            List<CurvePoint> ps = new ArrayList<>();
            for (Measurement m : points) {
                if (m.x() != Math.rint(m.x()) || m.x() < 0 || m.x() > Integer.MAX_VALUE) {
                    throw new IllegalArgumentException("metric '" + metric.key() + "': x must be an edge count, got " + m.x());
                }
                ps.add(new CurvePoint((int) m.x(), m.y()));
            }
            Double auc = points.size() >= 2 && points.get(0).x() == 0 ? metric.auc(points) : null;
            curves.put(metric.key(), new MetricCurve(metric.key(), metric.name(), metric.logX(), metric.lowerBetter(), ps, auc));
            measured.put(metric.key(), List.copyOf(points));
            return this;
        }

        /** Measures each metric on the circuit outputs and records its curve. */
        public AlgorithmBuilder measure(MetricContext ctx, CircuitOutputs outs, List<PruneMetric> metrics) {
            for (PruneMetric m : metrics) curve(m, m.measure(ctx, outs));
            return this;
        }

        /**
         * MIB faithfulness of {@code metric}, from its curve (added before with {@link #curve} or {@link #measure}).
         * Each fraction k asks for round(k · nEdges) edges; ties at the threshold can make the circuit larger, so the
         * value is read at the real size {@code RunCircuits} measured for that request.
         *
         * @throws IllegalArgumentException if the curve is missing or lacks a size of
         *                                  {@link #faithfulnessEdgeCounts(int)}
         */
        public AlgorithmBuilder faithfulness(PruneMetric metric) {
            Map<Integer, Double> byCount = measuredByCount(metric);
            int n = scores.graph().nEdges();
            int empty = realCount(0);
            if (empty != 0) {
                throw new IllegalArgumentException("faithfulness of '" + metric.key() + "': these scores put " + empty
                    + " edges in the 0-edge circuit (ties at the top, such as ACDC's +Infinity for kept edges), so the "
                    + "curve has no empty circuit; measure it with scores that are all 0 and call faithfulness(metric, "
                    + "emptyValue, fullValue)");
            }
            return faithfulness(metric, valueAt(byCount, 0, metric, 0), valueAt(byCount, realCount(n), metric, n));
        }

        /**
         * MIB faithfulness of {@code metric} with m(∅) and m(N) measured apart from this algorithm's curve (they do
         * not depend on its scores): needed when ties at the top of the scores make the curve's 0-edge circuit
         * non-empty, as ACDC's +Infinity scores for kept edges do. {@code RunCircuits} with all-zero scores at edge
         * counts 0 and nEdges measures both.
         */
        public AlgorithmBuilder faithfulness(PruneMetric metric, double mEmpty, double mFull) {
            Map<Integer, Double> byCount = measuredByCount(metric);
            int n = scores.graph().nEdges();
            List<Measurement> fractionPoints = new ArrayList<>();
            List<Integer> realCounts = new ArrayList<>();
            for (double k : Faithfulness.FRACTIONS) {
                int requested = requestedCount(k, n);
                int real = realCount(requested);
                fractionPoints.add(new Measurement(k, valueAt(byCount, real, metric, requested)));
                realCounts.add(real);
            }
            List<Measurement> f = Faithfulness.curve(mEmpty, mFull, fractionPoints);
            List<FaithfulnessPoint> out = new ArrayList<>();
            for (int i = 0; i < f.size(); i++) {
                out.add(new FaithfulnessPoint(f.get(i).x(), realCounts.get(i), fractionPoints.get(i).y(), f.get(i).y()));
            }
            faithfulness = new FaithfulnessResult(metric.key(), mEmpty, mFull, out,
                Faithfulness.cpr(mEmpty, mFull, fractionPoints), Faithfulness.cmd(mEmpty, mFull, fractionPoints));
            return this;
        }

        private Map<Integer, Double> measuredByCount(PruneMetric metric) {
            List<Measurement> points = measured.get(metric.key());
            if (points == null) {
                throw new IllegalArgumentException("faithfulness of '" + metric.key() + "' needs that metric's curve; add "
                    + "it first with curve(...) or measure(...)");
            }
            Map<Integer, Double> byCount = new TreeMap<>();
            for (Measurement m : points) byCount.put((int) m.x(), m.y());
            return byCount;
        }

        /** The size of the circuit RunCircuits builds when asked for {@code requested} edges (ties join it). */
        private int realCount(int requested) {
            return scores.countAtLeast(scores.threshold(requested));
        }

        private double valueAt(Map<Integer, Double> byCount, int real, PruneMetric metric, int requested) {
            Double v = byCount.get(real);
            if (v == null) {
                throw new IllegalArgumentException("faithfulness of '" + metric.key() + "' needs the circuit of "
                    + requested + " edges (" + real + " with ties), which the curve lacks; measure the counts "
                    + "DiscoveryResultBuilder.faithfulnessEdgeCounts(" + scores.graph().nEdges() + ") = "
                    + faithfulnessEdgeCounts(scores.graph().nEdges()) + "; the curve has " + byCount.keySet());
            }
            return v;
        }

        /**
         * The ROC curve against an official circuit (computed elsewhere).
         *
         * @param points (false positive rate, true positive rate) as measurements, in curve order
         */
        public AlgorithmBuilder roc(String officialCircuit, int officialEdgeCount, List<Measurement> points, double auc) {
            List<RocPoint> ps = new ArrayList<>();
            for (Measurement m : points) ps.add(new RocPoint(m.x(), m.y()));
            roc = new RocResult(officialCircuit, officialEdgeCount, ps, auc);
            return this;
        }

        /** The same, with the AUC by the trapezoid rule over the points sorted by false positive rate. */
        public AlgorithmBuilder roc(String officialCircuit, int officialEdgeCount, List<Measurement> points) {
            return roc(officialCircuit, officialEdgeCount, points, Faithfulness.trapezoid(points));
        }

        /** Finishes this algorithm and returns to the result builder. */
        public DiscoveryResultBuilder add() {
            algorithms.add(new AlgorithmResult(key, name, parameters, seconds, edgeScores(), top(), List.copyOf(curves.values()),
                faithfulness, roc));
            return DiscoveryResultBuilder.this;
        }

        private List<EdgeScore> edgeScores() {
            float[] flat = scores.flat();
            List<Edge> edges = scores.graph().edges();
            List<EdgeScore> out = new ArrayList<>(flat.length);
            for (int i = 0; i < flat.length; i++) out.add(edgeScore(edges.get(i), flat[i]));
            return out;
        }

        private List<EdgeScore> top() {
            float[] flat = scores.flat();
            List<Edge> edges = scores.graph().edges();
            // NaN sorts as the largest |score|, as in torch's descending sort (PruneScores.descAbs does the same).
            Comparator<Integer> byAbsDesc = (a, b) -> Float.compare(Math.abs(flat[b]), Math.abs(flat[a]));
            List<Integer> order = new ArrayList<>(flat.length);
            for (int i = 0; i < flat.length; i++) order.add(i);
            order.sort(byAbsDesc.thenComparing(Comparator.naturalOrder()));
            List<EdgeScore> out = new ArrayList<>();
            for (int i = 0; i < Math.min(topEdges, order.size()); i++) {
                int idx = order.get(i);
                out.add(edgeScore(edges.get(idx), flat[idx]));
            }
            return out;
        }

        private EdgeScore edgeScore(Edge e, float score) {
            return new EdgeScore(e.name(), e.seqIdx().isPresent() ? e.seqIdx().getAsInt() : null, score);
        }
    }
}
