package org.autocircuit.cli;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.autocircuit.algorithms.PruneAlgorithms;
import org.autocircuit.algorithms.RegisteredAlgorithm;
import org.autocircuit.discovery.Discovery;
import org.autocircuit.discovery.LoadedTask;
import org.autocircuit.distributed.Collective;
import org.autocircuit.distributed.InputFingerprint;
import org.autocircuit.distributed.ProcessGroupCollective;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.report.DiscoveryResult.AlgorithmResult;
import org.autocircuit.report.DiscoveryResult.EdgeScore;
import org.autocircuit.report.DiscoveryResult.FaithfulnessPoint;
import org.autocircuit.report.DiscoveryResult;
import org.autocircuit.report.HtmlReport;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tasks;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * The main job: score the edges of a task's graph with one or more algorithms on the train split, measure circuits
 * of growing size on the test split, and report the top edges, the faithfulness curve, the ROC AUC against the
 * task's official circuit, and an offline HTML report.
 */
@Command(name = "discover", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Discover a circuit: score edges with the chosen algorithms, measure circuits of growing size, "
        + "compare with the official circuit (ROC), write an HTML report.")
final class DiscoverCommand implements Callable<Integer> {

    static final String DEFAULT_TASK = "induction-2l";
    static final String DEFAULT_ALGORITHMS = "EAP,ACDC,Random";

    @Option(names = "--task", description = "Task key (see `autocircuit tasks`). Default: ${DEFAULT-VALUE}.",
        defaultValue = DEFAULT_TASK)
    String task;

    @Option(names = "--model", description = "A Hugging Face model folder (GPT-2, GPT-NeoX/Pythia, Llama, Mistral, Qwen2 or Gemma-2; one safetensors file or shards) for a custom task; needs --dataset.")
    Path model;

    @Option(names = "--dataset", description = "A dataset JSON (AutoCircuit format) for a custom task; needs --model.")
    Path dataset;

    @Option(names = "--models-root", description = "Folder holding pretrained model folders (default: <home>/models).")
    Path modelsRoot;

    @Option(names = "--weight-processing", defaultValue = "none", paramLabel = "none|tl",
        description = "Rewrite the weights before use: none (as stored) or tl (TransformerLens's fold_ln, "
            + "center_writing_weights, center_unembed, fold_value_biases, as AutoCircuit's load_tl_model). "
            + "Default: ${DEFAULT-VALUE}.")
    String weightProcessing;

    @Option(names = "--gqa-layout", defaultValue = "ungrouped",
        description = "K/V destinations of a grouped-query-attention model: ungrouped (one per query head, AutoCircuit's "
            + "and MIB's layout) or grouped (one per key/value head). Default: ${DEFAULT-VALUE}.")
    String gqaLayout;

    @Option(names = "--algorithms", split = ",", defaultValue = DEFAULT_ALGORITHMS,
        description = "Algorithm keys or short names, comma-separated (default: ${DEFAULT-VALUE}; "
            + "`--algorithms help` lists them).")
    List<String> algorithms;

    @Option(names = "--ablation", defaultValue = "resample",
        description = "Ablation for the circuit measurements: resample, zero, tokenwise_mean_corrupt, ...")
    String ablation;

    @Option(names = "--patch-type", defaultValue = "edge_patch", description = "edge_patch or tree_patch")
    String patchType;

    @Option(names = "--edge-counts", split = ",",
        description = "Circuit sizes to measure (default: 0, 1..9, 10, 20, ..., all, plus the faithfulness grid).")
    List<Integer> edgeCounts;

    @Option(names = "--metrics", split = ",", defaultValue = "Logit Diff,Clean KL Div,Answer Prob,Correct Answer Percent",
        description = "Prune metrics to measure (default: ${DEFAULT-VALUE}).")
    List<String> metrics;

    @Option(names = "--faithfulness-metric", defaultValue = "Logit Diff",
        description = "The metric of the faithfulness curve, CPR and CMD (default: ${DEFAULT-VALUE}).")
    String faithfulnessMetric;

    @Option(names = "--seed", defaultValue = "0", description = "Seed of seeded algorithms (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--top", defaultValue = "10", description = "How many top edges to print per algorithm.")
    int top;

