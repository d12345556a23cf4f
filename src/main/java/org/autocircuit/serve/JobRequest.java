package org.autocircuit.serve;

import org.autocircuit.kernels.Device;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Set;
import org.autocircuit.algorithms.PruneAlgorithms;
import org.autocircuit.discovery.Discovery;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.PatchType;
import org.autocircuit.report.DiscoveryResultBuilder;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.Tasks;

/**
 * A validated job request: what task to load and what {@link Discovery} runs on it. {@link #parse} checks every
 * field before any work and names the one at fault; the JSON is kept as submitted (for listings and restarts).
 *
 * @param json    the request as submitted
 * @param task    the task to load (a registry task, or a custom one over a model folder and dataset file)
 * @param load    how its model is loaded (weight processing, GQA layout, device, dtype): part of the loaded model's
 *                identity
 * @param options what to run on it
 */
record JobRequest(ObjectNode json, Task task, ModelCache.LoadOptions load, Discovery.Options options) {

    static final Set<String> FIELDS = Set.of("task", "model", "dataset", "algorithms", "ablation", "patch_type",
        "edge_counts", "metrics", "faithfulness_metric", "seed", "top_edges", "graph", "batch_size", "batch_count",
        "weight_processing", "gqa_layout", "device", "dtype");
    static final Set<String> GRAPH_FIELDS = Set.of("token_circuit", "factorized", "separate_qkv");
    static final List<String> DEFAULT_ALGORITHMS = List.of("EAP");

