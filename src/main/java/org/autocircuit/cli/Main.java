package org.autocircuit.cli;

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

    /** Runs the command line and returns the exit code (for tests). */
    public static int execute(String... args) {
        CommandLine cli = new CommandLine(new Main());
        // everything after launch's options is the launched command, its own options included
        cli.getSubcommands().get("launch").setStopAtPositional(true);
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            if (ex instanceof java.util.concurrent.CancellationException) {
                commandLine.getErr().println("autocircuit: interrupted (" + ex.getMessage() + "); finished work is kept "
                    + "in the checkpoint files, if any were asked for");
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
            commandLine.getErr().println("autocircuit: " + ex);
            return 1;
        });
        return cli.execute(args);
    }

    /** The repository folder (the launcher script sets it), against which default paths resolve. */
    static java.nio.file.Path home() {
        return java.nio.file.Path.of(System.getProperty("autocircuit.home", "."));
    }
}
