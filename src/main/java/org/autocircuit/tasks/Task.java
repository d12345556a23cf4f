package org.autocircuit.tasks;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;
import org.autocircuit.model.OutputSlice;

/**
 * What an experiment runs on (AutoCircuit's {@code Task}): a model, a dataset, how to batch and split it,
 * which graph to build, and which official circuit (if any) to compare against. An immutable description: nothing
 * is loaded until {@link org.autocircuit.discovery.LoadedTask#load}, which owns and frees what it loads, so there are no process-wide caches.
 *
 * <p>Paths are stored as written. {@link #modelFolder()} is resolved against the user's models root (pretrained
 * weights cannot be bundled), or against the datasets folder when {@link #bundledModel()} is set;
 * {@link #dataset()} against the datasets folder. Absolute paths are used as they are (generic tasks). Build with
 * {@link #builder(String, String)}:
 * <pre>{@code
 * Task t = Task.builder("induction", "Induction").bundledModel("models/induction-2l").dataset("induction.json")
 *     .batch(8, 2).tokenCircuit(true).officialCircuit("induction-2l").build();
 * }</pre>
 *
 * @param key              short stable key for the command line ({@code ioi-token})
 * @param autocircuitKey   AutoCircuit's {@code TASK_DICT} key, or the same as {@code key} for tasks of this port
 * @param name             display name ({@code "Indirect Object Identification"})
 * @param modelName        the model the task was defined with ({@code gpt2-small}); informational
 * @param modelFolder      the Hugging Face model folder (relative: under the models root, or the datasets folder)
 * @param bundledModel     {@code modelFolder} ships with this repository (under {@code datasets/})
 * @param modelDescription what the folder must hold, for the error when it is missing
 * @param tokenizer        tokenizer name, {@code "gpt2"} (the GPT-2 BPE); see {@link org.autocircuit.discovery.LoadedTask#tokenizer}
 * @param dataset          the dataset JSON (relative: under the datasets folder)
 * @param trainBatchSize   prompts per train batch
 * @param testBatchSize    prompts per test batch
 * @param trainBatchCount  train batches (train prompts = size × count)
 * @param testBatchCount   test batches
 * @param tokenCircuit     one edge per token position ({@code return_seq_length}); the official circuit then
 *                         resolves at token positions
 * @param factorized       factorized graph (every earlier src feeds every later dest)
 * @param separateQkv      separate Q, K and V dests per head
 * @param slice            which output positions the metrics read
 * @param officialCircuit  name of a file in {@code datasets/official-circuits/} (without {@code .json}), or null
 * @param unsupported      why this port cannot run the task (e.g. it needs a sparse autoencoder), or null
 */
