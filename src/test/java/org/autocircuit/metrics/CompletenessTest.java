package org.autocircuit.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.autocircuit.algorithms.RandomScores;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.CircuitOutputs;
import org.autocircuit.patching.PatchType;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.patching.RunCircuits;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;

/** Port of tests/metrics/completeness_metrics/test_same_under_knockouts.py on the fixture model (no GPT-2 weights here). */
class CompletenessTest {

    static PatchableModel fixtureModel() {
        return PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference());
    }

    /** normal_kl is the Clean KL Div metric of the same circuit under TREE_PATCH with resample ablation. */
    @Test
    void normalKlEqualsTheCleanKlMetric() {
        List<PromptPairBatch> test = Fixtures.ioi().test().batches();
        try (PatchableModel model = fixtureModel()) {
            PruneScores random = RandomScores.scores(model.graph(), 3L);
            int size = 41;
            CircuitOutputs outs = RunCircuits.run(model, test, List.of(size), random, PatchType.TREE_PATCH,
                AblationType.RESAMPLE, false);
            List<Measurement> kl = KlDivergence.measure(new ModelMetricContext(model, test), outs, true);
            assertEquals(1, kl.size());
            assertEquals(size, kl.get(0).x(), "random floats do not tie");

            Completeness.KnockoutResult r = Completeness.sameUnderKnockout(model, test, random,
                PruneScores.zeros(model.graph()), size);
            assertEquals(size, r.circuitSize());
            assertEquals(size, r.nKnockouts(), "all-zero knockout scores knock out the whole circuit");
            assertTrue(kl.get(0).y() > 1e-4, "a non-trivial KL: " + kl.get(0).y());
            assertEquals(kl.get(0).y(), r.normalKl(), 1e-6 * kl.get(0).y() + 1e-7);
            assertTrue(r.knockoutKl() > 0, "knocking out the whole circuit leaves the corrupt run: " + r);
        }
    }

    /** With no knockouts the knockout runs are the circuit and the model themselves. */
    @Test
    void noKnockoutsGiveTheNormalKl() {
        List<PromptPairBatch> test = Fixtures.ioi().test().batches();
        try (PatchableModel model = fixtureModel()) {
            PruneScores random = RandomScores.scores(model.graph(), 5L);
            Completeness.KnockoutResult r = Completeness.sameUnderKnockout(model, test, random,
                PruneScores.filled(model.graph(), -1f), 20);
            assertEquals(0, r.nKnockouts());
            assertEquals(r.normalKl(), r.knockoutKl(), 1e-7);
            assertTrue(r.normalKl() > 0);
        }
    }
}
