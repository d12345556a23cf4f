package org.autocircuit.report;

import org.autocircuit.util.AtomicFiles;

import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStreamWriter;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.autocircuit.report.DiscoveryResult.AlgorithmResult;
import org.autocircuit.report.DiscoveryResult.EdgeScore;
import org.autocircuit.report.DiscoveryResult.FaithfulnessResult;
import org.autocircuit.report.DiscoveryResult.MetricCurve;
import org.autocircuit.report.DiscoveryResult.NodeInfo;
import org.autocircuit.report.DiscoveryResult.RocResult;
import org.autocircuit.report.DiscoveryResult.Run;

/**
 * A self-contained HTML report of a {@link DiscoveryResult} that opens offline: plotly.js is inlined (from the
 * {@code org.webjars.npm:plotly.js-dist} jar on the classpath), nothing is fetched from the network.
 *
 * <p>It shows, per algorithm, the circuit of the largest-|score| edges as a Sankey diagram laid out like
 * AutoCircuit's {@code draw_seq_graph} (nodes in columns by graph layer, a head's Q/K/V inputs drawn as the
 * head, edge width |score|, blue for positive and red for negative scores, one diagram per token position in token
 * graphs); then the metric-vs-circuit-size curves of every algorithm, the faithfulness curve with CPR/CMD, the ROC
 * curve with its AUC when there is an official circuit, the run's parameters and the top edges.
 *
 * <p>Every string of the result (prompt tokens, edge and model names) is escaped for the place it lands: HTML text
 * in the tables, a JSON block that cannot close its {@code <script>} element, and Plotly labels (which read some
 * HTML) in the page script.
 *
 * <pre>{@code HtmlReport.write(DiscoveryResult.read(Path.of("result.json")), Path.of("report.html"));}</pre>
 */
public final class HtmlReport {

    /**
     * @param sankeyEdges how many edges of largest |score| (non-zero) each algorithm's Sankey diagram draws
     * @param title       the page title, or null for one made of the task and model
     */
    public record Options(int sankeyEdges, String title) {
        public Options {
            if (sankeyEdges < 1) throw new IllegalArgumentException("sankeyEdges must be >= 1, got " + sankeyEdges);
        }

        public static Options defaults() {
            return new Options(50, null);
        }
    }

    private static final String PLOTLY_POM_PROPERTIES = "META-INF/maven/org.webjars.npm/plotly.js-dist/pom.properties";
    private static final String RESOURCES = "org/autocircuit/report/";

    /**
     * The generator tag every report carries; the command line replaces an existing file without {@code --force}
     * only when it finds this tag (a report it wrote).
     */
    public static final String GENERATOR = "autocircuit-java report";

    private HtmlReport() {}

    /** Writes the report with {@link Options#defaults()}. */
    public static void write(DiscoveryResult result, Path file) throws IOException {
        write(result, file, Options.defaults());
    }

    /**
     * Writes the report atomically (temp file, then rename).
     *
     * @throws IOException whose message names {@code file} when it cannot be written
     */
    public static void write(DiscoveryResult result, Path file, Options options) throws IOException {
        String html = render(result, options);
        AtomicFiles.write(file, out -> {
            Writer w = new OutputStreamWriter(out, StandardCharsets.UTF_8);
            w.write(html);
            w.flush();
        });
    }

    /** The whole page as a string. */
    public static String render(DiscoveryResult result, Options options) {
        Run run = result.run();
        String title = options.title() != null ? options.title()
            : "Circuit discovery: " + run.task() + " on " + run.model();
        StringBuilder h = new StringBuilder(1 << 16);
        h.append("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .append("<meta name=\"generator\" content=\"").append(GENERATOR).append("\">\n")
            .append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
            .append("<title>").append(escapeHtml(title)).append("</title>\n<style>\n")
            .append(resource(RESOURCES + "report.css")).append("</style>\n</head>\n<body>\n")
            .append("<div id=\"report-errors\" class=\"errors\" hidden></div>\n")
            .append("<h1>").append(escapeHtml(title)).append("</h1>\n")
            .append("<p class=\"subtitle\">").append(escapeHtml(summary(result))).append("</p>\n");

        h.append("<h2>Circuit</h2>\n<p class=\"note\">The ").append(options.sankeyEdges())
            .append(" edges of largest |score| per algorithm (fewer if fewer are non-zero), by graph layer")
            .append(result.graph().seqLen() != null ? " and token position" : "")
            .append(". Width: |score|; blue: positive, red: negative. Hover an edge for its score.</p>\n");
        for (int i = 0; i < result.algorithms().size(); i++) {
            h.append("<div class=\"plot sankey-plot\" id=\"sankey-").append(i).append("\"></div>\n");
        }
        h.append("<h2>Metrics against circuit size</h2>\n<div id=\"curves\"></div>\n")
            .append("<h2>Faithfulness</h2>\n<div class=\"plot\" id=\"faithfulness\"></div>\n")
            .append("<h2>ROC against the official circuit</h2>\n<div class=\"plot\" id=\"roc\"></div>\n");
        appendParameters(h, result);
        appendAlgorithms(h, result);
        appendTopEdges(h, result);

        h.append("<script type=\"application/json\" id=\"report-data\">")
            .append(scriptSafeJson(viewJson(result, options))).append("</script>\n")
            .append("<script>\n").append(plotlyJs()).append("\n</script>\n")
            .append("<script>\n").append(resource(RESOURCES + "report.js")).append("</script>\n")
            .append("</body>\n</html>\n");
        return h.toString();
    }

