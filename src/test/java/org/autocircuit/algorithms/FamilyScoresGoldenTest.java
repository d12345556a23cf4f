package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.core.json.JsonReadFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.Progress;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The algorithms on the Llama (GQA, ungrouped graph) and NeoX (parallel blocks) fixtures against AutoCircuit's own
 * scores (families/*&#47;golden): mask-gradient EAP and 10-sample integrated gradients on the component and token
 * graphs, exact EAP on both, random scores in AutoCircuit's draw order, and ACDC on the component graph at every
 * recorded τ; on both kernel paths, with the GPT-2 fixture's tolerances (scores rtol 1e-3 / atol 1e-5).
 */
@Tag("golden")
class FamilyScoresGoldenTest {
    static Datasets.LoadedDatasets data;

    @BeforeAll
    static void load() {
        data = Fixtures.ioi();
    }

    static Stream<Arguments> familiesGraphsKernels() {
        List<Arguments> out = new ArrayList<>();
        for (String family : FamilyFixtures.FAMILIES) {
            for (String graph : new String[] {"component", "token"}) {
                for (String kernels : new String[] {"reference", "native"}) out.add(Arguments.of(family, graph, kernels));
            }
        }
        return out.stream();
    }

    private static PatchableModel model(String family, String graphKind, String kernels) {
        return PatchableModel.of(FamilyFixtures.model(family), true, OutputSlice.LAST_SEQ,
            graphKind.equals("token") ? 15 : null, true, Fixtures.kernels(kernels));
    }

    @ParameterizedTest(name = "{0}, {1} graph, {2} kernels")
    @MethodSource("familiesGraphsKernels")
    void eapIgAndExactEapMatchAutoCircuit(String family, String graphKind, String kernels) {
        try (PatchableModel model = model(family, graphKind, kernels)) {
            String at = family + " " + graphKind + " " + kernels;
            for (String algo : new String[] {"eap_mask_gradient", "mask_gradient_ig10"}) {
                PruneScores expected = Fixtures.pruneScores(model.graph(),
                    FamilyFixtures.golden(family, "prune_scores_" + algo + "_" + graphKind + ".json").get("prune_scores"));
                MaskGradient.Options options = algo.startsWith("eap")
                    ? MaskGradient.Options.eap() : MaskGradient.Options.integratedGradients(10);
                PruneScores actual = MaskGradient.scores(model, data.train().batches(), options);
                assertClose(expected.flat(), actual.flat(), 1e-5, 1e-3, at + " " + algo + " scores per edge");
            }
            PruneScores expected = Fixtures.pruneScores(model.graph(),
                FamilyFixtures.golden(family, "prune_scores_eap_exact_" + graphKind + ".json").get("prune_scores"));
            PruneScores exact = EdgeAttributionPatching.scores(model, data.train().batches(),
                EdgeAttributionPatching.Options.autoCircuit(), Progress.NONE);
            assertClose(expected.flat(), exact.flat(), 1e-5, 1e-3, at + " exact EAP scores per edge");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("families")
    void randomReproducesAutoCircuitGivenItsDrawOrder(String family) {
        try (PatchableModel model = model(family, "component", "reference")) {
            JsonNode golden = FamilyFixtures.golden(family, "prune_scores_random_component.json");
            List<String> order = new ArrayList<>();
            golden.get("rng_draw_order_this_run").forEach(n -> order.add(n.asText()));
            PruneScores expected = Fixtures.pruneScores(model.graph(), golden.get("prune_scores"));
            assertArrayEquals(expected.flat(), RandomScores.scores(model.graph(), 0L, order).flat(),
                family + " random scores with seed 0 in AutoCircuit's draw order");
        }
    }

    static Stream<String> families() {
        return Stream.of(FamilyFixtures.FAMILIES);
    }

    /** Every recorded ACDC run on both kernel paths, but the multi-τ runs on the reference path ({@link #slowAcdcRuns}). */
    static Stream<Arguments> acdcRuns() {
        return acdcRuns(false);
    }

    /** The multi-τ ACDC runs on the reference path: tens of seconds each, no code the default runs leave out. */
    static Stream<Arguments> slowAcdcRuns() {
        return acdcRuns(true);
    }

    private static Stream<Arguments> acdcRuns(boolean slow) {
        List<Arguments> out = new ArrayList<>();
        for (String family : FamilyFixtures.FAMILIES) {
            JsonNode runs = acdcGolden(family).get("runs");
            for (int i = 0; i < runs.size(); i++) {
                for (String kernels : new String[] {"reference", "native"}) {
                    boolean isSlow = kernels.equals("reference") && runs.get(i).get("taus").size() > 1;
                    if (isSlow == slow) out.add(Arguments.of(family, i, runs.get(i).get("taus").toString(), kernels));
                }
            }
        }
        return out.stream();
    }

    @org.junit.jupiter.api.Tag("slow")
    @ParameterizedTest(name = "{0}, run {1}, taus {2}, {3} kernels")
    @MethodSource("slowAcdcRuns")
    void slowAcdcRunsMatchAutoCircuit(String family, int runIndex, String tausText, String kernels) {
        acdcMatchesAutoCircuit(family, runIndex, tausText, kernels);
    }

    /**
     * ACDC following AutoCircuit's recorded visit order keeps exactly the recorded edges with the recorded scores. As
     * on the GPT-2 fixture, a multi-τ run may differ only between 1e-6 and 1e-5, where KL changes sit at float32
     * noise (AcdcGoldenTest explains it).
     */
    @ParameterizedTest(name = "{0}, run {1}, taus {2}, {3} kernels")
    @MethodSource("acdcRuns")
    void acdcMatchesAutoCircuit(String family, int runIndex, String tausText, String kernels) {
        JsonNode golden = acdcGolden(family);
        JsonNode goldenRun = golden.get("runs").get(runIndex);
        try (PatchableModel model = model(family, "component", kernels)) {
            Acdc.Options options = AcdcGoldenTest.options(goldenRun.get("kwargs"))
                .withVisitOrder(AcdcGoldenTest.visitOrder(golden));
            PruneScores scores = Acdc.scores(PruneRun.of(model, data.train().batches()), options);
            List<String> expectedKept = new ArrayList<>();
            for (JsonNode e : goldenRun.get("kept_edges")) {
                expectedKept.add(Acdc.edgeKey(e.get(1).asText(),
                    e.get(0).isNull() ? OptionalInt.empty() : OptionalInt.of(e.get(0).asInt())));
            }
            expectedKept.sort(null);
            String at = family + " taus " + tausText + " " + kernels;
            assertEquals(expectedKept, Acdc.keptEdges(scores), at + " kept edges");
            float[] expected = Fixtures.pruneScores(model.graph(), goldenRun.get("prune_scores")).flat();
            float[] actual = scores.flat();
            if (goldenRun.get("taus").size() > 1) {
                int noise = 0;
                for (int i = 0; i < expected.length; i++) {
                    if (expected[i] != actual[i]) noise++;
                    expected[i] = Math.max(expected[i], 1e-5f);
                    actual[i] = Math.max(actual[i], 1e-5f);
                }
                org.junit.jupiter.api.Assertions.assertTrue(noise <= expected.length / 20,
                    at + ": " + noise + " edges differ at the noise floor");
            }
            assertClose(expected, actual, 0, 1e-6, at + " scores");
        }
    }

    static JsonNode acdcGolden(String family) {
        try (var in = FamilyScoresGoldenTest.class.getResourceAsStream("/fixtures/families/" + family
                + "/golden/acdc_component.json")) {
            return new ObjectMapper().enable(JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS.mappedFeature()).readTree(in);
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
