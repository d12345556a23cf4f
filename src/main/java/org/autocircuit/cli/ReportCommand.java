package org.autocircuit.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import org.autocircuit.report.DiscoveryResult;
import org.autocircuit.report.HtmlReport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** Turns a discovery result (the JSON that {@code discover} writes) into a self-contained offline HTML report. */
@Command(name = "report", mixinStandardHelpOptions = true,
    description = "Write an offline HTML report (circuit Sankey, metric curves, faithfulness, ROC, parameters) "
        + "of a discovery result JSON.")
final class ReportCommand implements Callable<Integer> {

    @Option(names = "--result", required = true, paramLabel = "RESULT.json",
        description = "Discovery result JSON (schema: docs/schema/discover-result.schema.json).")
    Path result;

    @Option(names = "--out", required = true, paramLabel = "REPORT.html", description = "Where to write the report.")
    Path out;

    @Option(names = "--sankey-edges", defaultValue = "50", paramLabel = "N",
        description = "Edges of largest |score| drawn in each algorithm's circuit diagram (default ${DEFAULT-VALUE}).")
    int sankeyEdges;

    @Option(names = "--title", paramLabel = "TEXT", description = "Page title (default: the task and model).") String title;

    @Option(names = "--force", description = "Replace an existing --out file even if it is not a report this tool wrote.")
    boolean force;

    @Override
    public Integer call() throws IOException {
        if (sankeyEdges < 1) throw new IllegalArgumentException("--sankey-edges must be at least 1, got " + sankeyEdges);
        if (!Files.exists(result)) throw new IllegalArgumentException("--result " + result + ": no such file");
        if (!Files.isRegularFile(result)) {
            throw new IllegalArgumentException("--result " + result + ": not a regular file (a folder, FIFO or device)");
        }
        Outputs.check(out, "--out", force, Outputs.HTML_REPORT, java.util.List.of(result));
        DiscoveryResult r = DiscoveryResult.read(result);
        try {
            HtmlReport.write(r, out, new HtmlReport.Options(sankeyEdges, title));
        } catch (IOException e) {
            // the message names the path and the reason; a path the user chose is bad input (exit 2)
            throw new IllegalArgumentException("--out: " + e.getMessage(), e);
        }
        System.out.printf(Locale.ROOT, "wrote %s (%.1f MB): %d algorithm(s), %s graph of %,d edges%n", out,
            Files.size(out) / 1e6, r.algorithms().size(), r.graph().kind(), r.graph().nEdges());
        return 0;
    }
}
