package org.autocircuit.report;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.EdgeCountsUtil;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.metrics.PruneMetric;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.Fixtures;

/**
 * Discovery results from real runs on the bundled 2-layer model and the IOI fixture prompts: Edge Attribution
 * Patching and 5-sample integrated gradients on the train split, run_circuits (EDGE_PATCH, RESAMPLE) on the test
 * split at 1-2-5 spaced counts plus the faithfulness grid, four metrics, faithfulness of the logit difference, and
 * a ROC curve against a stand-in "official" circuit (every edge into Resid End: the random model has no real one).
 * Each graph kind is computed once per test JVM.
 */
final class ReportFixtures {
    private ReportFixtures() {}

    static final List<PruneMetric> METRICS = List.of(PruneMetrics.LOGIT_DIFF, PruneMetrics.CLEAN_KL_DIV,
        PruneMetrics.ANSWER_PROB, PruneMetrics.CORRECT_ANSWER_GREATER_THAN_INCORRECT_PERCENT);

    /** A result and the library objects it was built from, to check one against the other. */
    record Run(DiscoveryResult result, Map<String, PruneScores> scores, Map<String, CircuitOutputs> outputs,
               Map<String, Map<String, List<Measurement>>> measurements) {}

    private static final Map<String, Run> CACHE = new ConcurrentHashMap<>();

    static Run component() {
        return CACHE.computeIfAbsent("component", k -> run(null));
    }

    static Run token() {
        return CACHE.computeIfAbsent("token", k -> run(15));
    }

    private static Run run(Integer seqLen) {
        long t0 = System.nanoTime();
        Datasets.LoadedDatasets data = Fixtures.ioi();
        try (PatchableModel pm = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, seqLen, true,
                Kernels.reference())) {
            Graph g = pm.graph();
            DiscoveryResultBuilder b = DiscoveryResult.builder()
                .task("ioi").model(Fixtures.modelDir().getFileName().toString()).dataset("ioi-32.json")
                .graph(g).ablation(AblationType.RESAMPLE).patchType(PatchType.EDGE_PATCH).seed(42)
                .seqLabels(seqLen == null ? List.of() : data.test().seqLabels());
            // a 1-2-5 series and the faithfulness grid: enough points for the curves at a fraction of the cost of
            // the full logarithmic series
            TreeSet<Integer> counts = new TreeSet<>(DiscoveryResultBuilder.faithfulnessEdgeCounts(g.nEdges()));
            for (int decade = 1; decade < g.nEdges(); decade *= 10) {
                for (int m : new int[] {1, 2, 5}) if (m * decade < g.nEdges()) counts.add(m * decade);
            }
            b.edgeCounts(List.copyOf(counts)).timing("load", seconds(t0));

            Map<String, PruneScores> allScores = new java.util.LinkedHashMap<>();
            Map<String, CircuitOutputs> allOuts = new java.util.LinkedHashMap<>();
            Map<String, Map<String, List<Measurement>>> allMeasured = new java.util.LinkedHashMap<>();
            ModelMetricContext ctx = new ModelMetricContext(pm, data.test().batches());
            List<Edge> official = g.edges().stream().filter(e -> e.dest().name().equals("Resid End")).toList();
            for (var algo : List.of(
                    Map.entry("EAP", MaskGradient.Options.eap()),
                    Map.entry("IG-5", MaskGradient.Options.integratedGradients(5)))) {
                long ts = System.nanoTime();
                PruneScores scores = MaskGradient.scores(pm, data.train().batches(), algo.getValue());
                double scoreSeconds = seconds(ts);
                long te = System.nanoTime();
                CircuitOutputs outs = RunCircuits.run(pm, data.test().batches(), List.copyOf(counts), scores,
                    PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
                Map<String, List<Measurement>> measured = new java.util.LinkedHashMap<>();
                for (PruneMetric m : METRICS) measured.put(m.key(), m.measure(ctx, outs));
                String name = algo.getKey().equals("EAP") ? "Edge Attribution Patching" : "Integrated Gradients (5 samples)";
                DiscoveryResultBuilder.AlgorithmBuilder a = b.algorithm(algo.getKey(), name, scores)
                    .parameter("gradFunction", algo.getValue().gradFunction().name())
                    .parameter("answerFunction", algo.getValue().answerFunction().name())
                    .seconds(scoreSeconds);
                if (algo.getValue().integratedGradSamples() != null) {
                    a.parameter("integratedGradSamples", algo.getValue().integratedGradSamples());
                } else {
                    a.parameter("maskVal", algo.getValue().maskVal());
                }
                measured.forEach((k, v) -> a.curve(PruneMetrics.byKey(k), v));
                a.faithfulness(PruneMetrics.LOGIT_DIFF)
                    .roc("every edge into Resid End (test stand-in)", official.size(), roc(scores, official))
                    .add();
                b.timing("evaluate " + algo.getKey(), seconds(te));
                allScores.put(algo.getKey(), scores);
                allOuts.put(algo.getKey(), outs);
                allMeasured.put(algo.getKey(), measured);
            }
            return new Run(b.build(), allScores, allOuts, allMeasured);
        }
    }

    /** AutoCircuit's measure_task_roc: (0,0), then (FPR, TPR) of the top-k |score| edges per default count, then (1,1). */
    static List<Measurement> roc(PruneScores ps, List<Edge> official) {
        Graph g = ps.graph();
        java.util.Set<Integer> officialIdx = new java.util.HashSet<>();
        for (Edge e : official) officialIdx.add(g.edgeIndex(e));
        float[] flat = ps.flat();
        List<Measurement> points = new ArrayList<>(List.of(new Measurement(0, 0)));
        for (int k : EdgeCountsUtil.edgeCounts(g.nEdges(), null, ps)) {
            float th = ps.threshold(k);
            int tp = 0, fp = 0;
            for (int i = 0; i < flat.length; i++) {
                if (Math.abs(flat[i]) >= th) {
                    if (officialIdx.contains(i)) tp++;
                    else fp++;
                }
            }
            points.add(new Measurement((double) fp / (g.nEdges() - official.size()), (double) tp / official.size()));
        }
        points.add(new Measurement(1, 1));
        return points;
    }

    private static double seconds(long t0) {
        return (System.nanoTime() - t0) / 1e9;
    }
}
