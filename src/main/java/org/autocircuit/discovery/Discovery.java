package org.autocircuit.discovery;

import org.bytedeco.pytorch.global.torch;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.TreeSet;
import org.autocircuit.algorithms.PruneAlgorithms;
import org.autocircuit.algorithms.PruneRun;
import org.autocircuit.algorithms.RegisteredAlgorithm;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.DataParallel;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.EdgeCounts;
import org.autocircuit.graph.EdgeCountsUtil;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TestEdges;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.metrics.PruneMetric;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.metrics.Roc;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.report.DiscoveryResult;
import org.autocircuit.report.DiscoveryResultBuilder;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.util.Progress;

/**
 * The discover job, as one function both the {@code autocircuit discover} command and the HTTP server
 * ({@code autocircuit serve}) call: score the edges of a loaded task's graph with each algorithm on the train split,
 * measure circuits of growing size on the test split, and collect the result (top edges, metric curves, the
 * faithfulness curve, ROC against the official circuit) as a {@link DiscoveryResult}.
 *
 * <pre>{@code
 * try (LoadedTask loaded = LoadedTask.load(Tasks.byKey("induction-2l"), paths)) {
 *     DiscoveryResult r = Discovery.run(loaded, paths, Discovery.Options.of(List.of("EAP")), Progress.NONE);
 * }
 * }</pre>
 */
public final class Discovery {

    /** The default metrics of {@code discover}. */
    public static final List<String> DEFAULT_METRICS =
        List.of("Logit Diff", "Clean KL Div", "Answer Prob", "Correct Answer Percent");
    /** The default metric of the faithfulness curve. */
    public static final String DEFAULT_FAITHFULNESS_METRIC = "Logit Diff";

    private Discovery() {}

    /**
     * What to run.
     *
     * @param algorithms         the algorithms, in the order they run
     * @param ablation           the ablation of the circuit measurements
     * @param patchType          edge or tree patching
     * @param edgeCounts         the circuit sizes to measure, or null for the logarithmic default; the faithfulness
     *                           grid is always added
     * @param metrics            the prune metrics to measure (the faithfulness metric is added first when missing)
     * @param faithfulnessMetric the metric of the faithfulness curve, CPR and CMD
     * @param seed               the seed of seeded algorithms
     * @param topEdges           how many top edges the result keeps per algorithm (at least
     *                           {@link DiscoveryResultBuilder#DEFAULT_TOP_EDGES})
     * @param checkpointDir      where resumable algorithms keep finished work, or null
     */
    public record Options(List<RegisteredAlgorithm> algorithms, AblationType ablation, PatchType patchType,
                          List<Integer> edgeCounts, List<PruneMetric> metrics, PruneMetric faithfulnessMetric,
                          long seed, int topEdges, Path checkpointDir) {
        public Options {
            Objects.requireNonNull(ablation, "ablation");
            Objects.requireNonNull(patchType, "patchType");
            Objects.requireNonNull(faithfulnessMetric, "faithfulnessMetric");
            if (algorithms == null || algorithms.isEmpty()) {
                throw new IllegalArgumentException("algorithms: at least one algorithm is needed");
            }
            algorithms = List.copyOf(algorithms);
            edgeCounts = edgeCounts == null ? null : List.copyOf(edgeCounts);
            List<PruneMetric> chosen = new ArrayList<>(metrics == null ? List.of() : metrics);
            if (!chosen.contains(faithfulnessMetric)) chosen.add(0, faithfulnessMetric);
            metrics = List.copyOf(chosen);
            if (topEdges < 0) throw new IllegalArgumentException("topEdges must be >= 0, got " + topEdges);
        }

        /** The CLI's defaults for these algorithm keys or short names. */
        public static Options of(List<String> algorithmKeys) {
            return parse(algorithmKeys, "resample", "edge_patch", null, DEFAULT_METRICS, DEFAULT_FAITHFULNESS_METRIC,
                0L, DiscoveryResultBuilder.DEFAULT_TOP_EDGES, null);
        }

        /**
         * Options from their names as the command line and the server take them.
         *
         * @throws IllegalArgumentException naming the unknown algorithm, ablation, patch type or metric
         */
        public static Options parse(List<String> algorithmKeys, String ablation, String patchType,
                                    List<Integer> edgeCounts, List<String> metricKeys, String faithfulnessMetric,
                                    long seed, int topEdges, Path checkpointDir) {
            List<RegisteredAlgorithm> algos = new ArrayList<>();
            for (String k : algorithmKeys) algos.add(PruneAlgorithms.byKey(k));
            List<PruneMetric> chosen = new ArrayList<>();
            for (String key : metricKeys) chosen.add(PruneMetrics.byKey(key.trim()));
            return new Options(algos, AblationType.parse(ablation), PatchType.parse(patchType), edgeCounts, chosen,
                PruneMetrics.byKey(faithfulnessMetric.trim()), seed, topEdges, checkpointDir);
        }
    }

