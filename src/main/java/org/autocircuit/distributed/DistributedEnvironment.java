package org.autocircuit.distributed;

import java.time.Duration;
import java.util.Locale;
import java.util.Map;

/**
 * Where this process sits in a data-parallel run, read from the environment variables torchrun, Slurm's srun,
 * Kubernetes operators and {@code autocircuit launch} all set:
 *
 * <ul>
 *   <li>{@code RANK} (or {@code SLURM_PROCID}): this process, 0 ≤ RANK &lt; WORLD_SIZE;</li>
 *   <li>{@code WORLD_SIZE} (or {@code SLURM_NTASKS}): the number of processes;</li>
 *   <li>{@code LOCAL_RANK} (or {@code SLURM_LOCALID}): the process's index on its machine, which picks its GPU;</li>
 *   <li>{@code MASTER_ADDR}, {@code MASTER_PORT}: where rank 0 listens (its TCP store);</li>
 *   <li>{@code AUTOCIRCUIT_DIST_TIMEOUT}: seconds a rank waits for the others before failing (default 1800);</li>
 *   <li>{@code AUTOCIRCUIT_DIST_BACKEND}: {@code gloo} (CPU tensors, the default) or {@code nccl} (CUDA).</li>
 * </ul>
 *
 * <p>No {@code WORLD_SIZE} (or 1) means one process: {@link #isDistributed()} is false and nothing is contacted.
 */
public record DistributedEnvironment(int rank, int worldSize, int localRank, String masterAddr, int masterPort,
                                     Duration timeout, Backend backend) {

    public static final Duration DEFAULT_TIMEOUT = Duration.ofMinutes(30);

    /** The process-group implementation. */
    public enum Backend {
        /** Gloo: CPU tensors, TCP; what this project's CPU builds use. */
        GLOO,
        /** NCCL: CUDA tensors, one process per GPU ({@code LOCAL_RANK} picks it); needs a CUDA build of libtorch. */
        NCCL;

        static Backend parse(String s) {
            try {
                return valueOf(s.trim().toUpperCase(Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("AUTOCIRCUIT_DIST_BACKEND: '" + s + "' is not a backend; valid: gloo, nccl");
            }
        }
    }

    public DistributedEnvironment {
        if (worldSize < 1) throw new IllegalArgumentException("WORLD_SIZE must be >= 1, got " + worldSize);
        if (rank < 0 || rank >= worldSize) {
            throw new IllegalArgumentException("RANK must be in [0, WORLD_SIZE = " + worldSize + "), got " + rank);
        }
        if (localRank < 0) throw new IllegalArgumentException("LOCAL_RANK must be >= 0, got " + localRank);
        if (worldSize > 1 && (masterPort < 1 || masterPort > 65535)) {
            throw new IllegalArgumentException("MASTER_PORT must be in [1, 65535], got " + masterPort);
        }
        if (timeout == null || timeout.isNegative() || timeout.isZero()) {
            throw new IllegalArgumentException("AUTOCIRCUIT_DIST_TIMEOUT must be > 0 seconds, got " + timeout);
        }
        if (masterAddr == null || masterAddr.isBlank()) masterAddr = "127.0.0.1";
        if (backend == null) backend = Backend.GLOO;
    }

    /** One process. */
    public static DistributedEnvironment single() {
        return new DistributedEnvironment(0, 1, 0, "127.0.0.1", 0, DEFAULT_TIMEOUT, Backend.GLOO);
    }

    public boolean isDistributed() {
        return worldSize > 1;
    }

    /** This process's environment. */
    public static DistributedEnvironment fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    /**
     * Parses the variables above.
     *
     * @throws IllegalArgumentException naming the variable that is missing or malformed
     */
    public static DistributedEnvironment fromEnvironment(Map<String, String> env) {
        Integer world = intVar(env, "WORLD_SIZE", "SLURM_NTASKS");
        if (world == null || world == 1) return single();
        Integer rank = intVar(env, "RANK", "SLURM_PROCID");
        if (rank == null) throw new IllegalArgumentException("WORLD_SIZE is " + world + " but RANK is not set");
        Integer local = intVar(env, "LOCAL_RANK", "SLURM_LOCALID");
        Integer port = intVar(env, "MASTER_PORT", null);
        if (port == null) throw new IllegalArgumentException("WORLD_SIZE is " + world + " but MASTER_PORT is not set");
        String addr = env.getOrDefault("MASTER_ADDR", "127.0.0.1");
        Duration timeout = DEFAULT_TIMEOUT;
        String t = env.get("AUTOCIRCUIT_DIST_TIMEOUT");
        if (t != null && !t.isBlank()) {
            try {
                timeout = Duration.ofMillis(Math.round(Double.parseDouble(t.trim()) * 1000));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("AUTOCIRCUIT_DIST_TIMEOUT must be a number of seconds, got '" + t + "'");
            }
        }
        String b = env.get("AUTOCIRCUIT_DIST_BACKEND");
        return new DistributedEnvironment(rank, world, local == null ? 0 : local, addr, port, timeout,
            b == null || b.isBlank() ? Backend.GLOO : Backend.parse(b));
    }

    private static Integer intVar(Map<String, String> env, String name, String fallback) {
        String v = env.get(name);
        String used = name;
        if ((v == null || v.isBlank()) && fallback != null) {
            v = env.get(fallback);
            used = fallback;
        }
        if (v == null || v.isBlank()) return null;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(used + " must be an integer, got '" + v + "'");
        }
    }
}
