package org.autocircuit.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.autocircuit.cli.ReportCommandTest.Outcome;
import org.autocircuit.testing.GoldenFixture;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * {@code evaluate --weight-processing}: end to end through the command, the fixture model with {@code none} and with
 * {@code tl} gives AutoCircuit's numbers from the matching golden folder under ZERO ablation, where the two
 * processings differ (Logit Diff by up to 0.07, Answer Logit everywhere).
 */
@Tag("golden")
class EvaluateCommandTest {

    @Test
    void weightProcessingMatchesAutoCircuitUnderZeroAblation() throws Exception {
        for (GoldenFixture fixture : new GoldenFixture[] {GoldenFixture.PRIMARY, GoldenFixture.TL_DEFAULT}) {
            JsonNode golden = fixture.golden("circuit_metrics_component.json");
            StringBuilder counts = new StringBuilder();
            golden.get("header").get("test_edge_counts").forEach(n -> counts.append(counts.length() == 0 ? "" : ",").append(n.asInt()));
            Outcome o = ReportCommandTest.run("evaluate", "--model", fixture.modelPath().toString(),
                "--dataset", org.autocircuit.testing.Fixtures.resource(fixture.dataset()).toString(),
                "--weight-processing", fixture.weightProcessing().cliName(), "--ablation", "zero",
                "--edge-counts", counts.toString(), "--metrics", "Logit Diff,Answer Logit", "--json");
            assertEquals(0, o.code(), o.err());
            JsonNode out = new ObjectMapper().readTree(o.out());
            assertEquals(fixture.weightProcessing().cliName(), out.get("weight_processing").asText());
            for (String metric : new String[] {"Logit Diff", "Answer Logit"}) {
                JsonNode expected = golden.get("measurements").get("EDGE_PATCH").get("ZERO").get(metric);
                JsonNode actual = out.get("measurements").get(metric);
                assertEquals(expected.size(), actual.size(), fixture + " " + metric + " points");
                for (int i = 0; i < expected.size(); i++) {
                    double e = expected.get(i).get(1).asDouble();
                    assertEquals(expected.get(i).get(0).asInt(), actual.get(i).get(0).asInt(), fixture + " " + metric + " count");
                    assertEquals(e, actual.get(i).get(1).asDouble(), 1e-3 * Math.abs(e) + 2e-6,
                        fixture + " " + metric + " at " + expected.get(i).get(0).asInt() + " edges");
                }
            }
        }
        // the two goldens do differ where this test looks, so matching each is a real check of the option
        JsonNode none = GoldenFixture.PRIMARY.golden("circuit_metrics_component.json").get("measurements").get("EDGE_PATCH").get("ZERO");
        JsonNode tl = GoldenFixture.TL_DEFAULT.golden("circuit_metrics_component.json").get("measurements").get("EDGE_PATCH").get("ZERO");
        double maxDiff = 0;
        for (int i = 0; i < none.get("Answer Logit").size(); i++) {
            maxDiff = Math.max(maxDiff, Math.abs(none.get("Answer Logit").get(i).get(1).asDouble()
                - tl.get("Answer Logit").get(i).get(1).asDouble()));
        }
        assertTrue(maxDiff > 0.01, "none and tl goldens differ in Answer Logit by " + maxDiff);
    }

    @Test
    void unknownWeightProcessingExitsTwoNamingTheChoices() {
        Outcome o = ReportCommandTest.run("evaluate", "--weight-processing", "fold");
        assertEquals(2, o.code(), o.err());
        assertTrue(o.err().contains("weight processing 'fold'") && o.err().contains("none, tl"), o.err());
        o = ReportCommandTest.run("discover", "--weight-processing", "fold", "--no-report");
        assertEquals(2, o.code(), o.err());
        assertTrue(o.err().contains("none, tl"), o.err());
    }
}