    /**
     * @throws ApiException 400 naming the field for anything missing, unknown, out of bounds or of the wrong type
     */
    static JobRequest parse(JsonNode body, Catalog catalog, ServeConfig limits) {
        if (body == null || !body.isObject()) throw ApiException.badRequest("body", "the body must be a JSON object");
        ObjectNode o = (ObjectNode) body;
        for (Iterator<String> it = o.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!FIELDS.contains(f)) {
                throw ApiException.badRequest(f, "unknown field '" + f + "'; valid: " + new java.util.TreeSet<>(FIELDS));
            }
        }
        List<String> algorithms = strings(o, "algorithms", DEFAULT_ALGORITHMS, limits.maxAlgorithms());
        if (algorithms.isEmpty()) throw ApiException.badRequest("algorithms", "at least one algorithm is needed");
        for (int i = 0; i < algorithms.size(); i++) {
            String field = "algorithms[" + i + "]";
            try {
                PruneAlgorithms.byKey(algorithms.get(i));
            } catch (IllegalArgumentException e) {
                throw ApiException.badRequest(field, e.getMessage());
            }
        }
        String ablation = string(o, "ablation", "resample");
        try {
            AblationType.parse(ablation);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("ablation", e.getMessage());
        }
        String patchType = string(o, "patch_type", "edge_patch");
        try {
            PatchType.parse(patchType);
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("patch_type", e.getMessage());
        }
        List<String> metrics = strings(o, "metrics", Discovery.DEFAULT_METRICS, 32);
        for (int i = 0; i < metrics.size(); i++) {
            try {
                PruneMetrics.byKey(metrics.get(i).trim());
            } catch (IllegalArgumentException e) {
                throw ApiException.badRequest("metrics[" + i + "]", e.getMessage());
            }
        }
        String faithfulness = string(o, "faithfulness_metric", Discovery.DEFAULT_FAITHFULNESS_METRIC);
        try {
            PruneMetrics.byKey(faithfulness.trim());
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("faithfulness_metric", e.getMessage());
        }
        List<Integer> edgeCounts = null;
        if (o.has("edge_counts") && !o.get("edge_counts").isNull()) {
            JsonNode a = o.get("edge_counts");
            if (!a.isArray()) throw ApiException.badRequest("edge_counts", "must be an array of integers");
            if (a.size() > limits.maxEdgeCounts()) {
                throw ApiException.badRequest("edge_counts", "at most " + limits.maxEdgeCounts() + " entries, got "
                    + a.size());
            }
            edgeCounts = new ArrayList<>();
            for (int i = 0; i < a.size(); i++) {
                JsonNode v = a.get(i);
                if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0) {
                    throw ApiException.badRequest("edge_counts[" + i + "]", "must be an integer >= 0, got " + v);
                }
                edgeCounts.add(v.asInt());
            }
        }
        long seed = integer(o, "seed", 0, Long.MIN_VALUE, Long.MAX_VALUE);
        int top = (int) integer(o, "top_edges", DiscoveryResultBuilder.DEFAULT_TOP_EDGES, 0, 1000);

        WeightProcessing processing;
        try {
            processing = WeightProcessing.parse(string(o, "weight_processing", "none"));
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("weight_processing", e.getMessage());
        }
        GqaLayout layout;
        try {
            layout = GqaLayout.parse(string(o, "gqa_layout", "ungrouped"), "gqa_layout");
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("gqa_layout", e.getMessage());
        }
        Device device;
        try {
            device = Device.parse(string(o, "device", "cpu"));
            device.ensureAvailable();
        } catch (IllegalArgumentException | IllegalStateException e) {
            throw ApiException.badRequest("device", e.getMessage());
        }
        org.bytedeco.pytorch.global.torch.ScalarType dtype;
        try {
            dtype = org.autocircuit.model.HookedTransformer.parseDtype(string(o, "dtype", "float32"));
        } catch (IllegalArgumentException e) {
            throw ApiException.badRequest("dtype", e.getMessage());
        }

        Task task = task(o, catalog, limits);
        Discovery.Options options = Discovery.Options.parse(algorithms, ablation, patchType, edgeCounts, metrics,
            faithfulness, seed, top, null);
        return new JobRequest(o.deepCopy(), task, new ModelCache.LoadOptions(processing, layout, device, dtype), options);
    }

    private static Task task(ObjectNode o, Catalog catalog, ServeConfig limits) {
        boolean hasTask = present(o, "task");
        boolean hasModel = present(o, "model");
        boolean hasDataset = present(o, "dataset");
        if (hasTask) {
            for (String f : new String[] {"model", "dataset", "graph", "batch_size", "batch_count"}) {
                if (present(o, f)) {
                    throw ApiException.badRequest(f, "'" + f + "' does not go with 'task' (a task fixes its model, "
                        + "dataset, batching and graph); give either 'task' or 'model' and 'dataset'");
                }
            }
            Task t;
            try {
                t = Tasks.byKey(string(o, "task", null));
            } catch (IllegalArgumentException e) {
                throw ApiException.badRequest("task", e.getMessage());
            }
            if (!catalog.runnable(t)) {
                throw ApiException.badRequest("task", "task '" + t.key() + "' cannot run here; GET /tasks says why");
            }
            return t;
        }
        if (!hasModel || !hasDataset) {
            throw ApiException.badRequest(hasModel ? "dataset" : "model",
                "give either 'task' (GET /tasks) or both 'model' (GET /models) and 'dataset' (GET /datasets)");
        }
        Path model = catalog.model("model", string(o, "model", null));
        Path dataset = catalog.dataset("dataset", string(o, "dataset", null));
        int batchSize = (int) integer(o, "batch_size", 8, 1, limits.maxPrompts());
        int batchCount = (int) integer(o, "batch_count", 2, 1, limits.maxPrompts());
        if ((long) batchSize * batchCount > limits.maxPrompts()) {
            throw ApiException.badRequest("batch_count", "batch_size × batch_count is at most " + limits.maxPrompts()
                + " prompts per split, got " + batchSize + " × " + batchCount);
        }
        int prompts = catalog.promptCount(dataset);
        if (2L * batchSize * batchCount > prompts) {
            throw ApiException.badRequest("batch_count", "the train and test splits need 2 × " + batchSize + " × "
                + batchCount + " prompts, but the dataset has " + prompts);
        }
        boolean token = false, factorized = true, separateQkv = true;
        if (present(o, "graph")) {
            JsonNode g = o.get("graph");
            if (!g.isObject()) throw ApiException.badRequest("graph", "must be an object with " + GRAPH_FIELDS);
            for (Iterator<String> it = g.fieldNames(); it.hasNext(); ) {
                String f = it.next();
                if (!GRAPH_FIELDS.contains(f)) {
                    throw ApiException.badRequest("graph." + f, "unknown field; valid: " + GRAPH_FIELDS);
                }
            }
            token = bool(g, "graph.token_circuit", "token_circuit", false);
            factorized = bool(g, "graph.factorized", "factorized", true);
            separateQkv = bool(g, "graph.separate_qkv", "separate_qkv", true);
        }
        // the tokenizer is the folder's own (Task.generic's "auto"), exactly as `discover --model DIR` takes it
        return Task.generic(model, dataset, batchSize, batchCount).toBuilder()
            .tokenCircuit(token).factorized(factorized).separateQkv(separateQkv).build();
    }

    private static boolean present(JsonNode o, String f) {
        return o.has(f) && !o.get(f).isNull();
    }

    private static String string(JsonNode o, String f, String dflt) {
        if (!present(o, f)) return dflt;
        JsonNode v = o.get(f);
        if (!v.isTextual()) throw ApiException.badRequest(f, "must be a string, got " + v.getNodeType());
        if (v.asText().length() > 256) throw ApiException.badRequest(f, "longer than 256 characters");
        return v.asText();
    }

    private static List<String> strings(JsonNode o, String f, List<String> dflt, int max) {
        if (!present(o, f)) return dflt;
        JsonNode a = o.get(f);
        if (!a.isArray()) throw ApiException.badRequest(f, "must be an array of strings");
        if (a.size() > max) throw ApiException.badRequest(f, "at most " + max + " entries, got " + a.size());
        List<String> out = new ArrayList<>();
        for (int i = 0; i < a.size(); i++) {
            if (!a.get(i).isTextual() || a.get(i).asText().length() > 256) {
                throw ApiException.badRequest(f + "[" + i + "]", "must be a string of at most 256 characters");
            }
            out.add(a.get(i).asText());
        }
        return out;
    }

    private static long integer(JsonNode o, String f, long dflt, long min, long max) {
        if (!present(o, f)) return dflt;
        JsonNode v = o.get(f);
        if (!v.isIntegralNumber() || !v.canConvertToLong() || v.asLong() < min || v.asLong() > max) {
            throw ApiException.badRequest(f, "must be an integer in [" + min + ", " + max + "], got " + v);
        }
        return v.asLong();
    }

    private static boolean bool(JsonNode g, String field, String f, boolean dflt) {
        if (!present(g, f)) return dflt;
        JsonNode v = g.get(f);
        if (!v.isBoolean()) throw ApiException.badRequest(field, "must be true or false, got " + v);
        return v.asBoolean();
    }
}
