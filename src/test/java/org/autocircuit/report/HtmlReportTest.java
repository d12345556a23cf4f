package org.autocircuit.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.autocircuit.report.DiscoveryResult.Run;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The HTML report of real runs (component and token graphs): self-contained, escaped, and, opened in headless
 * Chromium, drawn without a console message: the Sankey diagrams have nodes and links, one diagram per token
 * position in token graphs. The browser tests skip, saying why, only where no Chromium is installed
 * (docs/testing.md lists the skip).
 */
class HtmlReportTest {
    /** Text that would break out of HTML, a script element, JSON, or Plotly's label markup if not escaped. */
    static final String HOSTILE = "<b>b</b><i>&amp;</script><script>alert(1)</script> \"q\" 'a' \u2028";

    @TempDir
    Path dir;

    static DiscoveryResult withHostileStrings(DiscoveryResult r) {
        Run run = r.run();
        List<String> labels = new ArrayList<>(run.seqLabels());
        if (!labels.isEmpty()) labels.set(labels.size() - 1, HOSTILE);
        Run hostile = new Run(run.tool(), run.createdAt(), run.task() + " " + HOSTILE, run.model() + " " + HOSTILE,
            run.dataset(), run.ablation(), run.patchType(), run.edgeCounts(), run.seed(), run.timingsSeconds(), labels);
        return new DiscoveryResult(r.formatVersion(), hostile, r.graph(), r.algorithms());
    }

    static DiscoveryResult result(String kind) {
        return withHostileStrings(kind.equals("token") ? ReportFixtures.token().result() : ReportFixtures.component().result());
    }

    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void selfContainedAndEscaped(String kind) throws IOException {
        Path file = dir.resolve("report.html");
        HtmlReport.write(result(kind), file);
        String html = Files.readString(file);
        // offline: no external script, style or image
        assertFalse(Pattern.compile("<(script|link|img|iframe)[^>]+(src|href)\\s*=", Pattern.CASE_INSENSITIVE)
            .matcher(html).find(), "the page loads nothing from elsewhere");
        assertTrue(html.contains("plotly.js v2.35"), "plotly.js is inlined");
        // the hostile text appears only escaped: as HTML text in the tables, as \\u escapes in the JSON block
        assertFalse(html.contains("<script>alert(1)"), "no injected script element");
        assertFalse(html.contains("<b>b</b>"), "no injected markup");
        assertTrue(html.contains("&lt;b&gt;b&lt;/b&gt;&lt;i&gt;&amp;amp;&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; "
            + "&quot;q&quot; &#39;a&#39;"), "escaped in the HTML text");
        String data = between(html, "<script type=\"application/json\" id=\"report-data\">", "</script>");
        // the token graph's position labels carry the hostile text into the page data
        if (kind.equals("token")) assertTrue(data.contains("\\u003c/script\\u003e"), "script-safe JSON");
        assertFalse(data.contains("<") || data.contains(">") || data.contains("\u2028"));
        // three script elements: the data, plotly, the page script
        assertEquals(3, count(html, "<script"));
        assertEquals(3, count(html, "</script>"));
    }

