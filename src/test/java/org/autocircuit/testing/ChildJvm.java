package org.autocircuit.testing;

import java.io.File;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** Starts a class of the test classpath in a fresh JVM, for fault tests that must survive (or observe) a crash. */
public final class ChildJvm {
    private ChildJvm() {}

    /** A started child; its stdout and stderr go to {@code log}. */
    public static Process start(Path log, Class<?> main, String... args) throws IOException {
        return start(log, java.util.Map.of(), main, args);
    }

    /** A started child with extra environment variables; its stdout and stderr go to {@code log}. */
    public static Process start(Path log, java.util.Map<String, String> env, Class<?> main, String... args)
            throws IOException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("-Xmx512m");
        cmd.add("-XX:-CreateCoredumpOnCrash");
        cmd.add("-XX:ErrorFile=" + log.resolveSibling(log.getFileName() + ".hs_err.log"));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(main.getName());
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile());
        pb.environment().put("OPENBLAS_THREAD_TIMEOUT", "4");
        pb.environment().put("OMP_WAIT_POLICY", "PASSIVE");
        pb.environment().putAll(env);
        return pb.start();
    }

    /** The child's output so far. */
    public static String output(Path log) throws IOException {
        return Files.exists(log) ? Files.readString(log) : "";
    }

    /** A JVM killed by a signal exits with 128 + the signal (SIGBUS 135, SIGSEGV 139, SIGABRT 134 after hs_err). */
    public static boolean diedOfSignal(int exitCode) {
        return exitCode > 128 && exitCode < 160 && exitCode != 130 && exitCode != 143;
    }

    static String pathSeparator() {
        return File.pathSeparator;
    }
}
