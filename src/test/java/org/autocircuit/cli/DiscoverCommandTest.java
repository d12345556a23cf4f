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

    /** `discover --model <llama folder> --dataset <file>` end to end, in both grouped-query layouts, with the report. */
    @Test
    void discoversOnALlamaFolderInBothLayouts(@TempDir Path dir) throws Exception {
        Path llama = org.autocircuit.testing.FamilyFixtures.modelDir("llama");
        Path dataset = org.autocircuit.testing.Fixtures.resource("datasets/ioi-32.json");
        int[] edges = new int[2];
        String[] layouts = {"ungrouped", "grouped"};
        for (int i = 0; i < 2; i++) {
            Path result = dir.resolve(layouts[i] + ".json");
            Path report = dir.resolve(layouts[i] + ".html");
            Outcome o = ReportCommandTest.run("discover", "--model", llama.toString(), "--dataset", dataset.toString(),
                "--gqa-layout", layouts[i], "--algorithms", "EAP,Random", "--result", result.toString(),
                "--report", report.toString(), "--top", "3");
            assertEquals(0, o.code(), o.err());
            assertTrue(Files.readString(report).contains("<html"), "report written");
            DiscoveryResult r = DiscoveryResult.read(result);
            var top = r.algorithm("Edge Answer Logit Diff Gradient At Clean").topEdges();
            assertFalse(top.isEmpty(), "EAP ranked edges");
            edges[i] = r.graph().nEdges();
            assertEquals(edges[i], r.algorithm("Edge Answer Logit Diff Gradient At Clean").scores().size());
        }
        // 4 query heads, 2 key/value heads: 110 edges ungrouped (AutoCircuit's graph), 82 grouped (docs/models.md)
        assertEquals(110, edges[0]);
        assertEquals(82, edges[1]);
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