    // ---- static HTML parts ----

    private static String summary(DiscoveryResult r) {
        var g = r.graph();
        return String.format(Locale.ROOT, "%s graph, %,d edges%s; %s, %s; %s", g.kind(), g.nEdges(),
            g.seqLen() == null ? "" : " over " + g.seqLen() + " token positions", r.run().patchType(), r.run().ablation(),
            r.algorithms().stream().map(AlgorithmResult::name).collect(Collectors.joining(", ")));
    }

    private static void appendParameters(StringBuilder h, DiscoveryResult r) {
        Run run = r.run();
        Map<String, String> rows = new LinkedHashMap<>();
        rows.put("Task", run.task());
        rows.put("Model", run.model());
        rows.put("Dataset", run.dataset());
        rows.put("Graph", r.graph().kind() + (r.graph().factorized() ? ", factorized" : ", unfactorized")
            + ", " + r.graph().nEdges() + " edges" + (r.graph().seqLen() == null ? "" : ", " + r.graph().seqLen() + " positions"));
        rows.put("Ablation", run.ablation());
        rows.put("Patch type", run.patchType());
        rows.put("Requested edge counts", abbreviate(run.edgeCounts()));
        rows.put("Seed", Long.toString(run.seed()));
        if (!run.seqLabels().isEmpty()) rows.put("Token positions", String.join(" | ", run.seqLabels()));
        run.timingsSeconds().forEach((k, v) -> rows.put("Time: " + k, String.format(Locale.ROOT, "%.2f s", v)));
        rows.put("Written by", run.tool() + ", " + run.createdAt());
        h.append("<h2>Parameters</h2>\n<table class=\"params\">\n");
        rows.forEach((k, v) -> h.append("<tr><th>").append(escapeHtml(k)).append("</th><td>").append(escapeHtml(v))
            .append("</td></tr>\n"));
        h.append("</table>\n");
    }

    private static void appendAlgorithms(StringBuilder h, DiscoveryResult r) {
        h.append("<h2>Algorithms</h2>\n<table>\n<tr><th>key</th><th>name</th><th>parameters</th><th>scoring time</th>")
            .append("<th>CPR</th><th>CMD</th><th>ROC AUC</th><th>metric AUCs</th></tr>\n");
        for (AlgorithmResult a : r.algorithms()) {
            FaithfulnessResult f = a.faithfulness();
            RocResult roc = a.roc();
            String params = a.parameters().entrySet().stream().map(e -> e.getKey() + " = " + e.getValue())
                .collect(Collectors.joining(", "));
            String aucs = a.curves().stream().filter(c -> c.auc() != null)
                .map(c -> c.key() + ": " + number(c.auc())).collect(Collectors.joining(", "));
            h.append("<tr><td>").append(escapeHtml(a.key())).append("</td><td>").append(escapeHtml(a.name()))
                .append("</td><td>").append(escapeHtml(params)).append("</td><td>")
                .append(a.seconds() == null ? "" : String.format(Locale.ROOT, "%.2f s", a.seconds())).append("</td><td>")
                .append(f == null ? "" : escapeHtml(number(f.cpr()))).append("</td><td>")
                .append(f == null ? "" : escapeHtml(number(f.cmd()))).append("</td><td>")
                .append(roc == null ? "" : escapeHtml(number(roc.auc()))).append("</td><td>")
                .append(escapeHtml(aucs)).append("</td></tr>\n");
        }
        h.append("</table>\n");
    }

    private static void appendTopEdges(StringBuilder h, DiscoveryResult r) {
        List<String> labels = r.run().seqLabels();
        for (AlgorithmResult a : r.algorithms()) {
            h.append("<h2>Top edges: ").append(escapeHtml(a.name())).append("</h2>\n<table class=\"edges\">\n")
                .append("<tr><th>#</th><th>edge</th>")
                .append(r.graph().seqLen() == null ? "" : "<th>position</th>").append("<th>score</th></tr>\n");
            int rank = 1;
            for (EdgeScore e : a.topEdges()) {
                h.append("<tr><td>").append(rank++).append("</td><td>").append(escapeHtml(e.edge())).append("</td>");
                if (r.graph().seqLen() != null) {
                    String label = e.seqIdx() != null && e.seqIdx() < labels.size() ? " " + labels.get(e.seqIdx()) : "";
                    h.append("<td>").append(escapeHtml(e.seqIdx() + label)).append("</td>");
                }
                h.append("<td class=\"num\">").append(escapeHtml(number(e.score()))).append("</td></tr>\n");
            }
            h.append("</table>\n");
        }
    }

