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
