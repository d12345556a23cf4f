package org.example.consumer;

import java.net.URL;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.KernelAvailability;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.kernels.NativeKernels;
import org.autocircuit.kernels.NativeKernelsLib;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.LoaderOptions;
import org.autocircuit.tasks.Tokenizers;

/**
 * Uses autocircuit-java as a library: loads a model folder and a dataset file, scores every edge with Edge
 * Attribution Patching, measures circuits of a few sizes with run_circuits, and prints the logit difference of each.
 * Exits 1 when the native kernels were not loaded from the library's jar (the check CI runs).
 *
 * <pre>java -cp consumer.jar:DEPENDENCIES org.example.consumer.Consumer MODEL_DIR DATASET_JSON</pre>
 */
public final class Consumer {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Consumer MODEL_DIR DATASET_JSON");
            System.exit(2);
        }
        Path modelDir = Path.of(args[0]);
        Path dataset = Path.of(args[1]);

        // 1. the native kernels come from the library's jar, not from a build folder
        URL lib = NativeKernelsLib.class.getResource("linux-x86_64/libjniNativeKernelsLib.so");
        URL classes = NativeKernelsLib.class.getProtectionDomain().getCodeSource().getLocation();
        System.out.println("autocircuit classes: " + classes);
        System.out.println("native kernel library: " + lib);
        System.out.println("kernels: " + KernelAvailability.describe());
        Kernels kernels = Kernels.best();
        boolean fromJar = lib != null && lib.getProtocol().equals("jar") && classes.getPath().endsWith(".jar");
        if (!(kernels instanceof NativeKernels) || !fromJar) {
            System.err.println("FAIL: expected the native kernels from the autocircuit-java jar, got " + kernels
                + " (library resource " + lib + ")");
            System.exit(1);
        }

        // 2. the prompts: 8 train and 8 test, left-padded, with a BOS token, tokenized as the model folder says
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(8).trainTestSize(8, 8)
            .shuffle(false).build();
        Datasets.LoadedDatasets data = Datasets.load(dataset, options, Tokenizers.forModel(modelDir));

        // 3. the model as a patchable graph (factorized, separate Q/K/V, last-position outputs); closing it frees
        //    its native memory
        try (PatchableModel model = PatchableModel.of(HookedTransformer.fromPretrained(modelDir), true,
                OutputSlice.LAST_SEQ, null, true, kernels)) {
            PruneScores scores = MaskGradient.scores(model, data.train().batches(), MaskGradient.Options.eap());
            int nEdges = model.graph().nEdges();
            List<Integer> sizes = List.of(0, 5, 20, nEdges);
            CircuitOutputs outs = RunCircuits.run(model, data.test().batches(), sizes, scores,
                PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
            List<Measurement> logitDiff = PruneMetrics.LOGIT_DIFF.measure(
                new ModelMetricContext(model, data.test().batches()), outs);
            System.out.printf("graph: %d edges; EAP scored them on %d prompts%n", nEdges, data.train().nPrompts());
            for (Measurement m : logitDiff) System.out.printf("circuit of %4d edges: logit diff %.4f%n", (int) m.x(), m.y());
            if (logitDiff.size() != sizes.size()) {
                System.err.println("FAIL: expected " + sizes.size() + " measurements, got " + logitDiff.size());
                System.exit(1);
            }
        }
        System.out.println("OK");
    }
}
