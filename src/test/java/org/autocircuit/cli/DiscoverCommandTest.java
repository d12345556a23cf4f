package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.cli.ReportCommandTest.Outcome;
import org.autocircuit.report.DiscoveryResult;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's main job: discovery on the bundled induction task. */
class DiscoverCommandTest {

    @Test
    void bundledDiscoveryRanksTheKnownCircuitFarAboveRandom(@TempDir Path dir) throws Exception {
        Path result = dir.resolve("result.json");
        Path report = dir.resolve("report.html");
        Outcome o = ReportCommandTest.run("discover", "--algorithms", "EAP,ACDC,Random", "--result", result.toString(),
            "--report", report.toString(), "--top", "3");
        assertEquals(0, o.code(), o.err());
        assertTrue(o.out().contains("ROC AUC against the official circuit 'induction-2l' (24 edges)"), o.out());
        DiscoveryResult r = DiscoveryResult.read(result);
        double eap = r.algorithm("Edge Answer Logit Diff Gradient At Clean").roc().auc();
        double acdc = r.algorithm("ACDC").roc().auc();
        double random = r.algorithm("Random").roc().auc();
        // measured: EAP 0.776, ACDC 0.806, Random (seed 0) 0.389; a random ranking's expected AUC is 0.5
        assertTrue(eap > 0.7 && acdc > 0.7, "EAP " + eap + ", ACDC " + acdc);
        assertTrue(eap > random + 0.2, "EAP " + eap + " vs random " + random);
        // EAP's top edges are the induction heads' outputs, which carry the whole logit difference
        assertTrue(r.algorithm("Edge Answer Logit Diff Gradient At Clean").topEdges().get(0).edge().matches("A1\\.[012]->Resid End"));
        assertTrue(Files.readString(report).contains("<html"), "report written");
        // m(∅) is the truly empty circuit for every algorithm, ACDC's +Infinity ties included, so all share it
        var eapF = r.algorithm("Edge Answer Logit Diff Gradient At Clean").faithfulness();
        var acdcF = r.algorithm("ACDC").faithfulness();
        assertEquals(eapF.emptyValue(), acdcF.emptyValue(), 0);
        assertEquals(eapF.fullValue(), acdcF.fullValue(), 0);
        assertTrue(acdcF.fullValue() > acdcF.emptyValue(), "the full model beats the empty circuit: " + acdcF.fullValue()
            + " vs " + acdcF.emptyValue());
        System.out.printf("CPR/CMD: EAP %.3f/%.3f, ACDC %.3f/%.3f%n", eapF.cpr(), eapF.cmd(), acdcF.cpr(), acdcF.cmd());
    }

