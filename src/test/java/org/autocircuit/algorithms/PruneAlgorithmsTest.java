package org.autocircuit.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import org.junit.jupiter.api.Test;

/** The algorithm registry. */
class PruneAlgorithmsTest {

    @Test
    void listedEntriesAreAutoCircuitsPruneAlgosInOrder() {
        List<String> expected = List.of("Official Circuit", "Act Mag", "Random", "Edge Attribution Patching", "ACDC",
            "MSE ACDC", "Integrated Edge Gradients (Logit Diff)", "Edge Answer Log Prob Gradient At Clean",
            "Edge Answer Log Prob Diff Gradient At Clean", "Edge Answer Logit Diff Gradient At Clean",
            "Edge Answer Logit MSE Gradient At Clean", "Subnetwork Edge Probing", "Circuit Probing",
            "Subnetwork Tree Probing", "Tree Probing", "MSE Subnetwork Tree Probing", "MSE Tree Probing",
            "Opposite Tree Probing");
        assertEquals(expected, PruneAlgorithms.LISTED.stream().map(RegisteredAlgorithm::key).toList());
        assertEquals(21, PruneAlgorithms.ALL.size());
        assertEquals(21, new HashSet<>(PruneAlgorithms.keys()).size(), "keys are unique");
    }

    @Test
    void lookupByKeyOrShortNameIgnoresCase() {
        assertSame(PruneAlgorithms.LOGIT_DIFF_GRAD, PruneAlgorithms.byKey("eap"));
        assertSame(PruneAlgorithms.LOGIT_DIFF_GRAD, PruneAlgorithms.byKey("Edge Answer Logit Diff Gradient At Clean"));
        assertSame(PruneAlgorithms.EDGE_ATTR_PATCH, PruneAlgorithms.byKey("edge attribution patching"));
        assertSame(PruneAlgorithms.ACDC, PruneAlgorithms.byKey("ACDC"));
        assertSame(PruneAlgorithms.MSE_ACDC, PruneAlgorithms.byKey("acdc (mse)"));
        assertSame(PruneAlgorithms.RANDOM, PruneAlgorithms.byKey(" random "));
        assertEquals("Integrated Edge Gradients", PruneAlgorithms.INTEGRATED_EDGE_GRADS_LOGIT_DIFF.name());
        assertEquals(1000, PruneAlgorithms.INTEGRATED_EDGE_GRADS_LOGIT_DIFF.parameters().get("integrated_grad_samples"));
    }

    @Test
    void unknownKeyNamesItAndListsTheValidOnes() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> PruneAlgorithms.byKey("EAPX"));
        assertTrue(e.getMessage().contains("'EAPX'") && e.getMessage().contains("ACDC")
            && e.getMessage().contains("Subnetwork Edge Probing"), e.getMessage());
    }
}