    @Option(names = "--report", description = "Where to write the HTML report (default: reports/<task>.html).")
    Path report;

    @Option(names = "--no-report", description = "Do not write the HTML report.")
    boolean noReport;

    @Option(names = "--result", description = "Also write the result as JSON to this file (docs/schema/).")
    Path resultFile;

    @Option(names = "--checkpoint-dir",
        description = "Keep resumable algorithms' finished work here (ACDC, probing); a rerun resumes from it.")
    Path checkpointDir;

    @picocli.CommandLine.Mixin
    DeviceOption deviceOption = new DeviceOption();

    @Option(names = "--json", description = "Print the result JSON (docs/schema/discover-result.schema.json) on stdout.")
    boolean json;

    @Option(names = "--force", description = "Replace existing --result / --report files even if this tool did not "
        + "write them (docs/reliability.md).")
    boolean force;

    @Override
    public Integer call() throws Exception {
        if (algorithms.size() == 1 && algorithms.get(0).equalsIgnoreCase("help")) {
            for (RegisteredAlgorithm a : PruneAlgorithms.ALL) {
                System.out.printf("%-24s %-46s %s%n", a.shortName(), a.key(), a.parameters());
            }
            return 0;
        }
        // validate everything cheap before loading a model
        org.autocircuit.kernels.Device device = deviceOption.resolve();
        org.bytedeco.pytorch.global.torch.ScalarType dtype = deviceOption.dtype();
        if (top < 0) throw new IllegalArgumentException("--top must be >= 0, got " + top);
        WeightProcessing processing = WeightProcessing.parse(weightProcessing);
        GqaLayout layout = GqaLayout.parse(gqaLayout, "--gqa-layout");
        Discovery.Options options = Discovery.Options.parse(algorithms, ablation, patchType, edgeCounts, metrics,
            faithfulnessMetric, seed, top, checkpointDir);
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (var a : options.algorithms()) {
            if (!seen.add(a.key())) {
                throw new IllegalArgumentException("--algorithms names " + a.shortName() + " twice (" + algorithms
                    + "); list each algorithm once");
            }
        }
        if (edgeCounts != null) {
            for (int k : edgeCounts) if (k < 0) throw new IllegalArgumentException("--edge-counts: " + k + " is negative");
        }
        if ((model == null) != (dataset == null)) {
            throw new IllegalArgumentException("a custom task needs both --model DIR and --dataset FILE");
        }
        if (model != null) {
            if (!Files.isDirectory(model)) {
                throw new IllegalArgumentException("--model " + model + ": " + (Files.exists(model) ? "not a folder"
                    : "no such folder") + "; expected a model folder with config.json and model.safetensors");
            }
            if (!Files.isRegularFile(dataset)) {
                throw new IllegalArgumentException("--dataset " + dataset + ": " + (Files.exists(dataset)
                    ? "not a regular file (a folder, FIFO or device)" : "no such file"));
            }
        }

        TaskPaths paths = TaskPaths.under(Main.home());
        if (modelsRoot != null) paths = paths.withModelsRoot(modelsRoot);
        Task t = model != null ? Task.generic(model, dataset, 8, 2) : Tasks.byKey(task);
        Path reportPath = noReport ? null
            : report != null ? report : Path.of("reports", t.key().replaceAll("[^A-Za-z0-9._-]", "_") + ".html");
        // launched data-parallel (docs/distributed.md): rank 0 alone checks, writes and prints
        try (Collective dist = ProcessGroupCollective.fromEnvironment()) {
            if (dist.isLeader()) {
                List<Path> inputs = inputs(t, paths);
                if (reportPath != null && resultFile != null
                        && org.autocircuit.util.AtomicFiles.samePath(reportPath, resultFile)) {
                    throw new IllegalArgumentException("--report and --result name the same file " + resultFile);
                }
                if (reportPath != null) Outputs.check(reportPath, "--report", force, Outputs.HTML_REPORT, inputs);
                if (resultFile != null) Outputs.check(resultFile, "--result", force, Outputs.RESULT_JSON, inputs);
                if (checkpointDir != null) {
                    org.autocircuit.util.AtomicFiles.checkWritableFolder(checkpointDir, "--checkpoint-dir");
                }
            }
            run(t, paths, options, reportPath, processing, layout, dist, device, dtype);
        }
        return 0;
    }