    private static String abbreviate(List<Integer> counts) {
        if (counts.size() <= 30) return counts.toString();
        return counts.subList(0, 15) + " … " + counts.subList(counts.size() - 5, counts.size()) + " (" + counts.size() + " sizes)";
    }

    private static String number(double v) {
        if (!Double.isFinite(v)) return Double.toString(v);
        double a = Math.abs(v);
        return a != 0 && (a < 1e-3 || a >= 1e5) ? String.format(Locale.ROOT, "%.3e", v) : String.format(Locale.ROOT, "%.4g", v);
    }

    // ---- the data the page script draws ----

    /** What report.js reads: only the edges it draws, so the page stays small for graphs of millions of edges. */
    record View(Integer seqLen, int maxLayer, Map<String, Integer> displayLayers, List<String> seqLabels,
                List<AlgorithmView> algorithms) {}

    record AlgorithmView(String key, String name, List<CircuitEdge> circuitEdges, List<MetricCurve> curves,
                         FaithfulnessResult faithfulness, RocResult roc) {}

    record CircuitEdge(String src, String dest, Integer seqIdx, float score) {}

    static String viewJson(DiscoveryResult r, Options options) {
        Map<String, Integer> layers = new LinkedHashMap<>();
        int maxLayer = 0;
        for (NodeInfo n : r.graph().nodes()) {
            // The page merges a head's src and its Q/K/V dests into one node; they share a graph layer, and min()
            // keeps the drawing sensible if a graph ever disagrees.
            layers.merge(displayName(n.name()), n.layer(), Math::min);
            maxLayer = Math.max(maxLayer, n.layer());
        }
        List<AlgorithmView> algorithms = new ArrayList<>();
        for (AlgorithmResult a : r.algorithms()) {
            algorithms.add(new AlgorithmView(a.key(), a.name(), circuitEdges(a, options.sankeyEdges()), a.curves(),
                a.faithfulness(), a.roc()));
        }
        View view = new View(r.graph().seqLen(), maxLayer, layers, r.run().seqLabels(), algorithms);
        try {
            return ResultJson.MAPPER.writer().without(SerializationFeature.INDENT_OUTPUT).writeValueAsString(view);
        } catch (IOException e) {
            throw new IllegalStateException("cannot serialise the report data", e);
        }
    }

    /** The same names as report.js's displayName (which the page applies to edges). */
    static String displayName(String node) {
        if (node.equals("Resid Start")) return "Embed";
        if (node.equals("Resid End")) return "Unembed";
        return node.replaceFirst("\\.[QKV]$", "");
    }

    private static List<CircuitEdge> circuitEdges(AlgorithmResult a, int n) {
        return a.scores().stream()
            .filter(e -> e.score() != 0f && !Float.isNaN(e.score()))
            .sorted(Comparator.comparingDouble((EdgeScore e) -> Math.abs(e.score())).reversed())
            .limit(n)
            .map(e -> new CircuitEdge(e.srcName(), e.destName(), e.seqIdx(), e.score()))
            .toList();
    }

    // ---- escaping ----

    /** Text for HTML element content and attribute values. */
    static String escapeHtml(String s) {
        StringBuilder b = new StringBuilder(s.length() + 16);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '&' -> b.append("&amp;");
                case '<' -> b.append("&lt;");
                case '>' -> b.append("&gt;");
                case '"' -> b.append("&quot;");
                case '\'' -> b.append("&#39;");
                default -> b.append(c);
            }
        }
        return b.toString();
    }

    /**
     * JSON that can sit inside a {@code <script>} element: '<', '>' and '&' only occur inside JSON strings, where
     * their \\u escapes mean the same, so no "</script>" or "<!--" can end or confuse the element. U+2028/9 are
     * escaped too, for old JavaScript parsers.
     */
    static String scriptSafeJson(String json) {
        return json.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029");
    }

    // ---- resources ----

    /** plotly.js from the WebJar, made safe to inline in a script element. */
    static String plotlyJs() {
        Properties pom = new Properties();
        try (InputStream in = classLoader().getResourceAsStream(PLOTLY_POM_PROPERTIES)) {
            if (in == null) {
                throw new IllegalStateException("plotly.js is not on the classpath (the HTML report needs the jar "
                    + "org.webjars.npm:plotly.js-dist; " + PLOTLY_POM_PROPERTIES + " is missing)");
            }
            pom.load(in);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + PLOTLY_POM_PROPERTIES, e);
        }
        String js = resource("META-INF/resources/webjars/plotly.js-dist/" + pom.getProperty("version") + "/plotly.js");
        // "</script" would end the inline element early; "<\/script" means the same inside any JS string, regex or
        // comment. The bundle has none today, so this is a guard for future versions.
        return js.replaceAll("(?i)</script", "<\\\\/script");
    }

    private static String resource(String name) {
        try (InputStream in = classLoader().getResourceAsStream(name)) {
            if (in == null) throw new IllegalStateException("missing resource " + name + " on the classpath");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read resource " + name, e);
        }
    }

    private static ClassLoader classLoader() {
        return HtmlReport.class.getClassLoader();
    }
}
