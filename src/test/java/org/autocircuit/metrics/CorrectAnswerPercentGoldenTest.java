package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.autocircuit.util.HostTensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Correct Answer Percent where it is not 0. The fixture model is random, so no IOI answer is its top token and every
 * golden value is 0. Here every other test prompt's answer is replaced by the token AutoCircuit recorded as the clean
 * model's argmax (clean_logits.json): the full model (TREE_PATCH with every edge kept) must then score exactly the
 * share of prompts whose answer is that recorded argmax, and every circuit size of both patch types the share computed
 * here by an argmax over the run_circuits logits, at least one of them strictly between 0 and 100.
 */
@Tag("golden")
class CorrectAnswerPercentGoldenTest {

    @Test
    void correctAnswerPercentCountsPromptsWhoseAnswerIsTheTopToken() {
        GoldenFixture fixture = GoldenFixture.PRIMARY;
        JsonNode cleanLogits = fixture.golden("clean_logits.json").get("test").get("batches");
        JsonNode metrics = fixture.golden("circuit_metrics_component.json");
        List<Integer> counts = new ArrayList<>();
        metrics.get("header").get("test_edge_counts").forEach(n -> counts.add(n.asInt()));
        List<PromptPairBatch> batches = new ArrayList<>();
        double expectedFull = 0;
        List<PromptPairBatch> original = fixture.data().test().batches();
        for (int b = 0; b < original.size(); b++) {
            PromptPairBatch batch = original.get(b);
            List<HostTensor> answers = new ArrayList<>();
            int atArgmax = 0;
            for (int i = 0; i < batch.batchSize(); i++) {
                long argmax = cleanLogits.get(b).get("clean_argmax").get(i).asLong();
                long answer = i % 2 == 0 ? argmax : batch.answers().prompt(i).longs()[0];
                if (answer == argmax) atArgmax++;
                answers.add(HostTensor.ofLongs(new long[] {answer}, 1));
            }
            expectedFull += 100.0 * atArgmax / batch.batchSize() / original.size();
            batches.add(new PromptPairBatch(batch.key(), batch.batchDivergeIdx(), batch.clean(), batch.corrupt(),
                batch.cleanPadding(), batch.corruptPadding(), Answers.of(answers), batch.wrongAnswers()));
        }
        boolean between = false;
        try (PatchableModel model = fixture.patchable("component", Kernels.reference())) {
            PruneScores scores = Fixtures.pruneScores(model.graph(),
                fixture.golden("prune_scores_eap_mask_gradient_component.json").get("prune_scores"));
            ModelMetricContext ctx = new ModelMetricContext(model, batches);
            for (PatchType patchType : PatchType.values()) {
                CircuitOutputs outs = RunCircuits.run(model, batches, counts, scores, patchType, AblationType.RESAMPLE, false);
                List<Measurement> measured = PruneMetrics.CORRECT_ANSWER_PERCENT.measure(ctx, outs);
                for (Measurement m : measured) {
                    int count = (int) m.x();
                    double expected = argmaxPercent(outs, count, batches);
                    assertEquals(expected, m.y(), 1e-9, patchType + " at " + count + " edges");
                    between |= m.y() > 0 && m.y() < 100;
                    if (patchType == PatchType.TREE_PATCH && count == model.graph().nEdges()) {
                        assertEquals(expectedFull, m.y(), 1e-9, "the full model against AutoCircuit's recorded argmax");
                    }
                }
            }
        }
        assertTrue(expectedFull > 0 && expectedFull < 100, "the check is not trivial: " + expectedFull + "%");
        assertTrue(between, "some circuit answers some but not all prompts correctly");
    }

    /** Mean over batches of the share of prompts whose answer has the highest logit (first index on ties), × 100. */
    private static double argmaxPercent(CircuitOutputs outs, int count, List<PromptPairBatch> batches) {
        double sum = 0;
        for (PromptPairBatch batch : batches) {
            float[] logits = outs.output(count, batch.key()).floats();
            int vocab = logits.length / batch.batchSize();
            int correct = 0;
            for (int i = 0; i < batch.batchSize(); i++) {
                int best = 0;
                for (int v = 1; v < vocab; v++) {
                    if (logits[i * vocab + v] > logits[i * vocab + best]) best = v;
                }
                if (best == batch.answers().prompt(i).longs()[0]) correct++;
            }
            sum += (double) correct / batch.batchSize();
        }
        return 100 * sum / batches.size();
    }
}
