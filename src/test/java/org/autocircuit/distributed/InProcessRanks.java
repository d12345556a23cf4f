package org.autocircuit.distributed;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * Several ranks of a real Gloo process group as threads of the test JVM (torch.distributed's own tests do the same):
 * each thread joins through the TCP store on a free loopback port and runs the body with its collective. Much cheaper
 * than a JVM per rank; the child-process tests ({@link LaunchTest}) cover the launcher and process deaths.
 */
final class InProcessRanks {
    private InProcessRanks() {}

    interface Body<T> {
        T run(Collective c) throws Exception;
    }

    /** The environment of {@code rank} in a loopback group of {@code world} ranks. */
    static DistributedEnvironment env(int rank, int world, int port, Duration timeout) {
        return new DistributedEnvironment(rank, world, 0, "127.0.0.1", port, timeout, DistributedEnvironment.Backend.GLOO);
    }

    /** Runs {@code body} on {@code world} ranks; each rank's result or exception, by rank. Bounded by 5 minutes. */
    static <T> List<Object> run(int world, Duration timeout, Body<T> body) throws InterruptedException {
        int port = Launcher.freePort("127.0.0.1");
        ExecutorService pool = Executors.newFixedThreadPool(world);
        try {
            List<Future<T>> futures = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                int rank = r;
                futures.add(pool.submit(() -> {
                    try (Collective c = ProcessGroupCollective.join(env(rank, world, port, timeout))) {
                        return body.run(c);
                    }
                }));
            }
            List<Object> out = new ArrayList<>();
            for (Future<T> f : futures) {
                try {
                    out.add(f.get(5, TimeUnit.MINUTES));
                } catch (ExecutionException e) {
                    out.add(e.getCause());
                } catch (TimeoutException e) {
                    throw new AssertionError("a rank did not finish within 5 minutes", e);
                }
            }
            return out;
        } finally {
            pool.shutdownNow();
            pool.awaitTermination(30, TimeUnit.SECONDS);
        }
    }

    /** The results, failing the test with a rank's exception if one threw. */
    @SuppressWarnings("unchecked")
    static <T> List<T> values(List<Object> results) {
        List<T> out = new ArrayList<>();
        for (int r = 0; r < results.size(); r++) {
            if (results.get(r) instanceof Throwable t) throw new AssertionError("rank " + r + " failed: " + t, t);
            out.add((T) results.get(r));
        }
        return out;
    }
}
