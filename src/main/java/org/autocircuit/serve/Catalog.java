package org.autocircuit.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;
import org.autocircuit.graph.Graph;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tasks;

/**
 * The models and datasets under the configured folders, and the one place request paths become files: a model or
 * dataset is named by its path relative to one of those folders, and {@link #resolve} refuses anything that could
 * leave them (absolute paths, {@code ..}, symbolic links that point outside).
 *
 * <p>A model is a folder (at most two levels down) holding config.json and model.safetensors; a dataset is a JSON
 * file (at most two levels down) whose top level holds a {@code prompts} array. Listings read config.json and the
 * dataset files only, never the weights; what they read is cached by file size and modification time.
 */
final class Catalog {
    private static final int MAX_DEPTH = 2;
    private static final int MAX_NAME_CHARS = 256;
    /** Datasets larger than this are not parsed for listing (nor accepted by jobs). */
    static final long MAX_DATASET_BYTES = 64L << 20;

    private final List<Path> modelRoots;
    private final List<Path> datasetRoots;
    private final TaskPaths taskPaths;
    private final ObjectMapper json = new ObjectMapper();
    private final Map<Path, Cached> cache = new ConcurrentHashMap<>();

    private record Cached(long size, FileTime modified, Map<String, Object> info) {}

    Catalog(List<Path> modelRoots, List<Path> datasetRoots, TaskPaths taskPaths) {
        this.modelRoots = realRoots(modelRoots, "--models");
        this.datasetRoots = realRoots(datasetRoots, "--datasets");
        this.taskPaths = taskPaths;
    }

    private static List<Path> realRoots(List<Path> roots, String option) {
        List<Path> out = new ArrayList<>();
        for (Path r : roots) {
            try {
                out.add(r.toRealPath());
            } catch (IOException e) {
                throw new IllegalArgumentException(option + ": folder " + r.toAbsolutePath() + " does not exist");
            }
            if (!Files.isDirectory(out.get(out.size() - 1))) {
                throw new IllegalArgumentException(option + ": " + r.toAbsolutePath() + " is not a folder");
            }
        }
        return List.copyOf(out);
    }

    TaskPaths taskPaths() {
        return taskPaths;
    }

    /**
     * The model folder a request names.
     *
     * @throws ApiException 400 naming {@code field} for a path that would leave the model folders or is not a model
     */
    Path model(String field, String name) {
        Path dir = resolve(modelRoots, field, name, "model");
        if (!isModel(dir)) {
            throw ApiException.badRequest(field, "'" + name + "' is not a model folder (config.json and "
                + "model.safetensors); GET /models lists the models");
        }
        return dir;
    }

    /** The dataset file a request names (same rules as {@link #model}). */
    Path dataset(String field, String name) {
        Path file = resolve(datasetRoots, field, name, "dataset");
        if (datasetInfo(file) == null) {
            throw ApiException.badRequest(field, "'" + name + "' is not a dataset (a JSON file with a \"prompts\" "
                + "array, at most " + (MAX_DATASET_BYTES >> 20) + " MiB); GET /datasets lists the datasets");
        }
        return file;
    }

    /** The prompt count of a dataset {@link #dataset} accepted. */
    int promptCount(Path datasetFile) {
        Map<String, Object> info = datasetInfo(datasetFile);
        return info == null ? 0 : (Integer) info.get("prompts");
    }

    /**
     * Resolves a relative name under the first root holding it. The name must be relative, use '/' between parts,
     * and have no empty, '.' or '..' part; the resolved file's real path (links followed) must stay inside its root.
     */
    static Path resolve(List<Path> roots, String field, String name, String what) {
        if (name == null || name.isBlank()) throw ApiException.badRequest(field, "a " + what + " name is required");
        if (name.length() > MAX_NAME_CHARS) {
            throw ApiException.badRequest(field, "the " + what + " name is longer than " + MAX_NAME_CHARS + " characters");
        }
        if (name.startsWith("/") || name.contains("\\") || name.indexOf('\0') >= 0 || name.contains(":")) {
            throw ApiException.badRequest(field, "'" + name + "' must be a path relative to a configured " + what
                + " folder, with '/' between parts (absolute paths are refused)");
        }
        for (String part : name.split("/", -1)) {
            if (part.isEmpty() || part.equals(".") || part.equals("..")) {
                throw ApiException.badRequest(field, "'" + name + "' must not contain empty, '.' or '..' parts; "
                    + "requests cannot leave the configured " + what + " folders");
            }
        }
        for (Path root : roots) {
            Path candidate = root.resolve(name).normalize();
            if (!candidate.startsWith(root)) continue;
            if (!Files.exists(candidate, LinkOption.NOFOLLOW_LINKS)) continue;
            Path real;
            try {
                real = candidate.toRealPath();
            } catch (IOException e) {
                throw ApiException.badRequest(field, "'" + name + "' cannot be resolved (a broken link?)");
            }
            if (!real.startsWith(root)) {
                throw ApiException.badRequest(field, "'" + name + "' is a link that leaves the configured " + what
                    + " folders; refused");
            }
            return real;
        }
        throw ApiException.badRequest(field, "unknown " + what + " '" + name + "'; GET /" + what + "s lists them");
    }

    private static boolean isModel(Path dir) {
        return Files.isDirectory(dir) && Files.isRegularFile(dir.resolve("config.json"))
            && Files.isRegularFile(dir.resolve("model.safetensors"));
    }

    /** Every model folder with its architecture, graph edge counts and the tasks it can run. */
    List<Map<String, Object>> models() {
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Boolean> seen = new LinkedHashMap<>();
        for (Path root : modelRoots) {
            for (Path dir : walk(root, true)) {
                String name = relativeName(root, dir);
                if (seen.putIfAbsent(name, true) != null || !isModel(dir)) continue;
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("name", name);
                m.putAll(modelInfo(dir));
                out.add(m);
            }
        }
        return out;
    }

