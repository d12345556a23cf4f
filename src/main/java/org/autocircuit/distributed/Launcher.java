package org.autocircuit.distributed;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Starts the worker processes of a data-parallel run on this machine, torchrun style: {@code nproc} JVMs running
 * one command, each with {@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE},
 * {@code MASTER_ADDR} and {@code MASTER_PORT} set (see {@link DistributedEnvironment}). With several machines
 * ({@code nnodes > 1}) each machine runs one launcher with its {@code nodeRank}; the workers meet at the master's TCP
 * store.
 *
 * <p>Rank 0's standard output is passed through byte for byte (so {@code --json} output is one process's); every
 * other stream is passed through line by line with a {@code [rank r]} prefix. When a worker fails, the others get
 * {@link Spec#grace()} to stop by themselves (they fail at their next collective) and are then killed; the launcher
 * returns the first failing worker's exit code. Nothing here writes files.
 */
public final class Launcher {
    private Launcher() {}

    /**
     * @param nproc        workers on this machine
     * @param nnodes       machines
     * @param nodeRank     this machine, 0 ≤ nodeRank &lt; nnodes
     * @param masterAddr   rank 0's host
     * @param masterPort   rank 0's TCP store port; 0 picks a free one (one machine only)
     * @param timeout      how long a worker waits in a collective for the others (AUTOCIRCUIT_DIST_TIMEOUT)
     * @param grace        how long the other workers get to stop by themselves after one fails
     * @param threads      OMP_NUM_THREADS / OPENBLAS_NUM_THREADS per worker, or 0 to leave them as they are
     * @param backend      gloo or nccl
     * @param jvmOptions   options of every worker JVM (heap, system properties)
     * @param classpath    the workers' class path
     * @param mainClass    the workers' main class
     * @param args         the command each worker runs (arguments of {@code mainClass})
     */
    public record Spec(int nproc, int nnodes, int nodeRank, String masterAddr, int masterPort, Duration timeout,
                       Duration grace, int threads, DistributedEnvironment.Backend backend, List<String> jvmOptions,
                       String classpath, String mainClass, List<String> args) {
        public Spec {
            if (nproc < 1) throw new IllegalArgumentException("--nproc must be >= 1, got " + nproc);
            if (nnodes < 1) throw new IllegalArgumentException("--nnodes must be >= 1, got " + nnodes);
            if (nodeRank < 0 || nodeRank >= nnodes) {
                throw new IllegalArgumentException("--node-rank must be in [0, --nnodes = " + nnodes + "), got " + nodeRank);
            }
            if (nnodes > 1 && masterPort == 0) {
                throw new IllegalArgumentException("with --nnodes > 1, --master HOST:PORT must name rank 0's machine and port");
            }
            if (masterPort < 0 || masterPort > 65535) {
                throw new IllegalArgumentException("the master port must be in [1, 65535], got " + masterPort);
            }
            if (threads < 0) throw new IllegalArgumentException("--threads must be >= 0, got " + threads);
            if (args == null || args.isEmpty()) throw new IllegalArgumentException("launch needs a command to run");
            if (masterAddr == null || masterAddr.isBlank()) masterAddr = "127.0.0.1";
            jvmOptions = List.copyOf(jvmOptions);
            args = List.copyOf(args);
        }

        int worldSize() {
            return nproc * nnodes;
        }
    }

    /**
     * Runs the workers to the end.
     *
     * @return 0 if every worker succeeded, else the exit code of the first that failed
     */
    public static int run(Spec spec, OutputStream stdout, PrintStream stderr) throws InterruptedException {
        int port = spec.masterPort() != 0 ? spec.masterPort() : freePort(spec.masterAddr());
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<Process> procs = new ArrayList<>();
        List<Thread> pumps = new ArrayList<>();
        Thread killer = new Thread(() -> procs.forEach(Launcher::kill));
        Runtime.getRuntime().addShutdownHook(killer);
        try {
            for (int local = 0; local < spec.nproc(); local++) {
                int rank = spec.nodeRank() * spec.nproc() + local;
                List<String> cmd = new ArrayList<>();
                cmd.add(java);
                cmd.addAll(spec.jvmOptions());
                cmd.add("-cp");
                cmd.add(spec.classpath());
                cmd.add(spec.mainClass());
                cmd.addAll(spec.args());
                ProcessBuilder pb = new ProcessBuilder(cmd);
                pb.environment().putAll(environment(spec, rank, local, port));
                Process p = pb.start();
                procs.add(p);
                String prefix = "[rank " + rank + "] ";
                pumps.add(rank == 0 ? pumpBytes(p.getInputStream(), stdout) : pumpLines(p.getInputStream(), stderr, prefix));
                pumps.add(pumpLines(p.getErrorStream(), stderr, spec.worldSize() > 1 ? prefix : ""));
            }
            int failedRank = -1, failedCode = 0;
            long killAt = Long.MAX_VALUE;
            while (true) {
                boolean allDone = true;
                for (int i = 0; i < procs.size(); i++) {
                    Process p = procs.get(i);
                    if (p.isAlive()) {
                        allDone = false;
                    } else if (p.exitValue() != 0 && failedRank < 0) {
                        failedRank = spec.nodeRank() * spec.nproc() + i;
                        failedCode = p.exitValue();
                        killAt = System.nanoTime() + spec.grace().toNanos();
                        stderr.println("autocircuit launch: rank " + failedRank + " exited with code " + failedCode
                            + "; the other ranks get " + spec.grace().toSeconds() + " s to stop");
                    }
                }
                if (allDone) break;
                if (System.nanoTime() > killAt) {
                    for (int i = 0; i < procs.size(); i++) {
                        if (procs.get(i).isAlive()) {
                            stderr.println("autocircuit launch: killing rank " + (spec.nodeRank() * spec.nproc() + i)
                                + ", still running " + spec.grace().toSeconds() + " s after rank " + failedRank + " failed");
                            kill(procs.get(i));
                        }
                    }
                    for (Process p : procs) p.waitFor();
                    break;
                }
                Thread.sleep(50);
            }
            for (Thread t : pumps) t.join(5000);
            stdout.flush();
            return failedRank < 0 ? 0 : failedCode;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot start a worker JVM (" + java + ")", e);
        } finally {
            procs.forEach(Launcher::kill);
            try {
                Runtime.getRuntime().removeShutdownHook(killer);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running already
            }
        }
    }

    /** The variables a worker reads (see {@link DistributedEnvironment}). */
    static Map<String, String> environment(Spec spec, int rank, int localRank, int port) {
        Map<String, String> env = new LinkedHashMap<>();
        env.put("RANK", Integer.toString(rank));
        env.put("WORLD_SIZE", Integer.toString(spec.worldSize()));
        env.put("LOCAL_RANK", Integer.toString(localRank));
        env.put("LOCAL_WORLD_SIZE", Integer.toString(spec.nproc()));
        env.put("GROUP_RANK", Integer.toString(spec.nodeRank()));
        env.put("MASTER_ADDR", spec.masterAddr());
        env.put("MASTER_PORT", Integer.toString(port));
        env.put("AUTOCIRCUIT_DIST_TIMEOUT", Double.toString(spec.timeout().toMillis() / 1000.0));
        env.put("AUTOCIRCUIT_DIST_BACKEND", spec.backend().name().toLowerCase(java.util.Locale.ROOT));
        if (spec.threads() > 0) {
            env.put("OMP_NUM_THREADS", Integer.toString(spec.threads()));
            env.put("OPENBLAS_NUM_THREADS", Integer.toString(spec.threads()));
        }
        return env;
    }

    /** A port nobody listens on now (the workers bind it moments later; a race is possible but rare). */
    static int freePort(String host) {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getByName(host))) {
            return s.getLocalPort();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot find a free port on " + host, e);
        }
    }

    private static void kill(Process p) {
        if (!p.isAlive()) return;
        p.descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
    }

    private static Thread pumpBytes(InputStream in, OutputStream out) {
        Thread t = new Thread(() -> {
            byte[] buf = new byte[8192];
            try (in) {
                for (int n; (n = in.read(buf)) > 0; ) {
                    synchronized (out) {
                        out.write(buf, 0, n);
                        out.flush();
                    }
                }
            } catch (IOException ignored) {
                // the worker is gone
            }
        }, "launch-stdout");
        t.setDaemon(true);
        t.start();
        return t;
    }

    private static Thread pumpLines(InputStream in, PrintStream out, String prefix) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) {
                    synchronized (out) {
                        out.println(prefix + line);
                    }
                }
            } catch (IOException ignored) {
                // the worker is gone
            }
        }, "launch-" + prefix.trim());
        t.setDaemon(true);
        t.start();
        return t;
    }
}
