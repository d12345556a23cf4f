package org.autocircuit.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.DataParallel;
import org.autocircuit.distributed.InputFingerprint;
import org.autocircuit.distributed.ProcessGroupCollective;
import org.autocircuit.graph.EdgeCounts;
import org.autocircuit.graph.EdgeCountsUtil;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TestEdges;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.metrics.PruneMetric;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.tasks.Tokenizer;
import org.autocircuit.tasks.Tokenizers;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * Scores every edge with Edge Attribution Patching on the train split, then measures circuits of growing size
 * on the test split (run_circuits + prune metrics) and prints one row per circuit size.
 */
@Command(name = "evaluate", mixinStandardHelpOptions = true,
    description = "Score edges (EAP) on the train split and print circuit metrics per edge count on the test split.")
final class EvaluateCommand implements Callable<Integer> {

    @Option(names = "--model", description = "Hugging Face model folder (config.json + model.safetensors or shards; GPT-2, GPT-NeoX, Llama, Mistral, Qwen2, Gemma-2). Default: the bundled model.")
    Path model;

    @Option(names = "--dataset", description = "Dataset JSON (AutoCircuit format). Default: the bundled 32 IOI prompts.")
    Path dataset;

    @Option(names = "--weight-processing", defaultValue = "none", paramLabel = "none|tl",
        description = "Rewrite the weights before use: none (as stored) or tl (TransformerLens's fold_ln, "
            + "center_writing_weights, center_unembed, fold_value_biases, as AutoCircuit's load_tl_model). "
            + "Default: ${DEFAULT-VALUE}.")
    String weightProcessing;

    @Option(names = "--batch-size", defaultValue = "8") int batchSize;
    @Option(names = "--train-size", defaultValue = "16") int trainSize;
    @Option(names = "--test-size", defaultValue = "16") int testSize;

    @Option(names = "--token-circuit", description = "One edge per token position.") boolean tokenCircuit;

    @Option(names = "--ablation", defaultValue = "resample", description = "resample, zero, tokenwise_mean_corrupt, ...")
    String ablation;

    @Option(names = "--patch-type", defaultValue = "edge_patch", description = "edge_patch or tree_patch") String patchType;

    @Option(names = "--edge-counts", split = ",", description = "Circuit sizes; default: 0, 1..9, 10, 20, ..., and all edges.")
    List<Integer> edgeCounts;

    @Option(names = "--metrics", split = ",",
        defaultValue = "Logit Diff,Logit Diff Percent,Clean KL Div,Corrupt KL Div,Answer Prob,Correct Answer Greater Than Incorrect Percent")
    List<String> metrics;

    @Option(names = "--gqa-layout", defaultValue = "ungrouped",
        description = "K/V destinations of a grouped-query-attention model: ungrouped (one per query head) or grouped "
            + "(one per key/value head). Default: ${DEFAULT-VALUE}.") String gqaLayout;

    @picocli.CommandLine.Mixin
    DeviceOption deviceOption = new DeviceOption();

    @Option(names = "--json", description = "Print JSON (for tools calling this as a backend).") boolean json;

