package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;

import com.fasterxml.jackson.databind.JsonNode;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** Mask-gradient scores against AutoCircuit's (prune_scores_eap_mask_gradient_*.json, prune_scores_mask_gradient_ig10_*.json). */
@Tag("golden")
class MaskGradientGoldenTest {
    static Datasets.LoadedDatasets data;

    @BeforeAll
    static void load() {
        data = Fixtures.ioi();
    }

    @ParameterizedTest(name = "{0} on the {1} graph")
    @CsvSource({"eap_mask_gradient, component", "eap_mask_gradient, token",
                "mask_gradient_ig10, component", "mask_gradient_ig10, token"})
    void scoresMatchAutoCircuit(String algo, String graphKind) {
        Integer seqLen = graphKind.equals("token") ? 15 : null;
        JsonNode golden = Fixtures.golden("prune_scores_" + algo + "_" + graphKind + ".json");
        try (PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, seqLen, true, Kernels.best())) {
            PruneScores expected = Fixtures.pruneScores(model.graph(), golden.get("prune_scores"));
            MaskGradient.Options options = algo.startsWith("eap")
                ? MaskGradient.Options.eap() : MaskGradient.Options.integratedGradients(10);
            PruneScores actual = MaskGradient.scores(model, data.train().batches(), options);
            assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, algo + " " + graphKind + " scores per edge");
        }
    }
}