    private void run(Task t, TaskPaths paths, Discovery.Options options, Path reportPath, WeightProcessing processing,
                     GqaLayout layout, Collective dist, org.autocircuit.kernels.Device device,
                     org.bytedeco.pytorch.global.torch.ScalarType dtype) throws Exception {
        long t0 = System.nanoTime();
        // null kernels: the device's own (Kernels.best() on the CPU)
        try (LoadedTask loaded = LoadedTask.load(t, paths, null, processing, layout, device, dtype);
             ConsoleProgress progress = new ConsoleProgress(!dist.isLeader())) {
            InputFingerprint.checkSameOnAllRanks(dist, java.util.Map.of("model", t.modelPath(paths),
                "dataset", t.datasetPath(paths)));
            DiscoveryResult r = Discovery.run(loaded, paths, options, progress, t0, dist);
            if (!dist.isLeader()) return;
            if (resultFile != null) r.write(resultFile);
            if (reportPath != null) HtmlReport.write(r, reportPath);
            if (json) {
                System.out.println(r.toJson());
            } else {
                printSummary(r, loaded, reportPath);
            }
        }
    }

    private void printSummary(DiscoveryResult r, LoadedTask loaded, Path reportPath) {
        System.out.printf("task %s: %s%n", r.run().task(), loaded.task().name());
        System.out.printf("graph: %d edges%s; train %d prompts, test %d prompts%n", loaded.graph().nEdges(),
            loaded.graph().seqLen().isPresent() ? " (per token position)" : "", loaded.train().nPrompts(),
            loaded.test().nPrompts());
        for (AlgorithmResult a : r.algorithms()) {
            System.out.printf("%n== %s (%s), scored in %.2f s%n", a.name(), a.key(), a.seconds() == null ? 0 : a.seconds());
            List<EdgeScore> topEdges = a.topEdges();
            System.out.printf("top %d edges:%n", Math.min(top, topEdges.size()));
            for (int i = 0; i < Math.min(top, topEdges.size()); i++) {
                EdgeScore e = topEdges.get(i);
                System.out.printf("  %3d. %-28s %s%n", i + 1, e.edge() + (e.seqIdx() == null ? "" : " @" + e.seqIdx()),
                    formatScore(e.score()));
            }
            if (a.faithfulness() != null) {
                System.out.printf("faithfulness of %s (m(∅) = %.4g, m(full) = %.4g):%n", a.faithfulness().metricKey(),
                    a.faithfulness().emptyValue(), a.faithfulness().fullValue());
                System.out.printf("  %8s %7s %10s %8s%n", "fraction", "edges", "value", "f");
                for (FaithfulnessPoint p : a.faithfulness().points()) {
                    System.out.printf("  %8.3f %7d %10.4g %8.3f%n", p.fraction(), p.edgeCount(), p.metricValue(), p.faithfulness());
                }
                System.out.printf("  CPR %.3f, CMD %.3f%n", a.faithfulness().cpr(), a.faithfulness().cmd());
            }
            if (a.roc() != null) {
                System.out.printf("ROC AUC against the official circuit '%s' (%d edges): %.3f%n", a.roc().officialCircuit(),
                    a.roc().officialEdgeCount(), a.roc().auc());
            }
        }
        if (reportPath != null) System.out.printf("%nreport: %s%n", reportPath.toAbsolutePath().normalize());
        System.out.printf("done in %.1f s%n", r.run().timingsSeconds().getOrDefault("total", 0.0));
    }

    private static String formatScore(double s) {
        if (Double.isInfinite(s)) return s > 0 ? "+inf (kept)" : "-inf";
        return String.format(Locale.ROOT, "%+.5g", s);
    }


    /** The files this run reads, which no output may replace. */
    private static List<Path> inputs(Task t, TaskPaths paths) {
        List<Path> in = new java.util.ArrayList<>();
        in.add(t.datasetPath(paths));
        Path dir = t.modelPath(paths);
        if (Files.isDirectory(dir)) {
            try (var files = Files.list(dir)) {
                files.forEach(in::add);
            } catch (java.io.IOException e) {
                // an unreadable model folder fails the load, with a better message
            }
        }
        return in;
    }
}