    /** Every dataset file with its prompt count. */
    List<Map<String, Object>> datasets() {
        List<Map<String, Object>> out = new ArrayList<>();
        Map<String, Boolean> seen = new LinkedHashMap<>();
        for (Path root : datasetRoots) {
            for (Path f : walk(root, false)) {
                String name = relativeName(root, f);
                if (!name.endsWith(".json") || seen.putIfAbsent(name, true) != null) continue;
                Map<String, Object> info = datasetInfo(f);
                if (info == null) continue;
                Map<String, Object> d = new LinkedHashMap<>();
                d.put("name", name);
                d.putAll(info);
                out.add(d);
            }
        }
        return out;
    }

    /** The registry's tasks and whether each can run here. */
    List<Map<String, Object>> tasks() {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Task t : Tasks.ALL) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("key", t.key());
            m.put("name", t.name());
            m.put("model", t.modelName());
            m.put("dataset", t.dataset());
            m.put("token_circuit", t.tokenCircuit());
            m.put("official_circuit", t.officialCircuit());
            m.put("runnable", runnable(t));
            m.put("why_not", whyNot(t));
            out.add(m);
        }
        return out;
    }

    boolean runnable(Task t) {
        return whyNot(t) == null;
    }

    private String whyNot(Task t) {
        if (t.unsupported() != null) return t.unsupported();
        if (!isModel(t.modelPath(taskPaths))) return "its model folder is not installed (" + t.modelFolder() + ")";
        if (!Files.isRegularFile(t.datasetPath(taskPaths))) return "its dataset is not installed (" + t.dataset() + ")";
        return null;
    }

    private Map<String, Object> modelInfo(Path dir) {
        Path config = dir.resolve("config.json");
        return cached(config, () -> {
            Map<String, Object> m = new LinkedHashMap<>();
            ModelConfig cfg = ModelConfig.fromHuggingFace(config);
            m.put("architecture", cfg.architecture());
            m.put("n_layers", cfg.nLayers());
            m.put("n_heads", cfg.nHeads());
            m.put("d_model", cfg.dModel());
            m.put("d_vocab", cfg.dVocab());
            m.put("n_ctx", cfg.nCtx());
            m.put("attn_only", cfg.attnOnly());
            m.put("weights_bytes", Files.size(dir.resolve("model.safetensors")));
            Map<String, Object> edges = new LinkedHashMap<>();
            edges.put("component", Graph.transformerFactorized(cfg.shape(), true, null).nEdges());
            edges.put("component_shared_qkv", Graph.transformerFactorized(cfg.shape(), false, null).nEdges());
            edges.put("residual", Graph.transformerUnfactorized(cfg.shape(), null).nEdges());
            m.put("edges", edges);
            m.put("edges_note", "token circuits (graph.token_circuit) have these counts per token position");
            List<String> tasks = new ArrayList<>();
            Path real = dir.toRealPath();
            for (Task t : Tasks.ALL) {
                Path tp = t.modelPath(taskPaths);
                if (t.unsupported() == null && Files.isDirectory(tp) && tp.toRealPath().equals(real)) tasks.add(t.key());
            }
            m.put("tasks", tasks);
            m.put("custom_jobs", "any dataset of GET /datasets, with \"model\" and \"dataset\"");
            return m;
        }, true);
    }

    private Map<String, Object> datasetInfo(Path file) {
        return cached(file, () -> {
            if (Files.size(file) > MAX_DATASET_BYTES) return null;
            JsonNode root = json.readTree(file.toFile());
            if (root == null || !root.isObject() || !root.path("prompts").isArray()) return null;
            Map<String, Object> d = new LinkedHashMap<>();
            d.put("prompts", root.get("prompts").size());
            d.put("bytes", Files.size(file));
            d.put("seq_labels", root.path("seq_labels").isArray());
            List<String> words = new ArrayList<>();
            root.path("word_idxs").fieldNames().forEachRemaining(words::add);
            d.put("word_idxs", words);
            return d;
        }, false);
    }

    private interface Reader {
        Map<String, Object> read() throws IOException;
    }

    /** Reads through the cache; an unreadable file gives null (not listed, refused by jobs) unless {@code strict}. */
    private Map<String, Object> cached(Path file, Reader reader, boolean strict) {
        try {
            long size = Files.size(file);
            FileTime modified = Files.getLastModifiedTime(file);
            Cached c = cache.get(file);
            if (c != null && c.size == size && c.modified.equals(modified)) return c.info;
            Map<String, Object> info = reader.read();
            cache.put(file, new Cached(size, modified, info));
            return info;
        } catch (IOException | RuntimeException e) {
            if (!strict) return null;
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("error", "cannot read " + file.getFileName() + ": " + e.getMessage());
            return m;
        }
    }

    private static List<Path> walk(Path root, boolean dirs) {
        try (Stream<Path> s = Files.walk(root, MAX_DEPTH)) {
            return s.filter(p -> !p.equals(root)).filter(p -> dirs ? Files.isDirectory(p) : Files.isRegularFile(p))
                .filter(p -> insideAfterLinks(root, p)).sorted().toList();
        } catch (IOException e) {
            return List.of();
        }
    }

    private static boolean insideAfterLinks(Path root, Path p) {
        try {
            return p.toRealPath().startsWith(root);
        } catch (IOException e) {
            return false;
        }
    }

    private static String relativeName(Path root, Path p) {
        return root.relativize(p).toString().replace(java.io.File.separatorChar, '/');
    }
}