    @Override
    public Integer call() throws Exception {
        org.autocircuit.kernels.Device device = deviceOption.resolve();
        org.bytedeco.pytorch.global.torch.ScalarType dtype = deviceOption.dtype();
        Path modelDir = model != null ? model : Main.home().resolve("datasets/models/gpt2-tiny-random");
        Path data = dataset != null ? dataset : Main.home().resolve("datasets/ioi-32.json");
        // validate everything that needs no weights before the model loads
        AblationType abl = AblationType.parse(ablation);
        WeightProcessing processing = WeightProcessing.parse(weightProcessing);
        PatchType pt = PatchType.parse(patchType);
        GqaLayout layout = GqaLayout.parse(gqaLayout, "--gqa-layout");
        List<PruneMetric> chosen = new ArrayList<>();
        for (String key : metrics) chosen.add(PruneMetrics.byKey(key.trim()));
        if (batchSize < 1) throw new IllegalArgumentException("--batch-size must be at least 1, got " + batchSize);
        if (trainSize < batchSize) {
            throw new IllegalArgumentException("--train-size " + trainSize + " holds no full batch of --batch-size "
                + batchSize + "; the scores need at least one train batch");
        }
        if (testSize < batchSize) {
            throw new IllegalArgumentException("--test-size " + testSize + " holds no full batch of --batch-size "
                + batchSize + "; the circuit measurements need at least one test batch");
        }
        if (edgeCounts != null) {
            for (int k : edgeCounts) if (k < 0) throw new IllegalArgumentException("--edge-counts: " + k + " is negative");
        }
        if (!Files.isDirectory(modelDir)) {
            throw new IllegalArgumentException("--model " + modelDir + ": " + (Files.exists(modelDir) ? "not a folder"
                : "no such folder") + "; expected a model folder with config.json and model.safetensors");
        }
        ModelConfig config = ModelConfig.fromHuggingFace(modelDir.resolve("config.json"));
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(batchSize)
            .trainTestSize(trainSize, testSize).returnSeqLength(tokenCircuit).shuffle(false).build();
        Datasets.LoadedDatasets loaded;
        try (Tokenizer tokenizer = Tokenizers.forModel(modelDir)) {
            loaded = Datasets.load(data, options, tokenizer, new Datasets.ModelLimits(config.nCtx(), config.dVocab()));
        }
        LoadedTask.requirePatchable(data, loaded.train(), loaded.test());
        Integer seqLen = tokenCircuit ? loaded.train().seqLen().orElseThrow() : null;

        long t0 = System.nanoTime();
        // launched data-parallel (docs/distributed.md): each rank scores and measures its batches; rank 0 prints
        try (Collective dist = ProcessGroupCollective.fromEnvironment();
             PatchableModel pm = PatchableModel.of(HookedTransformer.fromPretrained(modelDir, processing, device, dtype), true,
                OutputSlice.LAST_SEQ, seqLen, true, layout, null)) {
            InputFingerprint.checkSameOnAllRanks(dist, Map.of("model", modelDir, "dataset", data));
            PruneScores scores = MaskGradient.scores(pm, loaded.train().batches(), MaskGradient.Options.eap(),
                org.autocircuit.util.Progress.NONE, dist);
            List<Integer> counts = edgeCounts != null ? edgeCounts
                : EdgeCountsUtil.edgeCounts(pm.graph().nEdges(), TestEdges.of(EdgeCounts.LOGARITHMIC), null, true, true, null);
            CircuitOutputs outs = DataParallel.runCircuits(dist, pm, loaded.test().batches(), counts, scores, pt, abl,
                false, org.autocircuit.util.Progress.NONE);
            if (!dist.isLeader()) return 0;
            ModelMetricContext ctx = new ModelMetricContext(pm, loaded.test().batches());
            Map<String, List<Measurement>> results = new LinkedHashMap<>();
            for (PruneMetric m : chosen) results.put(m.key(), m.measure(ctx, outs));
            double seconds = (System.nanoTime() - t0) / 1e9;
            if (json) {
                printJson(modelDir, data, pm, abl, pt, results, seconds);
            } else {
                printTable(modelDir, data, pm, abl, pt, outs, results, seconds);
            }
        }
        return 0;
    }

    private void printTable(Path modelDir, Path data, PatchableModel pm, AblationType abl, PatchType pt, CircuitOutputs outs,
                            Map<String, List<Measurement>> results, double seconds) {
        System.out.printf("model %s (weight processing %s), dataset %s%n", modelDir, weightProcessing, data);
        System.out.printf("graph: %d sources, %d edges%s; scores: Edge Attribution Patching (train); %s, %s (test)%n%n",
            pm.graph().nSrcs(), pm.graph().nEdges(), tokenCircuit ? " (per token position)" : "", pt.displayName(), abl.displayName());
        StringBuilder header = new StringBuilder(String.format("%8s", "edges"));
        for (String key : results.keySet()) header.append(String.format("  %14s", abbreviate(key)));
        System.out.println(header);
        List<Integer> counts = List.copyOf(outs.edgeCounts());
        for (int i = 0; i < counts.size(); i++) {
            StringBuilder row = new StringBuilder(String.format("%8d", counts.get(i)));
            for (List<Measurement> ms : results.values()) row.append(String.format("  %14.6g", ms.get(i).y()));
            System.out.println(row);
        }
        System.out.printf("%n%d circuit sizes in %.1f s%n", counts.size(), seconds);
    }

    private static String abbreviate(String key) {
        return key.length() <= 14 ? key : key.replace("Correct Answer Greater Than Incorrect Percent", "Correct>Wrong %")
            .replace("Logit Diff Percent", "Logit Diff %").replace("Corrupt KL Div", "Corrupt KL");
    }

    private void printJson(Path modelDir, Path data, PatchableModel pm, AblationType abl, PatchType pt,
                           Map<String, List<Measurement>> results, double seconds) throws Exception {
        Map<String, Object> out = new LinkedHashMap<>();
        out.put("model", modelDir.toString());
        out.put("dataset", data.toString());
        out.put("n_edges", pm.graph().nEdges());
        out.put("token_circuit", tokenCircuit);
        out.put("weight_processing", weightProcessing);
        out.put("algorithm", "Edge Attribution Patching");
        out.put("patch_type", pt.name());
        out.put("ablation_type", abl.name());
        Map<String, Object> metricsOut = new LinkedHashMap<>();
        results.forEach((k, ms) -> {
            List<List<Double>> points = new ArrayList<>();
            for (Measurement m : ms) points.add(List.of(m.x(), m.y()));
            metricsOut.put(k, points);
        });
        out.put("measurements", metricsOut);
        out.put("seconds", seconds);
        System.out.println(new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(out));
    }
}
