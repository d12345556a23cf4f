package org.autocircuit.cli;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import org.autocircuit.serve.ServeConfig;
import org.autocircuit.serve.Server;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Starts the HTTP/JSON server (docs/server.md) and serves until interrupted. */
@Command(name = "serve", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Serve the library as an HTTP/JSON API with jobs (docs/server.md; GET /openapi.json describes it).")
final class ServeCommand implements Callable<Integer> {

    @Option(names = "--port", defaultValue = "8080", description = "Port (default: ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--bind", defaultValue = "127.0.0.1",
        description = "Address to listen on (default: ${DEFAULT-VALUE}, this machine only).")
    String bind;

    @Option(names = "--models", split = ",",
        description = "Folders of model folders requests may name (default: <home>/datasets/models and <home>/models).")
    List<Path> models;

    @Option(names = "--datasets", split = ",", description = "Folders of dataset files requests may name "
        + "(default: <home>/datasets).")
    List<Path> datasets;

    @Option(names = "--max-jobs", defaultValue = "2", description = "Jobs running at once; more queue (default: ${DEFAULT-VALUE}).")
    int maxJobs;

    @Option(names = "--max-queued", defaultValue = "64", description = "Jobs waiting at most (default: ${DEFAULT-VALUE}).")
    int maxQueued;

    @Option(names = "--max-models", defaultValue = "2",
        description = "Loaded models kept for reuse, least recently used closed first (default: ${DEFAULT-VALUE}).")
    int maxModels;

    @Option(names = "--max-model-bytes", defaultValue = "8589934592",
        description = "Bound on the weight-file bytes of loaded models kept for reuse (default: 8 GiB).")
    long maxModelBytes;

    @Option(names = "--state", description = "State folder: jobs and results kept across restarts (default: <home>/serve-state).")
    Path state;

    @Option(names = "--token-file", description = "A file holding a bearer token every request must carry.")
    Path tokenFile;

    @Override
    public Integer call() throws Exception {
        Path home = Main.home();
        List<Path> modelRoots = models != null ? models : existing(home.resolve("datasets/models"), home.resolve("models"));
        List<Path> datasetRoots = datasets != null ? datasets : List.of(home.resolve("datasets"));
        String token = null;
        if (tokenFile != null) {
            if (!Files.isRegularFile(tokenFile)) {
                throw new IllegalArgumentException("--token-file: " + tokenFile.toAbsolutePath() + " does not exist");
            }
            token = Files.readString(tokenFile, StandardCharsets.UTF_8).trim();
            if (token.isEmpty()) throw new IllegalArgumentException("--token-file: " + tokenFile + " is empty");
        }
        ServeConfig defaults = ServeConfig.defaults(modelRoots, datasetRoots, home,
            state != null ? state : home.resolve("serve-state"));
        ServeConfig config = new ServeConfig(bind, port, modelRoots, datasetRoots, home, defaults.stateDir(), token,
            maxJobs, maxQueued, maxModels, maxModelBytes, defaults.maxBodyBytes(), defaults.maxEdgeCounts(),
            defaults.maxAlgorithms(), defaults.maxPrompts(), defaults.maxStreams());
        Server server = Server.start(config);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.err.println("autocircuit serve: stopping (cancelling running jobs)");
            server.close();
            stopped.countDown();
        }, "autocircuit-serve-stop"));
        System.err.printf("autocircuit serve: listening on %s (models %s, datasets %s, state %s%s)%n", server.uri(),
            modelRoots, datasetRoots, config.stateDir(), token != null ? ", bearer token required" : "");
        if (!"127.0.0.1".equals(bind) && !"localhost".equals(bind) && !"::1".equals(bind)) {
            System.err.println("autocircuit serve: warning: listening on " + bind + ", beyond this machine; the API "
                + "speaks plain HTTP" + (token == null ? " and no token was set (--token-file)" : ""));
        }
        stopped.await();
        return 0;
    }

    private static List<Path> existing(Path... dirs) {
        List<Path> out = new ArrayList<>();
        for (Path d : dirs) if (Files.isDirectory(d)) out.add(d);
        return out;
    }
}
