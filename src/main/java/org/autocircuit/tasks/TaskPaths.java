package org.autocircuit.tasks;

import java.nio.file.Path;
import java.util.Objects;

/**
 * Where a {@link Task}'s relative paths point.
 *
 * @param modelsRoot       the folder holding the user's pretrained model folders ({@code gpt2/}, ...)
 * @param datasetsRoot     the repository's {@code datasets/} folder (dataset JSON files, bundled models)
 * @param officialCircuits the folder of official-circuit files
 */
public record TaskPaths(Path modelsRoot, Path datasetsRoot, Path officialCircuits) {

    public TaskPaths {
        Objects.requireNonNull(modelsRoot, "modelsRoot");
        Objects.requireNonNull(datasetsRoot, "datasetsRoot");
        Objects.requireNonNull(officialCircuits, "officialCircuits");
    }

    /** {@code home/models}, {@code home/datasets} and {@code home/datasets/official-circuits}. */
    public static TaskPaths under(Path home) {
        Path datasets = home.resolve("datasets");
        return new TaskPaths(home.resolve("models"), datasets, datasets.resolve("official-circuits"));
    }

    /** The same locations with another models root. */
    public TaskPaths withModelsRoot(Path root) {
        return new TaskPaths(root, datasetsRoot, officialCircuits);
    }
}
