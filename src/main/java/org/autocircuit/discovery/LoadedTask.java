package org.autocircuit.discovery;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.OfficialCircuit;
import org.autocircuit.kernels.Device;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.KvCache;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.WeightProcessing;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.PromptDataLoader;
import org.autocircuit.tasks.Task;
import org.autocircuit.tasks.TaskPaths;
import org.autocircuit.tasks.Tokenizer;
import org.autocircuit.tasks.Tokenizers;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;

/**
 * A {@link Task} with everything loaded (AutoCircuit's {@code Task.init_task}): the patchable model, the
 * train and test loaders, the key/value caches of the shared prompt prefix, and the official circuit's edges.
 *
 * <p>Owns the native memory of the model, its masks and its caches; {@link #close()} frees them. Nothing is cached
 * between tasks: two tasks on the same model folder load it twice. Not thread-safe (as {@link PatchableModel}).
 */
public final class LoadedTask implements AutoCloseable {
    private final Task task;
    private final PatchableModel model;
    private final PromptDataLoader train;
    private final PromptDataLoader test;
    private final OfficialCircuit officialCircuit;
    private final Set<Edge> officialEdges;

    private LoadedTask(Task task, PatchableModel model, PromptDataLoader train, PromptDataLoader test,
                       OfficialCircuit officialCircuit, Set<Edge> officialEdges) {
        this.task = task;
        this.model = model;
        this.train = train;
        this.test = test;
        this.officialCircuit = officialCircuit;
        this.officialEdges = officialEdges;
    }

    /** {@link #load(Task, TaskPaths, Kernels)} with the best available kernels ({@link Kernels#best()}). */
    public static LoadedTask load(Task task, TaskPaths paths) throws IOException {
        return load(task, paths, Kernels.best());
    }

    /**
     * Loads the model folder, the dataset, the graph and the official circuit.
     *
     * <ol>
     *   <li>The task must be supported and its model folder and dataset file must exist; the errors say which path
     *       is missing and what belongs there.</li>
     *   <li>The dataset is loaded as AutoCircuit does: BOS, left padding, tail divergence, shuffle with seed 42,
     *       {@code batch_size × batch_count} prompts per split, and the padded length as the graph's token
     *       positions for token circuits.</li>
     *   <li>The model becomes a {@link PatchableModel} with the task's graph; the shared prompt prefix cut by tail
     *       divergence becomes frozen key/value caches (one per distinct batch size).</li>
     *   <li>The official circuit (if any) is resolved on that graph, at the dataset's word positions.</li>
     * </ol>
     *
     * @throws IllegalArgumentException        for a missing folder or file, or bad content, naming it
     * @throws UnsupportedOperationException   for a task this port cannot run, saying why
     * @throws IOException                     if a file cannot be read
     */
    public static LoadedTask load(Task task, TaskPaths paths, Kernels kernels) throws IOException {
        return load(task, paths, kernels, WeightProcessing.NONE, GqaLayout.UNGROUPED);
    }

    /**
     * {@link #load(Task, TaskPaths, Kernels)} with the model's weights rewritten by {@code processing} first
     * ({@link WeightProcessing#TL}: as AutoCircuit's {@code load_tl_model} loads models through TransformerLens).
     */
    public static LoadedTask load(Task task, TaskPaths paths, Kernels kernels, WeightProcessing processing)
            throws IOException {
        return load(task, paths, kernels, processing, GqaLayout.UNGROUPED);
    }

    /**
     * {@link #load(Task, TaskPaths, Kernels, WeightProcessing)} with the K/V destinations of a grouped-query-attention
     * model laid out as {@code layout} says (models without grouped-query attention have one layout).
     */
    public static LoadedTask load(Task task, TaskPaths paths, Kernels kernels, WeightProcessing processing,
                                  GqaLayout layout) throws IOException {
        return load(task, paths, kernels, processing, layout, Device.CPU, org.bytedeco.pytorch.global.torch.ScalarType.Float);
    }