    /**
     * `discover --model <llama folder> --dataset <file>` end to end, in both grouped-query layouts, with the report: the
     * tiny Llama fixture (GQA, 4 query / 2 key-value heads) on the 32 IOI prompts. Checks that the result is valid
     * against the JSON schema, has the graph AutoCircuit built (edge count from the golden graph.json) or the grouped
     * one (fewer K/V destinations, computed here from config.json), a finite score for every edge, finite metric
     * curves and faithfulness, and that the HTML report names EAP's top edge.
     */
    @Test
    void discoversOnALlamaFolderInBothLayouts(@TempDir Path dir) throws Exception {
        Path llama = org.autocircuit.testing.FamilyFixtures.modelDir("llama");
        Path dataset = org.autocircuit.testing.Fixtures.resource("datasets/ioi-32.json");
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        var config = json.readTree(llama.resolve("config.json").toFile());
        int layers = config.get("num_hidden_layers").asInt(), heads = config.get("num_attention_heads").asInt();
        int kvHeads = config.get("num_key_value_heads").asInt();
        int ungrouped = org.autocircuit.testing.GoldenFixture.LLAMA.golden("graph.json").get("component").get("n_edges").asInt();
        // grouped: per block, 2·(heads − kvHeads) fewer K/V destinations, each reading the 1 + b·(heads + 1) earlier sources
        int grouped = ungrouped;
        for (int b = 0; b < layers; b++) grouped -= 2 * (heads - kvHeads) * (1 + b * (heads + 1));
        var schema = com.networknt.schema.JsonSchemaFactory.getInstance(com.networknt.schema.SpecVersion.VersionFlag.V202012)
            .getSchema(Files.readString(Path.of("docs/schema/discover-result.schema.json")));
        String eapKey = "Edge Answer Logit Diff Gradient At Clean";
        String[] layouts = {"ungrouped", "grouped"};
        int[] expectedEdges = {ungrouped, grouped};
        for (int i = 0; i < 2; i++) {
            Path result = dir.resolve(layouts[i] + ".json");
            Path report = dir.resolve(layouts[i] + ".html");
            Outcome o = ReportCommandTest.run("discover", "--model", llama.toString(), "--dataset", dataset.toString(),
                "--gqa-layout", layouts[i], "--algorithms", "EAP,Random", "--result", result.toString(),
                "--report", report.toString(), "--top", "3");
            assertEquals(0, o.code(), o.err());
            var errors = schema.validate(json.readTree(result.toFile()));
            assertTrue(errors.isEmpty(), layouts[i] + " result: schema errors " + errors);
            DiscoveryResult r = DiscoveryResult.read(result);
            assertEquals(expectedEdges[i], r.graph().nEdges(), layouts[i] + " edges");
            for (DiscoveryResult.AlgorithmResult a : r.algorithms()) {
                String at = layouts[i] + " " + a.key();
                assertEquals(expectedEdges[i], a.scores().size(), at + ": a score per edge");
                boolean nonZero = false;
                for (DiscoveryResult.EdgeScore e : a.scores()) {
                    assertTrue(Float.isFinite(e.score()), at + ": finite score of " + e.edge());
                    nonZero |= e.score() != 0;
                }
                assertTrue(nonZero, at + ": some edge scored");
                assertFalse(a.curves().isEmpty(), at + ": metric curves");
                for (DiscoveryResult.MetricCurve c : a.curves()) {
                    assertFalse(c.points().isEmpty(), at + " " + c.key());
                    for (DiscoveryResult.CurvePoint p : c.points()) {
                        assertTrue(Double.isFinite(p.value()) && p.edgeCount() >= 0 && p.edgeCount() <= expectedEdges[i],
                            at + " " + c.key() + " point " + p);
                    }
                }
                assertTrue(Double.isFinite(a.faithfulness().fullValue()) && Double.isFinite(a.faithfulness().emptyValue()),
                    at + ": faithfulness " + a.faithfulness());
            }
            var top = r.algorithm(eapKey).topEdges();
            assertFalse(top.isEmpty(), "EAP's top edges");
            for (int k = 1; k < top.size(); k++) {
                assertTrue(Math.abs(top.get(k - 1).score()) >= Math.abs(top.get(k).score()), "top edges by |score|");
            }
            String html = Files.readString(report);
            assertTrue(html.contains("<html") && html.contains(top.get(0).srcName()), layouts[i] + " report names the top edge");
        }
    }

    @Test
    void badInputExitsTwoWithTheValidChoicesAndWritesNothing(@TempDir Path dir) {
        Path report = dir.resolve("r.html");
        Outcome o = ReportCommandTest.run("discover", "--task", "nope", "--report", report.toString());
        assertEquals(2, o.code());
        assertTrue(o.err().contains("unknown task 'nope'") && o.err().contains("induction-2l"), o.err());
        o = ReportCommandTest.run("discover", "--algorithms", "EAPX", "--report", report.toString());
        assertEquals(2, o.code());
        assertTrue(o.err().contains("unknown algorithm 'EAPX'") && o.err().contains("ACDC"), o.err());
        o = ReportCommandTest.run("discover", "--ablation", "nope", "--report", report.toString());
        assertEquals(2, o.code());
        o = ReportCommandTest.run("discover", "--model", dir.resolve("missing").toString(), "--dataset",
            dir.resolve("d.json").toString(), "--report", report.toString());
        assertEquals(2, o.code(), o.err());
        assertFalse(Files.exists(report), "nothing written on bad input");
    }
}