public record Task(
        String key,
        String autocircuitKey,
        String name,
        String modelName,
        String modelFolder,
        boolean bundledModel,
        String modelDescription,
        String tokenizer,
        String dataset,
        int trainBatchSize,
        int testBatchSize,
        int trainBatchCount,
        int testBatchCount,
        boolean tokenCircuit,
        boolean factorized,
        boolean separateQkv,
        OutputSlice slice,
        String officialCircuit,
        String unsupported) {

    public Task {
        if (key == null || key.isBlank() || !key.equals(key.trim())) {
            throw new IllegalArgumentException("a task needs a key without surrounding blanks, got '" + key + "'");
        }
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(modelFolder, "modelFolder of task " + key);
        Objects.requireNonNull(dataset, "dataset of task " + key);
        Objects.requireNonNull(slice, "slice of task " + key);
        autocircuitKey = autocircuitKey == null ? key : autocircuitKey;
        modelName = modelName == null ? modelFolder : modelName;
        modelDescription = modelDescription == null
            ? "a model in Hugging Face format (config.json + model.safetensors)" : modelDescription;
        tokenizer = tokenizer == null ? "gpt2" : tokenizer;
        for (int v : new int[] {trainBatchSize, testBatchSize, trainBatchCount, testBatchCount}) {
            if (v < 1) {
                throw new IllegalArgumentException("task " + key + ": batch sizes and counts must be >= 1, got train "
                    + trainBatchSize + "x" + trainBatchCount + ", test " + testBatchSize + "x" + testBatchCount);
            }
        }
    }

    /** Train prompts the loader keeps ({@code batch_size × batch_count}). */
    public int trainSize() {
        return trainBatchSize * trainBatchCount;
    }

    /** Test prompts the loader keeps. */
    public int testSize() {
        return testBatchSize * testBatchCount;
    }

    public Optional<String> officialCircuitName() {
        return Optional.ofNullable(officialCircuit);
    }

    public Optional<String> unsupportedReason() {
        return Optional.ofNullable(unsupported);
    }

    /** The model folder for these locations. */
    public Path modelPath(TaskPaths paths) {
        Path p = Path.of(modelFolder);
        if (p.isAbsolute()) return p;
        return (bundledModel ? paths.datasetsRoot() : paths.modelsRoot()).resolve(p);
    }

    /** The dataset file for these locations. */
    public Path datasetPath(TaskPaths paths) {
        Path p = Path.of(dataset);
        return p.isAbsolute() ? p : paths.datasetsRoot().resolve(p);
    }

    /** The loader options AutoCircuit's {@code Task.init_task} uses (BOS, tail divergence, shuffle with seed 42). */
    public LoaderOptions loaderOptions() {
        return LoaderOptions.builder().prependBos(true).batchSize(trainBatchSize, testBatchSize)
            .trainTestSize(trainSize(), testSize()).returnSeqLength(tokenCircuit).tailDivergence(true).shuffle(true)
            .randomSeed(42).pad(true).build();
    }

    /**
     * A task for any model folder and dataset file (a component circuit, the folder's own tokenizer as
     * {@link Tokenizers#forModel} picks it, factorized, separate Q/K/V, last-position outputs); change the rest with
     * {@link #toBuilder()}.
     */
    public static Task generic(Path modelFolder, Path dataset, int batchSize, int batchCount) {
        String key = "custom";
        return builder(key, "Custom task").modelFolder(modelFolder.toAbsolutePath().toString())
            .dataset(dataset.toAbsolutePath().toString()).tokenizer("auto").batch(batchSize, batchCount).build();
    }

    public static Builder builder(String key, String name) {
        return new Builder(key, name);
    }

    public Builder toBuilder() {
        Builder b = new Builder(key, name);
        b.autocircuitKey = autocircuitKey;
        b.modelName = modelName;
        b.modelFolder = modelFolder;
        b.bundledModel = bundledModel;
        b.modelDescription = modelDescription;
        b.tokenizer = tokenizer;
        b.dataset = dataset;
        b.trainBatchSize = trainBatchSize;
        b.testBatchSize = testBatchSize;
        b.trainBatchCount = trainBatchCount;
        b.testBatchCount = testBatchCount;
        b.tokenCircuit = tokenCircuit;
        b.factorized = factorized;
        b.separateQkv = separateQkv;
        b.slice = slice;
        b.officialCircuit = officialCircuit;
        b.unsupported = unsupported;
        return b;
    }

    /** Mutable builder with AutoCircuit's defaults (factorized, separate Q/K/V, last-position slice). */
    public static final class Builder {
        private final String key;
        private final String name;
        private String autocircuitKey;
        private String modelName;
        private String modelFolder;
        private boolean bundledModel;
        private String modelDescription;
        private String tokenizer = "gpt2";
        private String dataset;
        private int trainBatchSize = 32;
        private int testBatchSize = 32;
        private int trainBatchCount = 1;
        private int testBatchCount = 1;
        private boolean tokenCircuit;
        private boolean factorized = true;
        private boolean separateQkv = true;
        private OutputSlice slice = OutputSlice.LAST_SEQ;
        private String officialCircuit;
        private String unsupported;

        private Builder(String key, String name) {
            this.key = key;
            this.name = name;
        }

        public Builder autocircuitKey(String v) { autocircuitKey = v; return this; }

        /** A folder under the user's models root (or an absolute path), and what it must hold. */
        public Builder model(String modelName, String folder, String description) {
            this.modelName = modelName;
            this.modelFolder = folder;
            this.modelDescription = description;
            this.bundledModel = false;
            return this;
        }

        public Builder modelFolder(String folder) { modelFolder = folder; bundledModel = false; return this; }

        /** A model folder shipped under {@code datasets/}. */
        public Builder bundledModel(String folderUnderDatasets) {
            modelFolder = folderUnderDatasets;
            bundledModel = true;
            modelName = modelName == null ? Path.of(folderUnderDatasets).getFileName().toString() : modelName;
            return this;
        }

        public Builder tokenizer(String v) { tokenizer = v; return this; }

        public Builder dataset(String v) { dataset = v; return this; }

        /** The same batch size and count for train and test. */
        public Builder batch(int size, int count) { return batch(size, size, count, count); }

        /** Python's {@code batch_size=(train, test), batch_count=(train, test)}. */
        public Builder batch(int trainSize, int testSize, int trainCount, int testCount) {
            trainBatchSize = trainSize;
            testBatchSize = testSize;
            trainBatchCount = trainCount;
            testBatchCount = testCount;
            return this;
        }

        public Builder tokenCircuit(boolean v) { tokenCircuit = v; return this; }

        public Builder factorized(boolean v) { factorized = v; return this; }

        public Builder separateQkv(boolean v) { separateQkv = v; return this; }

        public Builder slice(OutputSlice v) { slice = v; return this; }

        public Builder officialCircuit(String v) { officialCircuit = v; return this; }

        public Builder unsupported(String v) { unsupported = v; return this; }

        public Task build() {
            return new Task(key, autocircuitKey, name, modelName, modelFolder, bundledModel, modelDescription, tokenizer,
                dataset, trainBatchSize, testBatchSize, trainBatchCount, testBatchCount, tokenCircuit, factorized,
                separateQkv, slice, officialCircuit, unsupported);
        }
    }
}
