package org.autocircuit.cli;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collection;
import org.autocircuit.report.HtmlReport;
import org.autocircuit.util.AtomicFiles;

/**
 * The overwrite policy of every command, in one place (docs/reliability.md). An output path may be written when it
 * does not exist; an existing regular file is replaced only with {@code --force}, or without it when it is a file of
 * the same kind this tool wrote (a discovery result JSON, an HTML report), so that rerunning a command refreshes its
 * own outputs. Folders, devices, FIFOs and symbolic links are never replaced, nor any input of the run.
 */
final class Outputs {
    private Outputs() {}

    /** A discovery result JSON this tool wrote: its first field is "formatVersion". */
    static final AtomicFiles.Ownership RESULT_JSON = p -> head(p).replaceAll("\\s", "").startsWith("{\"formatVersion\":");

    /** An HTML report this tool wrote: it carries {@link HtmlReport#GENERATOR}. */
    static final AtomicFiles.Ownership HTML_REPORT = p -> head(p).contains("content=\"" + HtmlReport.GENERATOR + "\"");

    /** An official-circuit file: it parses as one. */
    static final AtomicFiles.Ownership OFFICIAL_CIRCUIT = p -> {
        try {
            org.autocircuit.graph.OfficialCircuit.read(p);
            return true;
        } catch (RuntimeException e) {
            return false;
        }
    };

    /** See the class comment; throws IllegalArgumentException (exit code 2) naming the option and the reason. */
    static void check(Path target, String option, boolean force, AtomicFiles.Ownership ownership, Collection<Path> inputs) {
        AtomicFiles.checkOutput(target, option, force, ownership, inputs);
    }

    private static String head(Path p) throws IOException {
        try (InputStream in = Files.newInputStream(p)) {
            return new String(in.readNBytes(4096), StandardCharsets.UTF_8);
        }
    }
}
