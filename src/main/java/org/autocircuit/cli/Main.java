package org.autocircuit.cli;

import org.autocircuit.util.Progress;
import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code autocircuit} command line. Only this package turns exceptions into exit codes: 0 success,
 * 1 a failure while running, 2 bad input (a missing file, an unknown name), with a one-line message.
 */
@Command(name = "autocircuit", mixinStandardHelpOptions = true, version = "autocircuit-java 0.1.0",
    description = "Circuit discovery in transformer language models by edge patching.",
    subcommands = {DiscoverCommand.class,
        EvaluateCommand.class,
        ReportCommand.class,
        TrainCommand.class,
        TasksCommand.class,
        GenerateCommand.class,
        ServeCommand.class,
        LaunchCommand.class,
        DoctorCommand.class})
public final class Main implements Runnable {

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** How long the shutdown hook lets a stopping command finish its step and save its work. */
    static final java.time.Duration STOP_GRACE = java.time.Duration.ofSeconds(30);

    /**
     * Runs the command line and returns the exit code (for tests). On SIGINT or SIGTERM a shutdown hook asks the
     * running command to stop at its next step ({@link Progress.StopRequest}) and waits up to {@link #STOP_GRACE} for
     * it to save its work and print what it kept, before the JVM exits.
     */
    public static int execute(String... args) {
        Progress.StopRequest.clear();
        java.util.concurrent.CountDownLatch finished = new java.util.concurrent.CountDownLatch(1);
        Thread hook = new Thread(() -> {
            Progress.StopRequest.request("the process was asked to exit (SIGINT or SIGTERM)");
            try {
                if (!finished.await(STOP_GRACE.toSeconds(), java.util.concurrent.TimeUnit.SECONDS)) {
                    System.err.println("autocircuit: the command did not stop within " + STOP_GRACE.toSeconds()
                        + " s; exiting without waiting further (checkpoint files hold the last saved state)");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }, "autocircuit-stop");
        boolean hooked;
        try {
            Runtime.getRuntime().addShutdownHook(hook);
            hooked = true;
        } catch (IllegalStateException e) {
            hooked = false;   // already shutting down
        }
        try {
            return run(args);
        } finally {
            finished.countDown();
            if (hooked) {
                try {
                    Runtime.getRuntime().removeShutdownHook(hook);
                } catch (IllegalStateException e) {
                    // shutting down: the hook is running and has just been released
                }
            }
        }
    }

    private static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        // everything after launch's options is the launched command, its own options included
        cli.getSubcommands().get("launch").setStopAtPositional(true);
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof java.util.concurrent.CancellationException) {
                commandLine.getErr().println("autocircuit: stopped (" + ex.getMessage() + "); finished work is kept "
                    + "in the checkpoint files if --checkpoint-dir was given, and the same command resumes from them");
                return 130;
            }
            if (ex instanceof org.autocircuit.distributed.DistributedException) {
                commandLine.getErr().println("autocircuit: " + ex.getMessage());
                return 1;
            }
            if (ex instanceof IllegalArgumentException || ex instanceof UnsupportedOperationException || ex instanceof java.io.FileNotFoundException
                    || ex instanceof java.nio.file.NoSuchFileException) {
                commandLine.getErr().println("autocircuit: " + ex.getMessage());
                return 2;
            }
            // a libtorch failure that says the GPU ran out of memory names the allocation; say what to change
            commandLine.getErr().println("autocircuit: " + ex
                + org.autocircuit.kernels.AutoCircuitNativeException.outOfMemoryAdvice(ex));
            return 1;
        });
        return cli.execute(args);
    }

    /** The repository folder (the launcher script sets it), against which default paths resolve. */
    static java.nio.file.Path home() {
        return java.nio.file.Path.of(System.getProperty("autocircuit.home", "."));
    }
}
