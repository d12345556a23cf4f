package org.autocircuit.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.networknt.schema.JsonSchema;
import com.networknt.schema.JsonSchemaFactory;
import com.networknt.schema.SpecVersion;
import com.networknt.schema.ValidationMessage;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.TransformerShape;
import org.autocircuit.metrics.Faithfulness;
import org.autocircuit.metrics.Measurement;
import org.autocircuit.metrics.PruneMetrics;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.PatchType;
import org.autocircuit.report.DiscoveryResult.AlgorithmResult;
import org.autocircuit.report.DiscoveryResult.EdgeScore;
import org.autocircuit.report.DiscoveryResult.FaithfulnessPoint;
import org.autocircuit.report.DiscoveryResult.MetricCurve;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The discovery result from real runs on the bundled model (component graph, 110 edges; token graph, seq_len 15,
 * 1,650 edges): built consistently from the library objects, valid against docs/schema, equal after a JSON round
 * trip, and strict about bad files.
 */
class DiscoveryResultTest {
    static final Path SCHEMA = Path.of("docs/schema/discover-result.schema.json");
    static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    static ReportFixtures.Run fixture(String kind) {
        return kind.equals("token") ? ReportFixtures.token() : ReportFixtures.component();
    }

    static JsonSchema schema() throws IOException {
        return JsonSchemaFactory.getInstance(SpecVersion.VersionFlag.V202012).getSchema(Files.readString(SCHEMA));
    }

    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void builtFromTheRunItDescribes(String kind) {
        ReportFixtures.Run run = fixture(kind);
        DiscoveryResult r = run.result();
        Graph g = run.scores().get("EAP").graph();
        assertEquals(kind.equals("token") ? 1650 : 110, r.graph().nEdges());
        assertEquals(kind, r.graph().kind());
        assertEquals(g.nSrcs() + g.dests().size(), r.graph().nodes().size());
        for (AlgorithmResult a : r.algorithms()) {
            PruneScores ps = run.scores().get(a.key());
            float[] flat = ps.flat();
            List<Edge> edges = g.edges();
            for (int i = 0; i < flat.length; i++) {
                EdgeScore e = a.scores().get(i);
                assertEquals(edges.get(i).name(), e.edge());
                assertEquals(edges.get(i).seqIdx().isPresent() ? edges.get(i).seqIdx().getAsInt() : null, e.seqIdx());
                assertEquals(flat[i], e.score());
            }
            // top edges: the largest |score| first, the first being the maximum
            assertEquals(DiscoveryResultBuilder.DEFAULT_TOP_EDGES, a.topEdges().size());
            assertEquals(ps.descAbs()[0], Math.abs(a.topEdges().get(0).score()));
            for (int i = 1; i < a.topEdges().size(); i++) {
                assertTrue(Math.abs(a.topEdges().get(i - 1).score()) >= Math.abs(a.topEdges().get(i).score()));
            }
            // curves: the real (tie-expanded) edge counts of run_circuits and the measured values
            assertEquals(ReportFixtures.METRICS.size(), a.curves().size());
            for (MetricCurve c : a.curves()) {
                List<Measurement> measured = run.measurements().get(a.key()).get(c.key());
                assertEquals(List.copyOf(run.outputs().get(a.key()).edgeCounts()),
                    c.points().stream().map(DiscoveryResult.CurvePoint::edgeCount).toList());
                for (int i = 0; i < measured.size(); i++) assertEquals(measured.get(i).y(), c.points().get(i).value());
                assertEquals(PruneMetrics.byKey(c.key()).auc(measured), c.auc());
            }
            // faithfulness: f(∅) side is m at 0 edges, f(N) side m at all edges, CPR/CMD as metrics.Faithfulness
            var f = a.faithfulness();
            MetricCurve logitDiff = a.curve("Logit Diff");
            assertEquals(logitDiff.points().get(0).value(), f.emptyValue());
            assertEquals(logitDiff.points().get(logitDiff.points().size() - 1).value(), f.fullValue());
            assertEquals(Faithfulness.FRACTIONS, f.points().stream().map(FaithfulnessPoint::fraction).toList());
            List<Measurement> fractionPoints = f.points().stream()
                .map(p -> new Measurement(p.fraction(), p.metricValue())).toList();
            assertEquals(Faithfulness.cpr(f.emptyValue(), f.fullValue(), fractionPoints), f.cpr(), 1e-12);
            assertEquals(Faithfulness.cmd(f.emptyValue(), f.fullValue(), fractionPoints), f.cmd(), 1e-12);
            FaithfulnessPoint last = f.points().get(f.points().size() - 1);
            assertEquals(r.graph().nEdges(), last.edgeCount());
            assertEquals(1.0, last.faithfulness(), 1e-12);
            for (FaithfulnessPoint p : f.points()) {
                assertEquals(logitDiff.points().stream().filter(c -> c.edgeCount() == p.edgeCount()).findFirst()
                    .orElseThrow().value(), p.metricValue(), "faithfulness point at " + p.edgeCount() + " edges");
                assertTrue(p.edgeCount() >= Math.round(p.fraction() * r.graph().nEdges()));
            }
            // ROC from (0,0) to (1,1), AUC in [0,1]
            var roc = a.roc();
            assertEquals(kind.equals("token") ? 11 * 15 : 11, roc.officialEdgeCount());
            assertEquals(new DiscoveryResult.RocPoint(0, 0), roc.points().get(0));
            assertEquals(new DiscoveryResult.RocPoint(1, 1), roc.points().get(roc.points().size() - 1));
            assertTrue(roc.auc() >= 0 && roc.auc() <= 1, "ROC AUC " + roc.auc());
        }
        assertEquals(List.of("load", "evaluate EAP", "evaluate IG-5"), List.copyOf(r.run().timingsSeconds().keySet()));
        assertEquals(Map.of("gradFunction", "LOGIT", "answerFunction", "AVG_DIFF", "integratedGradSamples", 5L),
            r.algorithm("IG-5").parameters());
        if (kind.equals("token")) assertEquals(15, r.run().seqLabels().size());
    }

    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void roundTripsThroughJsonValidAgainstTheSchema(String kind) throws IOException {
        DiscoveryResult r = fixture(kind).result();
        Path file = dir.resolve("result.json");
        r.write(file);
        Set<ValidationMessage> errors = schema().validate(JSON.readTree(file.toFile()));
        assertTrue(errors.isEmpty(), "schema errors: " + errors);
        assertEquals(r, DiscoveryResult.read(file));
        try (var files = Files.list(dir)) {
            assertEquals(List.of(file), files.toList(), "the atomic write leaves no temp file behind");
        }
    }

