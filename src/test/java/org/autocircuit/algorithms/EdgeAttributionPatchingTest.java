package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenFixture;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/** The exact EAP form against AutoCircuit's golden scores, and against the mask-gradient form (AutoCircuit's test_eap). */
class EdgeAttributionPatchingTest {
    static List<PromptPairBatch> train;

    @BeforeAll
    static void load() {
        Datasets.LoadedDatasets data = Fixtures.ioi();
        train = data.train().batches();
    }

    static PatchableModel fixtureModel(String graphKind) {
        return GoldenFixture.PRIMARY.patchable(graphKind, Kernels.reference());
    }

    static Stream<Arguments> exactCases() {
        return GoldenFixture.casesWithKernels("prune_scores_eap_exact_{graph}.json");
    }

    @Tag("golden")
    @ParameterizedTest(name = "{0} {1} graph, {2} kernels")
    @MethodSource("exactCases")
    void matchesAutoCircuitGolden(GoldenFixture fixture, String graphKind, String kernels) {
        try (PatchableModel model = fixture.patchable(graphKind, Fixtures.kernels(kernels))) {
            PruneScores expected = Fixtures.pruneScores(model.graph(),
                fixture.golden("prune_scores_eap_exact_" + graphKind + ".json").get("prune_scores"));
            PruneScores actual = EdgeAttributionPatching.scores(model, fixture.data().train().batches(),
                EdgeAttributionPatching.Options.autoCircuit(), Progress.NONE);
            assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, "exact EAP, " + fixture + " " + graphKind + " graph, "
                + kernels + " kernels");
        }
    }

    static Stream<Arguments> fixtureCases() {
        return GoldenFixture.cases("prune_scores_eap_exact_{graph}.json");
    }

    /**
     * Parts of batches (3 prompts per pass, so that the last part of a batch is smaller than the others): the golden
     * scores still, and the whole-batch scores to float rounding. The parts only bound memory.
     */
    @Tag("golden")
    @ParameterizedTest(name = "{0} {1} graph")
    @MethodSource("fixtureCases")
    void partsOfBatchesGiveTheWholeBatchScores(GoldenFixture fixture, String graphKind) {
        try (PatchableModel model = fixture.patchable(graphKind, Kernels.reference())) {
            List<PromptPairBatch> batches = fixture.data().train().batches();
            assertTrue(batches.get(0).batchSize() > 3 && batches.get(0).batchSize() % 3 != 0,
                "the fixture's batches split into uneven parts of 3: " + batches.get(0).batchSize());
            PruneScores expected = Fixtures.pruneScores(model.graph(),
                fixture.golden("prune_scores_eap_exact_" + graphKind + ".json").get("prune_scores"));
            PruneScores whole = EdgeAttributionPatching.scores(model, batches,
                EdgeAttributionPatching.Options.autoCircuit(), Progress.NONE);
            PruneScores parts = EdgeAttributionPatching.scores(model, batches,
                EdgeAttributionPatching.Options.autoCircuit().withPromptsPerPass(3), Progress.NONE);
            assertClose(expected.flat(), parts.flat(), 1e-5, 1e-3, "exact EAP in parts of 3, " + fixture + " " + graphKind);
            assertClose(whole.flat(), parts.flat(), 1e-6, 1e-5, "exact EAP in parts of 3 vs whole batches, " + fixture
                + " " + graphKind);
        }
    }

    /** The answer-logit loss in parts of one prompt: each part's loss is its share of the batch mean. */
    @Test
    void answerLogitLossInSinglePromptParts() {
        try (PatchableModel model = fixtureModel("component")) {
            EdgeAttributionPatching.Options whole = new EdgeAttributionPatching.Options(false, true);
            PruneScores expected = EdgeAttributionPatching.scores(model, train, whole, Progress.NONE);
            PruneScores parts = EdgeAttributionPatching.scores(model, train, whole.withPromptsPerPass(1), Progress.NONE);
            assertClose(expected.flat(), parts.flat(), 1e-6, 1e-5, "exact EAP (answer logit), one prompt per pass");
        }
    }

    @Test
    void negativePromptsPerPassIsRefused() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> EdgeAttributionPatching.Options.defaults().withPromptsPerPass(-1));
        assertTrue(e.getMessage().contains("promptsPerPass"), e.getMessage());
    }

    @Tag("golden")
    @Test
    void perPositionModeMatchesGoldenOnComponentGraph() {
        try (PatchableModel model = fixtureModel("component")) {
            PruneScores expected = Fixtures.pruneScores(model.graph(),
                Fixtures.golden("prune_scores_eap_exact_component.json").get("prune_scores"));
            PruneScores actual = EdgeAttributionPatching.scores(PruneRun.of(model, train));
            assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, "exact EAP (default options), component graph");
        }
    }

    /** AutoCircuit's test_eap: the exact form equals mask gradient (logit, avg_diff, mask 0) to atol 1e-5. */
    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void equalsMaskGradientAtMaskZero(String graphKind) {
        try (PatchableModel model = fixtureModel(graphKind)) {
            PruneScores exact = EdgeAttributionPatching.scores(model, train, EdgeAttributionPatching.Options.defaults(),
                Progress.NONE);
            PruneScores viaMasks = MaskGradient.scores(model, train, MaskGradient.Options.eap());
            assertClose(viaMasks.flat(), exact.flat(), 1e-5, 0, "exact EAP vs mask gradient, " + graphKind + " graph");
        }
    }

    /** answerDiff=false is the gradient of −mean answer logit: mask gradient (logit, avg_val, mask 0). */
    @ParameterizedTest(name = "{0} graph")
    @ValueSource(strings = {"component", "token"})
    void answerLogitEqualsMaskGradientAvgVal(String graphKind) {
        try (PatchableModel model = fixtureModel(graphKind)) {
            PruneScores exact = EdgeAttributionPatching.scores(model, train, new EdgeAttributionPatching.Options(false, true),
                Progress.NONE);
            PruneScores viaMasks = MaskGradient.scores(model, train, new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                MaskGradient.AnswerFunction.AVG_VAL, 0.0, null, AblationType.RESAMPLE, Ablations.CleanCorrupt.CORRUPT));
            assertClose(viaMasks.flat(), exact.flat(), 1e-5, 0, "exact EAP (answer logit) vs mask gradient avg_val");
        }
    }

    @Test
    void leavesMasksAndPatchModeAlone() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = fixtureModel("component")) {
            model.setAllMasks(0.25);
            EdgeAttributionPatching.scores(PruneRun.of(model, train));
            for (String m : model.maskNames()) {
                Tensor mask = model.mask(m);
                assertClose(torch.full_like(mask, new org.bytedeco.pytorch.Scalar(0.25)), mask, 0, m + " mask after EAP");
            }
            try (PatchableModel.PatchMode mode = model.patchMode(torch.zeros(model.nSrcs(), train.get(0).clean().shape()[0],
                    train.get(0).clean().shape()[1], model.model().dModel()))) {
                assertThrows(IllegalStateException.class, () -> EdgeAttributionPatching.scores(PruneRun.of(model, train)));
            }
        }
    }
}