    /**
     * Hears which algorithm starts, besides the step progress of each (which may throw to cancel the run: it stops
     * at its next step).
     */
    public interface Listener extends Progress {
        /** Algorithm {@code index} (0-based) of {@code count} starts scoring. */
        default void algorithmStarted(int index, int count, RegisteredAlgorithm algorithm) {}
    }

    /**
     * Runs the discover job on a loaded task. Leaves the model's masks changed (as the algorithms do); callers that
     * share one loaded task between runs need no reset, since every algorithm and {@link RunCircuits} sets the masks
     * it reads.
     *
     * @param paths        where the task's relative paths resolve (for the model and dataset the result names)
     * @param progress     step progress (a {@link Listener} also hears each algorithm start); may throw to cancel
     * @param startedNanos {@link System#nanoTime()} when the job started (the result's "total" timing counts from
     *                     it, loading included)
     * @throws IllegalArgumentException for an edge count outside the graph
     */
    public static DiscoveryResult run(LoadedTask loaded, TaskPaths paths, Options options, Progress progress,
                                      long startedNanos) throws java.io.IOException {
        return run(loaded, paths, options, progress, startedNanos, Collective.single());
    }

    /**
     * The discover job as one rank of a data-parallel run (docs/distributed.md): each rank scores and measures its
     * shard of the prompt batches and the results are reduced, so every rank returns what one process would;
     * checkpoints are rank 0's alone. With {@link Collective#single()} this is the single-process job.
     */
    public static DiscoveryResult run(LoadedTask loaded, TaskPaths paths, Options options, Progress progress,
                                      long startedNanos, Collective dist) throws java.io.IOException {
        Progress steps = progress == null ? Progress.NONE : progress;
        Listener listener = progress instanceof Listener l ? l : null;
        int nEdges = loaded.graph().nEdges();
        List<Integer> counts = circuitSizes(nEdges, options.edgeCounts());
        Set<Edge> official = loaded.officialEdges().orElse(null);
        AblationType abl = options.ablation();
        PatchType pt = options.patchType();
        PruneMetric faithMetric = options.faithfulnessMetric();
        String taskKey = loaded.task().key();
        DiscoveryResultBuilder result = DiscoveryResult.builder().task(taskKey)
            .model(loaded.task().modelPath(paths).toString()).dataset(loaded.task().datasetPath(paths).toString())
            .graph(loaded.graph()).ablation(abl).patchType(pt).edgeCounts(counts).seed(options.seed())
            .seqLabels(loaded.test().seqLabels());
        ModelMetricContext ctx = new ModelMetricContext(loaded.model(), loaded.test().batches());
        // m(∅) and m(N) of the faithfulness curve do not depend on any algorithm's scores, and an algorithm's own
        // 0-edge circuit need not be empty (ACDC scores kept edges +Infinity, which every threshold admits):
        // measure the empty circuit and the full model once, with all-zero scores.
        List<Measurement> ends = faithMetric.measure(ctx, DataParallel.runCircuits(dist, loaded.model(),
            loaded.test().batches(), List.of(0, nEdges), PruneScores.zeros(loaded.graph()), pt, abl, false, steps));
        double emptyValue = valueAt(ends, 0);
        double fullValue = valueAt(ends, nEdges);
        List<RegisteredAlgorithm> algos = options.algorithms();
        // what a checkpoint must agree on besides the graph and the first batch (docs/reliability.md)
        // a 16-bit model gives other numbers than the float32 one: its dtype is part of the model's identity (the
        // device is not: resuming a CPU run on a GPU is allowed)
        torch.ScalarType dtype = loaded.model().model().dtype().intern();
        String modelPrint = options.checkpointDir() == null ? null
            : org.autocircuit.util.Fingerprints.ofFolder(loaded.task().modelPath(paths))
                + (dtype == torch.ScalarType.Float ? "" : " dtype=" + dtype);
        String dataPrint = options.checkpointDir() == null ? null
            : org.autocircuit.util.Fingerprints.ofFile(loaded.task().datasetPath(paths)) + " " + loaded.task().loaderOptions();
        for (int i = 0; i < algos.size(); i++) {
            RegisteredAlgorithm a = algos.get(i);
            if (listener != null) listener.algorithmStarted(i, algos.size(), a);
            Progress.checkInterrupted(a.key());
            Path checkpoint = options.checkpointDir() == null ? null : DataParallel.checkpointFor(dist,
                options.checkpointDir().resolve(checkpointName(loaded.task(), paths, a)));
            org.autocircuit.algorithms.RunIdentity identity = checkpoint == null ? null
                : org.autocircuit.algorithms.RunIdentity.of(modelPrint, dataPrint, runOptions(loaded.task(), a, options));
            PruneRun run = new PruneRun(loaded.model(), loaded.train().batches(), official, steps, options.seed(),
                checkpoint, dist, identity);
            long s0 = System.nanoTime();
            PruneScores scores = a.scores(run);
            double scoreSeconds = (System.nanoTime() - s0) / 1e9;
            CircuitOutputs outs = DataParallel.runCircuits(dist, loaded.model(), loaded.test().batches(), counts,
                scores, pt, abl, false, steps);
            DiscoveryResultBuilder.AlgorithmBuilder ab = result.algorithm(a.key(), a.name(), scores)
                .seconds(scoreSeconds).topEdges(Math.max(options.topEdges(), DiscoveryResultBuilder.DEFAULT_TOP_EDGES));
            a.parameters().forEach(ab::parameter);
            ab.measure(ctx, outs, options.metrics()).faithfulness(faithMetric, emptyValue, fullValue);
            if (official != null) {
                Roc.Curve roc = Roc.curve(scores, official);
                ab.roc(loaded.officialCircuit().map(c -> c.name()).orElse("official"), official.size(),
                    roc.points(), roc.auc());
            }
            ab.add();
        }
        result.timing("total", (System.nanoTime() - startedNanos) / 1e9);
        return result.build();
    }

