package org.autocircuit.tasks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.util.HostTensor;

/**
 * Whether a task can run with a given model folder, found by doing what a run would do up to the model's weights:
 * read the folder's {@code config.json} (the model loader must support its architecture), tokenize the task's
 * dataset with the folder's own tokenizer ({@link Tokenizers#forModel}), with the task's loader options (every
 * answer one token; for token circuits every prompt one length), and check that every token id fits the model's
 * vocabulary. A dataset written for GPT-2 therefore runs with any model whose tokenizer keeps its answers single
 * tokens; nothing is assumed from the family name.
 *
 * @param runs          whether the task can run with the model
 * @param reason        why not (null when it runs)
 * @param architecture  the folder's {@code architectures[0]}, or null when config.json could not be read
 * @param tokenizer     the tokenizer used, or null when none could be opened
 * @param note          a caveat when it runs (e.g. the official circuit was found on another model), or null
 */
public record TaskCompatibility(boolean runs, String reason, String architecture, String tokenizer, String note) {

    static TaskCompatibility no(String reason, String architecture, String tokenizer) {
        return new TaskCompatibility(false, reason, architecture, tokenizer, null);
    }

    /** Checks {@code task} (its dataset under {@code paths}) against {@code modelFolder}. */
    public static TaskCompatibility check(Task task, TaskPaths paths, Path modelFolder) {
        if (task.unsupported() != null) return no("unsupported: " + task.unsupported(), null, null);
        Path dataset = task.datasetPath(paths);
        if (!Files.isRegularFile(dataset)) return no("dataset " + dataset + " missing", null, null);
        Path configFile = modelFolder.resolve("config.json");
        if (!Files.isRegularFile(configFile)) return no(modelFolder + " has no config.json", null, null);
        ModelConfig config;
        try {
            config = ModelConfig.fromHuggingFace(configFile);
        } catch (IllegalArgumentException | IOException e) {
            return no(e.getMessage(), null, null);
        }
        String arch = config.architecture();
        if (!Files.isRegularFile(modelFolder.resolve("model.safetensors"))
                && !Files.isRegularFile(modelFolder.resolve("model.safetensors.index.json"))) {
            return no(modelFolder + " has no model.safetensors or model.safetensors.index.json", arch, null);
        }
        try (Tokenizer tok = Tokenizers.forModel(modelFolder)) {
            Datasets.LoadedDatasets data;
            try {
                data = Datasets.load(dataset, task.loaderOptions(), tok);
            } catch (IllegalArgumentException e) {
                return no("dataset with this tokenizer: " + e.getMessage(), arch, tok.name());
            }
            long maxId = Math.max(maxId(data.train()), maxId(data.test()));
            if (maxId >= config.dVocab()) {
                return no("token id " + maxId + " is outside the model's vocabulary of " + config.dVocab(), arch, tok.name());
            }
            String note = task.officialCircuit() == null ? null
                : "the official circuit '" + task.officialCircuit() + "' names components of " + task.modelName()
                    + "; compare with it only on that model";
            return new TaskCompatibility(true, null, arch, tok.name(), note);
        } catch (IllegalArgumentException | IllegalStateException | IOException e) {
            return no("tokenizer: " + e.getMessage(), arch, null);
        }
    }

    private static long maxId(PromptDataLoader loader) {
        long max = -1;
        for (PromptPairBatch b : loader.batches()) {
            for (HostTensor t : new HostTensor[] {b.clean(), b.corrupt()}) {
                if (t.dtype() != HostTensor.DType.INT64) continue;
                for (long id : t.longs()) max = Math.max(max, id);
            }
            for (Answers a : new Answers[] {b.answers(), b.wrongAnswers()}) {
                for (int i = 0; i < a.batchSize(); i++) {
                    for (long id : a.prompt(i).longs()) max = Math.max(max, id);
                }
            }
        }
        return max;
    }
}