    /**
     * {@link #load(Task, TaskPaths, Kernels, WeightProcessing, GqaLayout)} with the model on {@code device}: its
     * weights, masks, patch buffers, ablation values and key/value caches are made there; weights and activations
     * in {@code dtype} (float32, bfloat16 or float16; masks stay float32).
     *
     * @param kernels the masked-difference implementation, or null for the device's own
     *                ({@link Kernels#forDevice}; on the CPU that is {@link Kernels#best()})
     * @throws IllegalStateException when the device is unavailable, before anything is read
     */
    public static LoadedTask load(Task task, TaskPaths paths, Kernels kernels, WeightProcessing processing,
                                  GqaLayout layout, Device device, org.bytedeco.pytorch.global.torch.ScalarType dtype)
            throws IOException {
        Objects.requireNonNull(device, "device").ensureAvailable();
        HookedTransformer.checkDtype(dtype);
        Objects.requireNonNull(task, "task");
        Objects.requireNonNull(processing, "processing");
        Objects.requireNonNull(paths, "paths");
        if (task.unsupported() != null) {
            throw new UnsupportedOperationException("task '" + task.key() + "' cannot run in this port: "
                + task.unsupported());
        }
        Path modelDir = task.modelPath(paths);
        checkModelFolder(task, modelDir, paths);
        Path dataset = task.datasetPath(paths);
        if (!Files.isRegularFile(dataset)) {
            throw new IllegalArgumentException("task '" + task.key() + "' needs the dataset file " + dataset
                + (Files.exists(dataset) ? ", which is not a regular file (a folder, FIFO or device)"
                    : ", which does not exist" + generateHint(task)));
        }
        OfficialCircuit circuit = null;
        if (task.officialCircuit() != null) {
            Path file = paths.officialCircuits().resolve(task.officialCircuit() + ".json");
            if (!Files.isRegularFile(file)) {
                throw new IllegalArgumentException("task '" + task.key() + "' needs the official circuit file " + file
                    + ", which does not exist");
            }
            circuit = OfficialCircuit.read(file);
        }

        // Everything that can be checked without the weights comes first: the config (architecture, sizes), the
        // tokenizer, and every prompt against the model's context length and vocabulary.
        ModelConfig config = ModelConfig.fromHuggingFace(modelDir.resolve("config.json"));
        Datasets.LoadedDatasets data;
        try (Tokenizer tokenizer = tokenizer(task, modelDir)) {
            data = Datasets.load(dataset, task.loaderOptions(), tokenizer,
                new Datasets.ModelLimits(config.nCtx(), config.dVocab()));
        }
        PromptDataLoader train = data.train();
        PromptDataLoader test = data.test();
        requirePatchable(dataset, train, test);
        Integer seqLen = task.tokenCircuit() ? train.seqLen().orElseThrow() : null;

        HookedTransformer transformer = HookedTransformer.fromPretrained(modelDir, processing, device, dtype);
        PatchableModel model;
        try {
            model = PatchableModel.of(transformer, task.factorized(), task.slice(), seqLen, task.separateQkv(), layout,
                kernels);
        } catch (RuntimeException e) {
            transformer.close();
            throw e;
        }
        try {
            addKvCaches(model, transformer, train, test);
            Set<Edge> official = null;
            if (circuit != null) {
                Graph g = model.graph();
                official = g.seqLen().isPresent()
                    ? circuit.resolve(g, train.wordIdxs(), train.divergeIdx())
                    : circuit.resolve(g);
            }
            return new LoadedTask(task, model, train, test, circuit, official);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Refuses a dataset whose every corrupt prompt equals its clean one: patching then changes nothing, and every
     * algorithm would score all edges 0 after all its work.
     */
    public static void requirePatchable(Path dataset, PromptDataLoader train, PromptDataLoader test) {
        if (train.batches().isEmpty()) {
            throw new IllegalArgumentException(dataset + ": the train split holds no full batch");
        }
        for (PromptDataLoader l : new PromptDataLoader[] {train, test}) {
            for (PromptPairBatch b : l.batches()) {
                if (!b.clean().equals(b.corrupt())) return;
            }
        }
        throw new IllegalArgumentException(dataset + ": every corrupt prompt equals its clean prompt, so patching "
            + "cannot change any output; the corrupt prompts must differ");
    }

    private static void checkModelFolder(Task task, Path dir, TaskPaths paths) {
        String where = task.bundledModel() ? " (bundled with this repository under " + paths.datasetsRoot() + ")"
            : " (the models root is " + paths.modelsRoot() + "; change it with --models-root DIR)";
        if (!Files.isDirectory(dir)) {
            throw new IllegalArgumentException("task '" + task.key() + "' needs the model folder " + dir
                + ", which does not exist" + where + "; it should hold " + task.modelDescription());
        }
        if (!Files.isRegularFile(dir.resolve("config.json"))) {
            throw new IllegalArgumentException("task '" + task.key() + "': model folder " + dir + " lacks config.json"
                + "; it should hold " + task.modelDescription());
        }
        if (!Files.isRegularFile(dir.resolve("model.safetensors"))
            && !Files.isRegularFile(dir.resolve("model.safetensors.index.json"))) {
            throw new IllegalArgumentException("task '" + task.key() + "': model folder " + dir + " lacks "
                + "model.safetensors (or model.safetensors.index.json and its shards); it should hold "
                + task.modelDescription());
        }
    }

    private static String generateHint(Task task) {
        if (Path.of(task.dataset()).isAbsolute()) return "";   // a file the user named: nothing to suggest
        String name = Path.of(task.dataset()).getFileName().toString();
        for (String g : new String[] {"ioi", "greater-than", "docstring"}) {
            if (name.equals(g + ".json")) return "; make it with `autocircuit generate " + g + " --out " + task.dataset() + "`";
        }
        return "; it is AutoCircuit's dataset file of that name, copy it there";
    }

    /**
     * The tokenizer a task names: {@code "gpt2"} (GPT-2's byte-level BPE) or {@code "auto"} (whatever the model
     * folder holds, see {@link Tokenizers#forModel}: the bundled models use a word vocabulary).
     *
     * @throws IllegalArgumentException for an unknown name
     */
    static Tokenizer tokenizer(Task task, Path modelDir) {
        if (task.tokenizer().equals("gpt2")) return new Gpt2Tokenizer();
        if (task.tokenizer().equals("auto")) {
            try {
                return Tokenizers.forModel(modelDir);
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            } catch (IllegalArgumentException e) {
                // A folder with no tokenizer files at all (test fixtures of other families): GPT-2's BPE, as before,
                // said aloud; the dataset loader still refuses every id outside the model's vocabulary by name.
                if (!e.getMessage().contains("has no tokenizer")) throw e;
                org.slf4j.LoggerFactory.getLogger(LoadedTask.class).warn("{}; tokenizing with GPT-2's BPE", e.getMessage());
                return new Gpt2Tokenizer();
            }
        }
        throw new IllegalArgumentException("task '" + task.key() + "' names tokenizer '" + task.tokenizer()
            + "' for " + modelDir + "; valid: gpt2, auto");
    }

    /**
     * AutoCircuit builds one cache from {@code clean[:batch, :diverge_idx]} for each batch size (train and test
     * when they differ); forward passes pick the cache by batch size.
     */
    private static void addKvCaches(PatchableModel model, HookedTransformer transformer, PromptDataLoader train,
                                    PromptDataLoader test) {
        for (PromptDataLoader loader : new PromptDataLoader[] {train, test}) {
            if (loader.kvPrefix().isEmpty()) continue;
            if (loader == test && test.batchSize() == train.batchSize() && train.kvPrefix().isPresent()) continue;
            try (PointerScope scope = new PointerScope()) {
                Tensor prefix = loader.kvPrefix().get().toTensor();
                Tensor mask = loader.kvPrefixPadding().map(h -> h.toTensor()).orElse(null);
                KvCache cache = transformer.buildKvCache(prefix, mask);
                model.addKvCache(cache);
            }
        }
    }

    public Task task() {
        return task;
    }

    /** The patchable model (owned by this task). */
    public PatchableModel model() {
        return model;
    }

    public Graph graph() {
        return model.graph();
    }

    public PromptDataLoader train() {
        return train;
    }

    public PromptDataLoader test() {
        return test;
    }

    /** The official circuit's definition, when the task has one. */
    public Optional<OfficialCircuit> officialCircuit() {
        return Optional.ofNullable(officialCircuit);
    }

    /** The official circuit's edges in this task's graph ({@code task.true_edges}). */
    public Optional<Set<Edge>> officialEdges() {
        return Optional.ofNullable(officialEdges);
    }

    /** {@code task.true_edge_count}. */
    public Optional<Integer> officialEdgeCount() {
        return officialEdges().map(Set::size);
    }

    /** Frees the model, its masks and caches. Closing twice is a no-op. */
    @Override
    public void close() {
        model.close();
    }

    @Override
    public String toString() {
        return "LoadedTask[" + task.key() + ", " + model.graph() + ", train " + train.nPrompts() + ", test "
            + test.nPrompts() + (officialEdges != null ? ", official edges " + officialEdges.size() : "") + "]";
    }
}