    private static double valueAt(List<Measurement> curve, int edgeCount) {
        for (Measurement m : curve) if ((int) m.x() == edgeCount) return m.y();
        throw new IllegalStateException("no measurement at " + edgeCount + " edges in " + curve);
    }

    /**
     * The requested sizes (or the logarithmic default when null) plus the faithfulness grid, which the curve needs.
     *
     * @throws IllegalArgumentException for a size outside {@code [0, nEdges]}
     */
    public static List<Integer> circuitSizes(int nEdges, List<Integer> requested) {
        TreeSet<Integer> counts = new TreeSet<>(requested != null ? requested
            : EdgeCountsUtil.edgeCounts(nEdges, TestEdges.of(EdgeCounts.LOGARITHMIC), null, true, true, null));
        for (int k : counts) {
            if (k < 0 || k > nEdges) {
                throw new IllegalArgumentException("edge counts: " + k + " is outside [0, " + nEdges
                    + "] (the graph has " + nEdges + " edges)");
            }
        }
        counts.addAll(DiscoveryResultBuilder.faithfulnessEdgeCounts(nEdges));
        return List.copyOf(counts);
    }

    /**
     * {@code <task>-<algorithm>.ckpt}; a custom task adds a hash of its model and dataset paths, so that two custom
     * tasks sharing a checkpoint folder do not share (and refuse) each other's files.
     */
    public static String checkpointName(org.autocircuit.tasks.Task t, org.autocircuit.tasks.TaskPaths paths,
                                        RegisteredAlgorithm a) {
        String key = t.key();
        if (t.key().equals("custom")) {
            key += "-" + org.autocircuit.util.Fingerprints.ofString(t.modelPath(paths).toAbsolutePath().normalize() + "\n"
                + t.datasetPath(paths).toAbsolutePath().normalize()).substring(0, 8);
        }
        return fileName(key + "-" + a.shortName()) + ".ckpt";
    }

    /** The options of one algorithm's run that its checkpoint must agree on, as stable text. */
    private static String runOptions(org.autocircuit.tasks.Task t, RegisteredAlgorithm a, Options options) {
        return "task=" + t.key() + " algorithm=" + a.key() + " parameters=" + a.parameters() + " seed=" + options.seed()
            + " tokenCircuit=" + t.tokenCircuit() + " factorized=" + t.factorized() + " separateQkv=" + t.separateQkv()
            + " slice=" + t.slice();
    }

    private static String fileName(String s) {
        return s.replaceAll("[^A-Za-z0-9._-]", "_");
    }
}
