package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.PatchType;
import org.autocircuit.report.DiscoveryResult;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code autocircuit report}: writes the page, and bad input exits 2 with a message naming what to fix. */
class ReportCommandTest {
    @TempDir
    Path dir;
    Path resultFile;

    @BeforeEach
    void writeResult() throws Exception {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        float[] flat = new float[g.nEdges()];
        for (int i = 0; i < flat.length; i++) flat[i] = (i % 7 - 3) / 10f;
        DiscoveryResult r = DiscoveryResult.builder().task("ioi").model("tiny").dataset("ioi-32.json")
            .ablation(AblationType.RESAMPLE).patchType(PatchType.EDGE_PATCH).edgeCounts(List.of(0, 10, 110))
            .algorithm("X", "hand-made scores", PruneScores.ofFlat(g, flat))
            .curve(PruneMetrics.LOGIT_DIFF, List.of(new Measurement(0, -1), new Measurement(10, 0.5), new Measurement(110, 1)))
            .add().build();
        resultFile = dir.resolve("result.json");
        r.write(resultFile);
    }

    record Outcome(int code, String out, String err) {}

    static Outcome run(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.execute(args);
            return new Outcome(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    @Test
    void writesTheReport() throws Exception {
        Path html = dir.resolve("report.html");
        Outcome o = run("report", "--result", resultFile.toString(), "--out", html.toString(), "--title", "Tiny <run>");
        assertEquals(0, o.code(), o.err());
        assertTrue(o.out().contains("wrote " + html) && o.out().contains("component graph of 110 edges"), o.out());
        String page = Files.readString(html);
        assertTrue(page.contains("<title>Tiny &lt;run&gt;</title>"));
        assertTrue(page.contains("hand-made scores"));
    }

    @Test
    void badInputExitsTwoNamingIt() throws Exception {
        Path html = dir.resolve("report.html");
        Outcome missing = run("report", "--result", dir.resolve("nope.json").toString(), "--out", html.toString());
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("nope.json") && missing.err().contains("no such file"), missing.err());

        Path garbage = dir.resolve("garbage.json");
        Files.writeString(garbage, "{\"formatVersion\": 1, \"run\": ");
        Outcome bad = run("report", "--result", garbage.toString(), "--out", html.toString());
        assertEquals(2, bad.code());
        assertTrue(bad.err().contains("garbage.json") && bad.err().contains("not valid result JSON"), bad.err());

        Path unwritable = garbage.resolve("report.html");   // a "folder" that is a file cannot be created
        Outcome out = run("report", "--result", resultFile.toString(), "--out", unwritable.toString());
        assertEquals(2, out.code());
        assertTrue(out.err().contains(garbage.toString()) && out.err().contains("cannot create"), out.err());

        Outcome usage = run("report", "--result", resultFile.toString());
        assertEquals(2, usage.code(), "picocli's usage error for a missing --out");
        assertTrue(usage.err().contains("--out"), usage.err());
        assertTrue(!Files.exists(html), "no report from failed runs");
    }
}
