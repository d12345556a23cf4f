package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.stream.Stream;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Mask-gradient scores against AutoCircuit's (prune_scores_eap_mask_gradient_*.json: EAP;
 * prune_scores_mask_gradient_ig10_*.json: 10-sample integrated gradients), on every golden fixture and graph that
 * has them, on both kernel paths, per edge within rtol 1e-3 / atol 1e-5.
 */
@Tag("golden")
class MaskGradientGoldenTest {

    static Stream<Arguments> eapCases() {
        return GoldenFixture.casesWithKernels("prune_scores_eap_mask_gradient_{graph}.json");
    }

    /**
     * Integrated gradients run 11 gradient passes per batch; on a token graph that is several seconds a case. The
     * default run checks them on every component graph and on the token graphs of the primary fixture and the other
     * families; the token graphs of the primary model's variants (TransformerLens processing, whose IG scores equal
     * the primary's to 5e-7) are in {@link #slowIgCases()}.
     */
    static Stream<Arguments> igCases() {
        return GoldenFixture.casesWithKernels("prune_scores_mask_gradient_ig10_{graph}.json").filter(a -> !slowIg(a));
    }

    static Stream<Arguments> slowIgCases() {
        return GoldenFixture.casesWithKernels("prune_scores_mask_gradient_ig10_{graph}.json").filter(a -> slowIg(a));
    }

    private static boolean slowIg(Arguments a) {
        GoldenFixture fixture = (GoldenFixture) a.get()[0];
        return fixture.isVariantOfPrimary() && fixture.graph((String) a.get()[1]).seqLen() != null;
    }

    @ParameterizedTest(name = "{0} {1} graph, {2} kernels")
    @MethodSource("eapCases")
    void eapMatchesAutoCircuit(GoldenFixture fixture, String kind, String kernels) {
        check(fixture, kind, kernels, "eap_mask_gradient", MaskGradient.Options.eap());
    }

    @ParameterizedTest(name = "{0} {1} graph, {2} kernels")
    @MethodSource("igCases")
    void integratedGradientsMatchAutoCircuit(GoldenFixture fixture, String kind, String kernels) {
        check(fixture, kind, kernels, "mask_gradient_ig10", MaskGradient.Options.integratedGradients(10));
    }

    @Tag("slow")
    @ParameterizedTest(name = "{0} {1} graph, {2} kernels")
    @MethodSource("slowIgCases")
    void integratedGradientsOnMoreTokenGraphsMatchAutoCircuit(GoldenFixture fixture, String kind, String kernels) {
        check(fixture, kind, kernels, "mask_gradient_ig10", MaskGradient.Options.integratedGradients(10));
    }

    private static void check(GoldenFixture fixture, String kind, String kernels, String algo, MaskGradient.Options options) {
        JsonNode golden = fixture.golden("prune_scores_" + algo + "_" + kind + ".json");
        try (PatchableModel model = fixture.patchable(kind, Fixtures.kernels(kernels))) {
            PruneScores expected = Fixtures.pruneScores(model.graph(), golden.get("prune_scores"));
            PruneScores actual = MaskGradient.scores(model, fixture.data().train().batches(), options);
            assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, fixture + " " + algo + " " + kind + " scores per edge");
        }
    }
}
