package org.autocircuit.cli;

import java.lang.management.ManagementFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import org.autocircuit.distributed.DistributedEnvironment;
import org.autocircuit.distributed.Launcher;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code autocircuit launch --nproc N [--nnodes M --node-rank R --master HOST:PORT] <command> ...}: runs a command
 * data-parallel in N worker JVMs on this machine (docs/distributed.md).
 */
@Command(name = "launch", mixinStandardHelpOptions = true, sortOptions = false,
    description = "Run a command (discover, evaluate) data-parallel in several worker processes over torch.distributed "
        + "(Gloo on CPU, NCCL on CUDA). Rank 0 alone prints and writes results.")
final class LaunchCommand implements Callable<Integer> {

    @Option(names = "--nproc", required = true, description = "Worker processes on this machine.")
    int nproc;

    @Option(names = "--nnodes", defaultValue = "1", description = "Machines (default: ${DEFAULT-VALUE}).")
    int nnodes;

    @Option(names = "--node-rank", defaultValue = "0", description = "This machine's index (default: ${DEFAULT-VALUE}).")
    int nodeRank;

    @Option(names = "--master", description = "HOST:PORT of rank 0's TCP store (default: 127.0.0.1 and a free port; "
        + "required with --nnodes > 1).")
    String master;

    @Option(names = "--timeout", defaultValue = "1800",
        description = "Seconds a worker waits for the others in a collective before failing (default: ${DEFAULT-VALUE}).")
    double timeoutSeconds;

    @Option(names = "--grace", defaultValue = "30",
        description = "Seconds the other workers get to stop after one fails, before they are killed (default: ${DEFAULT-VALUE}).")
    double graceSeconds;

    @Option(names = "--threads", defaultValue = "0",
        description = "Compute threads per worker (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS); 0 leaves them alone.")
    int threads;

    @Option(names = "--backend", defaultValue = "gloo", description = "gloo (CPU) or nccl (CUDA; LOCAL_RANK picks the GPU).")
    String backend;

    @Option(names = "--worker-jvm-options", split = " ",
        description = "Options of the worker JVMs (default: this JVM's -Xmx and -D options).")
    List<String> workerJvmOptions;

    @Option(names = "--main", description = "The workers' main class (default: the autocircuit command line); for "
        + "benchmarks and tools built on this library.")
    String mainClass;

    @Parameters(arity = "1..*", paramLabel = "COMMAND", description = "The command and its options, e.g. discover --json.")
    List<String> command;

    @Override
    public Integer call() throws Exception {
        String main = mainClass != null ? mainClass : Main.class.getName();
        if (mainClass == null && command.get(0).equals("launch")) throw new IllegalArgumentException("launch cannot launch itself");
        String host = "127.0.0.1";
        int port = 0;
        if (master != null) {
            int colon = master.lastIndexOf(':');
            if (colon <= 0) throw new IllegalArgumentException("--master must be HOST:PORT, got '" + master + "'");
            host = master.substring(0, colon);
            try {
                port = Integer.parseInt(master.substring(colon + 1));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--master: the port of '" + master + "' is not a number");
            }
        }
        if (timeoutSeconds <= 0) throw new IllegalArgumentException("--timeout must be > 0 seconds, got " + timeoutSeconds);
        if (graceSeconds < 0) throw new IllegalArgumentException("--grace must be >= 0 seconds, got " + graceSeconds);
        DistributedEnvironment.Backend b = switch (backend.trim().toLowerCase(java.util.Locale.ROOT)) {
            case "gloo" -> DistributedEnvironment.Backend.GLOO;
            case "nccl" -> DistributedEnvironment.Backend.NCCL;
            default -> throw new IllegalArgumentException("--backend must be gloo or nccl, got '" + backend + "'");
        };
        List<String> jvm = workerJvmOptions != null ? workerJvmOptions : inheritedJvmOptions();
        Launcher.Spec spec = new Launcher.Spec(nproc, nnodes, nodeRank, host, port,
            Duration.ofMillis(Math.round(timeoutSeconds * 1000)), Duration.ofMillis(Math.round(graceSeconds * 1000)),
            threads, b, jvm, System.getProperty("java.class.path"), main, command);
        return Launcher.run(spec, System.out, System.err);
    }

    /** This JVM's heap and system-property options (the autocircuit script sets -Xmx, autocircuit.home, javacpp's). */
    private static List<String> inheritedJvmOptions() {
        List<String> out = new ArrayList<>();
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("-Xmx") || a.startsWith("-Xms") || a.startsWith("-D") || a.equals("-ea")) out.add(a);
        }
        return out;
    }
}