    @Test
    void schemaRejectsWhatTheReaderRejects() throws IOException {
        JsonSchema schema = schema();
        ObjectNode good = (ObjectNode) JSON.readTree(ResultJson.toJson(ReportFixtures.component().result()));
        assertTrue(schema.validate(good).isEmpty());

        ObjectNode noGraph = good.deepCopy();
        noGraph.remove("graph");
        assertFalse(schema.validate(noGraph).isEmpty(), "missing graph");

        ObjectNode badScore = good.deepCopy();
        ((ObjectNode) badScore.get("algorithms").get(0).get("scores").get(0)).put("score", "large");
        assertFalse(schema.validate(badScore).isEmpty(), "score as an arbitrary string");

        ObjectNode extra = good.deepCopy();
        ((ObjectNode) extra.get("run")).put("ablations", "ZERO");
        assertFalse(schema.validate(extra).isEmpty(), "misspelt field");

        Path file = dir.resolve("extra.json");
        Files.writeString(file, extra.toString());
        var e = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(file));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("ablations"), e.getMessage());
    }

    /** A small hand-made result on the 2-layer graph, for the edge cases real runs do not hit. */
    static DiscoveryResult synthetic(float[] flat) {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        return DiscoveryResult.builder().task("t").model("m").dataset("d").ablation(AblationType.ZERO)
            .patchType(PatchType.TREE_PATCH).edgeCounts(List.of(0, 1))
            .algorithm("X", "x", PruneScores.ofFlat(g, flat)).topEdges(3).add().build();
    }

    @Test
    void nonFiniteScoresTravelAsStrings() throws IOException {
        float[] flat = new float[110];
        flat[0] = Float.POSITIVE_INFINITY;
        flat[1] = Float.NEGATIVE_INFINITY;
        flat[2] = Float.NaN;
        flat[3] = 0.25f;
        DiscoveryResult r = synthetic(flat);
        Path file = dir.resolve("inf.json");
        r.write(file);
        String text = Files.readString(file);
        assertTrue(text.contains("\"Infinity\"") && text.contains("\"-Infinity\"") && text.contains("\"NaN\""), text);
        assertTrue(schema().validate(JSON.readTree(text)).isEmpty());
        DiscoveryResult back = DiscoveryResult.read(file);
        assertEquals(r, back);
        assertTrue(Float.isNaN(back.algorithm("X").scores().get(2).score()));
        // NaN first, as torch sorts it, then the infinities
        assertEquals(List.of("NaN", "Infinity", "-Infinity"), back.algorithm("X").topEdges().stream()
            .map(e -> Float.toString(e.score())).toList());
        assertNull(back.algorithm("X").faithfulness());
        assertNull(back.algorithm("X").roc());
    }

    @Test
    void readRejectsBadFilesNamingFileAndField() throws IOException {
        DiscoveryResult r = synthetic(new float[110]);
        String json = ResultJson.toJson(r);

        Path broken = dir.resolve("broken.json");
        Files.writeString(broken, json.substring(0, json.length() / 2));
        var e1 = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(broken));
        assertTrue(e1.getMessage().contains(broken.toString()), e1.getMessage());

        Path version = dir.resolve("version.json");
        Files.writeString(version, json.replace("\"formatVersion\" : 1", "\"formatVersion\" : 7"));
        var e2 = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(version));
        assertTrue(e2.getMessage().contains("formatVersion 7"), e2.getMessage());

        ObjectNode tree = (ObjectNode) JSON.readTree(json);
        ((com.fasterxml.jackson.databind.node.ArrayNode) tree.get("algorithms").get(0).get("scores")).remove(0);
        Path short1 = dir.resolve("short.json");
        Files.writeString(short1, tree.toString());
        var e3 = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(short1));
        assertTrue(e3.getMessage().contains("scores 109 edges; the graph has 110"), e3.getMessage());

        ObjectNode tree2 = (ObjectNode) JSON.readTree(json);
        ((ObjectNode) tree2.get("algorithms").get(0).get("scores").get(0)).put("edge", "A9.9->Resid End");
        Path unknown = dir.resolve("unknown.json");
        Files.writeString(unknown, tree2.toString());
        var e4 = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(unknown));
        assertTrue(e4.getMessage().contains("'A9.9->Resid End'"), e4.getMessage());

        ObjectNode tree3 = (ObjectNode) JSON.readTree(json);
        ((ObjectNode) tree3.get("run")).remove("seed");
        Path missing = dir.resolve("missing.json");
        Files.writeString(missing, tree3.toString());
        var e5 = assertThrows(IllegalArgumentException.class, () -> DiscoveryResult.read(missing));
        assertTrue(e5.getMessage().contains("seed"), e5.getMessage());

        assertThrows(java.nio.file.NoSuchFileException.class, () -> DiscoveryResult.read(dir.resolve("absent.json")));
    }

    @Test
    void writeToAMissingFolderNamesThePath() {
        DiscoveryResult r = synthetic(new float[110]);
        Path target = dir.resolve("no/such/folder/result.json");
        var e = assertThrows(IOException.class, () -> r.write(target));
        assertTrue(e.getMessage().contains(target.toString()), e.getMessage());
    }

    @Test
    void faithfulnessNeedsTheGridCounts() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        float[] flat = new float[110];
        for (int i = 0; i < flat.length; i++) flat[i] = i + 1;
        var a = DiscoveryResult.builder().algorithm("X", "x", PruneScores.ofFlat(g, flat))
            .curve(PruneMetrics.LOGIT_DIFF, List.of(new Measurement(0, 0), new Measurement(110, 2)));
        var e = assertThrows(IllegalArgumentException.class, () -> a.faithfulness(PruneMetrics.LOGIT_DIFF));
        assertTrue(e.getMessage().contains("faithfulnessEdgeCounts(110) = [0, 1, 2, 6, 11, 22, 55, 110]"), e.getMessage());
        assertNotNull(a.curve(PruneMetrics.LOGIT_DIFF, List.of(new Measurement(0, 0), new Measurement(1, 0.1),
            new Measurement(2, 0.2), new Measurement(6, 0.5), new Measurement(11, 1), new Measurement(22, 1.5),
            new Measurement(55, 1.8), new Measurement(110, 2))).faithfulness(PruneMetrics.LOGIT_DIFF));
    }
    /**
     * ACDC scores kept edges +Infinity, which every threshold admits, so its 0-edge circuit is not empty: reading
     * m(∅) from its curve would be wrong. The builder refuses, and takes m(∅) and m(N) measured apart instead.
     */
    @Test
    void faithfulnessWithTiesAtTheTopTakesTheEmptyCircuitMeasuredApart() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        float[] flat = new float[110];
        for (int i = 0; i < flat.length; i++) flat[i] = i < 18 ? Float.POSITIVE_INFINITY : i;
        List<Measurement> curve = new java.util.ArrayList<>();
        for (int k : new int[] {18, 22, 55, 110}) curve.add(new Measurement(k, k / 110.0 * 2));
        var a = DiscoveryResult.builder().task("t").model("m").dataset("d").ablation(AblationType.RESAMPLE)
            .patchType(PatchType.EDGE_PATCH).edgeCounts(List.of(18, 22, 55, 110))
            .algorithm("ACDC", "acdc", PruneScores.ofFlat(g, flat))
            .curve(PruneMetrics.LOGIT_DIFF, curve);
        var e = assertThrows(IllegalArgumentException.class, () -> a.faithfulness(PruneMetrics.LOGIT_DIFF));
        assertTrue(e.getMessage().contains("put 18 edges in the 0-edge circuit"), e.getMessage());

        var r = a.faithfulness(PruneMetrics.LOGIT_DIFF, -1.0, 2.0).add().build();
        var f = r.algorithm("ACDC").faithfulness();
        assertEquals(-1.0, f.emptyValue(), 0);
        assertEquals(2.0, f.fullValue(), 0);
        // k = 0.001 → 0 edges requested, 18 real (the kept edges): f = (18/110·2 − (−1)) / (2 − (−1))
        assertEquals(18, f.points().get(0).edgeCount());
        assertEquals((18 / 110.0 * 2 + 1) / 3, f.points().get(0).faithfulness(), 1e-12);
        assertEquals(1.0, f.points().get(f.points().size() - 1).faithfulness(), 1e-12);
    }
}