    @Test
    void unwritablePathIsNamed() {
        DiscoveryResult r = ReportFixtures.component().result();
        Path target = dir.resolve("missing-folder/report.html");
        var e = assertThrows(IOException.class, () -> HtmlReport.write(r, target));
        assertTrue(e.getMessage().contains(target.toString()) && e.getMessage().contains("does not exist"), e.getMessage());
        var e2 = assertThrows(IOException.class, () -> HtmlReport.write(r, dir));
        assertTrue(e2.getMessage().contains(dir.toString()) && e2.getMessage().contains("is a folder"), e2.getMessage());
    }

    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void rendersInHeadlessChromium(String kind) throws Exception {
        String chromium = chromium();
        assumeTrue(chromium != null, "Chromium is not installed (no chromium, chromium-browser or google-chrome on "
            + "PATH, and -Dautocircuit.chromium is unset); install the Debian package 'chromium' to run this test");
        DiscoveryResult r = result(kind);
        Path file = dir.resolve("report.html");
        HtmlReport.write(r, file);

        Browser b = dumpDom(chromium, file);
        assertEquals(List.of(), b.consoleLines(), "the page logs nothing to the console");
        String body = bodyTag(b.dom());
        assertTrue(body.contains("data-rendered=\"true\""), "every plot resolved; body tag: " + body);
        assertFalse(body.contains("data-render-error"), "no drawing error; body tag: " + body);

        int sankeyNodes = count(b.dom(), "class=\"sankey-node\"");
        int sankeyLinks = count(b.dom(), "class=\"sankey-link\"");
        int diagrams = count(b.dom(), "class=\"sankey\"");
        assertTrue(sankeyNodes > 0 && sankeyLinks > 0, "Sankey drew " + sankeyNodes + " nodes, " + sankeyLinks + " links");
        assertTrue(sankeyLinks <= HtmlReport.Options.defaults().sankeyEdges() * r.algorithms().size(),
            sankeyLinks + " links");
        if (kind.equals("token")) {
            assertTrue(diagrams > r.algorithms().size(), "one diagram per drawn token position, got " + diagrams);
        } else {
            assertEquals(r.algorithms().size(), diagrams, "one diagram per algorithm");
        }
        // four metric plots, faithfulness and ROC, besides the Sankeys: Plotly marks each plot div with js-plotly-plot
        int plots = count(b.dom(), " js-plotly-plot\"");
        assertEquals(r.algorithms().size() + ReportFixtures.METRICS.size() + 2, plots, "plots drawn");
        assertFalse(b.dom().contains("<script>alert(1)"));
        if (kind.equals("token")) {
            // Plotly draws the hostile position label (cut to 24 characters) as text, not as markup; the DOM dump
            // escapes text again, so the label's "&amp;" reads "&amp;amp;"
            List<String> annotations = new ArrayList<>();
            Matcher m = Pattern.compile("<text class=\"annotation-text\"[^>]*>(.*?)</text>").matcher(b.dom());
            while (m.find()) annotations.add(m.group(1));
            assertTrue(annotations.stream().anyMatch(t -> t.contains("&lt;b&gt;b&lt;/b&gt;&lt;i&gt;&amp;amp;&lt;/scrip…")),
                "hostile label drawn as text: " + annotations);
            assertTrue(annotations.stream().noneMatch(t -> t.contains("<tspan")), "no markup in labels: " + annotations);
        }
    }

    record Browser(String dom, List<String> consoleLines) {}

    /**
     * Opens the page in headless Chromium and returns the DOM after load and a virtual-time budget for Plotly's
     * timers, with every console message Chromium logged (all levels: the page should log none).
     */
    static Browser dumpDom(String chromium, Path page) throws IOException, InterruptedException {
        Path profile = Files.createTempDirectory("chromium-profile");
        Path out = Files.createTempFile("dom", ".html");
        Path err = Files.createTempFile("chromium", ".log");
        try {
            ProcessBuilder pb = new ProcessBuilder(chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--user-data-dir=" + profile,
                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=15000", "--dump-dom",
                page.toUri().toString())
                .redirectOutput(out.toFile()).redirectError(err.toFile());
            Process p = pb.start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("chromium did not finish within 120 s");
            }
            // without the scripts' source text, which mentions the very class names the checks count
            String dom = Files.readString(out, StandardCharsets.UTF_8).replaceAll("(?s)<script\\b.*?</script>", "");
            List<String> console = new ArrayList<>();
            for (String line : Files.readAllLines(err, StandardCharsets.UTF_8)) {
                if (line.contains(":CONSOLE")) console.add(line);
            }
            assertEquals(0, p.exitValue(), "chromium exit code; stderr: " + Files.readString(err));
            return new Browser(dom, console);
        } finally {
            Files.deleteIfExists(out);
            Files.deleteIfExists(err);
            try (var walk = Files.walk(profile)) {
                walk.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            }
        }
    }

    /** The Chromium binary: -Dautocircuit.chromium, else the first of chromium, chromium-browser, google-chrome on PATH. */
    static String chromium() {
        String explicit = System.getProperty("autocircuit.chromium");
        if (explicit != null && !explicit.isBlank()) return explicit;
        String path = System.getenv("PATH");
        if (path == null) return null;
        for (String name : List.of("chromium", "chromium-browser", "google-chrome")) {
            for (String d : path.split(File.pathSeparator)) {
                Path candidate = Path.of(d, name);
                if (Files.isExecutable(candidate)) return candidate.toString();
            }
        }
        return null;
    }

    static int count(String s, String needle) {
        Matcher m = Pattern.compile(Pattern.quote(needle)).matcher(s);
        int n = 0;
        while (m.find()) n++;
        return n;
    }

    private static String between(String s, String start, String end) {
        int a = s.indexOf(start);
        int b = s.indexOf(end, a + start.length());
        return s.substring(a + start.length(), b);
    }

    private static String bodyTag(String dom) {
        Matcher m = Pattern.compile("<body[^>]*>").matcher(dom);
        return m.find() ? m.group() : "(no body tag in: " + dom.substring(0, Math.min(400, dom.length())) + ")";
    }
}
