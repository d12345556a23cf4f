package org.autocircuit.serve;

import java.nio.file.Path;
import java.util.List;
import java.util.Objects;

/**
 * How the server runs and what it allows.
 *
 * @param bind              the address to listen on (127.0.0.1 unless told otherwise)
 * @param port              the port; 0 picks a free one (tests)
 * @param modelRoots        the folders whose model folders requests may name
 * @param datasetRoots      the folders whose dataset files requests may name
 * @param taskHome          the folder registry tasks ({@code "task": "induction-2l"}) resolve under, as the CLI's
 *                          {@code autocircuit.home}: its datasets/ and models/
 * @param stateDir          where jobs and their results are kept across restarts
 * @param token             the bearer token every request must carry, or null for none
 * @param maxJobs           jobs running at once; more wait in the queue
 * @param maxQueued         jobs waiting at most; more are refused with 429
 * @param maxLoadedModels   loaded tasks (model, prompts, graph) kept for reuse, least recently used evicted first
 * @param maxModelBytes     bound on the summed weight-file sizes of loaded models kept for reuse
 * @param maxBodyBytes      the largest request body accepted
 * @param maxEdgeCounts     the longest edge-count list a job may ask for
 * @param maxAlgorithms     the most algorithms in one job
 * @param maxPrompts        the most prompts per split a custom job may ask for (batch size × batch count)
 * @param maxStreams        event streams open at once
 */
public record ServeConfig(String bind, int port, List<Path> modelRoots, List<Path> datasetRoots, Path taskHome,
                          Path stateDir, String token, int maxJobs, int maxQueued, int maxLoadedModels,
                          long maxModelBytes, int maxBodyBytes, int maxEdgeCounts, int maxAlgorithms, int maxPrompts,
                          int maxStreams) {

    public ServeConfig {
        Objects.requireNonNull(bind, "bind");
        Objects.requireNonNull(stateDir, "stateDir");
        Objects.requireNonNull(taskHome, "taskHome");
        modelRoots = List.copyOf(modelRoots);
        datasetRoots = List.copyOf(datasetRoots);
        if (modelRoots.isEmpty()) throw new IllegalArgumentException("--models: at least one folder is needed");
        if (datasetRoots.isEmpty()) throw new IllegalArgumentException("--datasets: at least one folder is needed");
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--port must be in [0, 65535], got " + port);
        positive("--max-jobs", maxJobs);
        positive("--max-queued", maxQueued);
        positive("--max-models", maxLoadedModels);
        positive("maxBodyBytes", maxBodyBytes);
        positive("maxEdgeCounts", maxEdgeCounts);
        positive("maxAlgorithms", maxAlgorithms);
        positive("maxPrompts", maxPrompts);
        positive("maxStreams", maxStreams);
        if (maxModelBytes < 1) throw new IllegalArgumentException("--max-model-bytes must be >= 1, got " + maxModelBytes);
        if (token != null && token.isBlank()) throw new IllegalArgumentException("the token must not be blank");
    }

    private static void positive(String name, long v) {
        if (v < 1) throw new IllegalArgumentException(name + " must be >= 1, got " + v);
    }

    /** The defaults for these folders: 2 jobs at once, 64 queued, 2 loaded models, 64 KiB bodies, no token. */
    public static ServeConfig defaults(List<Path> modelRoots, List<Path> datasetRoots, Path taskHome, Path stateDir) {
        return new ServeConfig("127.0.0.1", 8080, modelRoots, datasetRoots, taskHome, stateDir, null, 2, 64, 2,
            8L << 30, 64 * 1024, 1000, 16, 4096, 16);
    }

    public ServeConfig withPort(int p) {
        return new ServeConfig(bind, p, modelRoots, datasetRoots, taskHome, stateDir, token, maxJobs, maxQueued,
            maxLoadedModels, maxModelBytes, maxBodyBytes, maxEdgeCounts, maxAlgorithms, maxPrompts, maxStreams);
    }

    public ServeConfig withBind(String b) {
        return new ServeConfig(b, port, modelRoots, datasetRoots, taskHome, stateDir, token, maxJobs, maxQueued,
            maxLoadedModels, maxModelBytes, maxBodyBytes, maxEdgeCounts, maxAlgorithms, maxPrompts, maxStreams);
    }

    public ServeConfig withToken(String t) {
        return new ServeConfig(bind, port, modelRoots, datasetRoots, taskHome, stateDir, t, maxJobs, maxQueued,
            maxLoadedModels, maxModelBytes, maxBodyBytes, maxEdgeCounts, maxAlgorithms, maxPrompts, maxStreams);
    }

    public ServeConfig withJobs(int jobs, int queued) {
        return new ServeConfig(bind, port, modelRoots, datasetRoots, taskHome, stateDir, token, jobs, queued,
            maxLoadedModels, maxModelBytes, maxBodyBytes, maxEdgeCounts, maxAlgorithms, maxPrompts, maxStreams);
    }

    public ServeConfig withModelBounds(int models, long bytes) {
        return new ServeConfig(bind, port, modelRoots, datasetRoots, taskHome, stateDir, token, maxJobs, maxQueued,
            models, bytes, maxBodyBytes, maxEdgeCounts, maxAlgorithms, maxPrompts, maxStreams);
    }
}
