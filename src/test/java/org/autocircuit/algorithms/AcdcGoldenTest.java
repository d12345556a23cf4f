package org.autocircuit.algorithms;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
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
 * ACDC against AutoCircuit (acdc_{component,token}.json of every golden fixture, on both kernel paths): following
 * the recorded visit order, every τ run must keep exactly the recorded edges and give the recorded scores.
 */
@Tag("golden")
class AcdcGoldenTest {

    /**
     * The runs of the default test run: on the native path every run of every fixture but the TransformerLens-processed
     * fixture's multi-τ one; on the reference path every single-τ run on a component graph. The rest (multi-τ runs on
     * the reference path, 1,650-edge token-graph runs on it, the processed fixture's multi-τ run) is in
     * {@link #slowRuns()}: each is tens of seconds and exercises no code the default runs leave out.
     */
    static Stream<Arguments> runs() {
        return runs(false);
    }

    static Stream<Arguments> slowRuns() {
        return runs(true);
    }

    private static Stream<Arguments> runs(boolean slow) {
        List<Arguments> out = new ArrayList<>();
        GoldenFixture.casesWithKernels("acdc_{graph}.json").forEach(a -> {
            GoldenFixture fixture = (GoldenFixture) a.get()[0];
            String kind = (String) a.get()[1];
            String kernels = (String) a.get()[2];
            JsonNode runs = fixture.golden("acdc_" + kind + ".json").get("runs");
            for (int i = 0; i < runs.size(); i++) {
                boolean multiTau = runs.get(i).get("taus").size() > 1;
                boolean tokenGraph = fixture.graph(kind).seqLen() != null;
                boolean isSlow = kernels.equals("reference") ? multiTau || tokenGraph
                    : multiTau && fixture == GoldenFixture.TL_DEFAULT;
                if (isSlow == slow) out.add(Arguments.of(fixture, kind, i, runs.get(i).get("taus").toString(), kernels));
            }
        });
        return out.stream();
    }

    @ParameterizedTest(name = "{0} {1} graph, run {2}, taus {3}, {4} kernels")
    @MethodSource("runs")
    void keptEdgesAndScoresMatchAutoCircuit(GoldenFixture fixture, String kind, int runIndex, String tausText,
                                            String kernels) {
        check(fixture, kind, runIndex, tausText, kernels);
    }

    @Tag("slow")
    @ParameterizedTest(name = "{0} {1} graph, run {2}, taus {3}, {4} kernels")
    @MethodSource("slowRuns")
    void slowRunsMatchAutoCircuit(GoldenFixture fixture, String kind, int runIndex, String tausText, String kernels) {
        check(fixture, kind, runIndex, tausText, kernels);
    }

    private static void check(GoldenFixture fixture, String kind, int runIndex, String tausText, String kernels) {
        JsonNode golden = fixture.golden("acdc_" + kind + ".json");
        JsonNode goldenRun = golden.get("runs").get(runIndex);
        try (PatchableModel model = fixture.patchable(kind, Fixtures.kernels(kernels))) {
            Acdc.Options options = options(goldenRun.get("kwargs")).withVisitOrder(visitOrder(golden));
            long start = System.nanoTime();
            PruneScores scores = Acdc.scores(PruneRun.of(model, fixture.data().train().batches()), options);
            System.out.printf("ACDC %s %s taus %s, %s kernels: %.2f s (AutoCircuit %.2f s)%n", fixture, kind, tausText, kernels,
                (System.nanoTime() - start) / 1e9, goldenRun.get("seconds").asDouble());

            List<String> expectedKept = new ArrayList<>();
            for (JsonNode e : goldenRun.get("kept_edges")) {
                expectedKept.add(Acdc.edgeKey(e.get(1).asText(), e.get(0).isNull() ? OptionalInt.empty() : OptionalInt.of(e.get(0).asInt())));
            }
            expectedKept.sort(null);
            assertEquals(expectedKept, Acdc.keptEdges(scores), kind + " kept edges for taus " + tausText);
            float[] expected = Fixtures.pruneScores(model.graph(), goldenRun.get("prune_scores")).flat();
            float[] actual = scores.flat();
            if (goldenRun.get("taus").size() > 1) {
                // At τ = 1e-6 the decisions sit on float32 noise: the KL values themselves are ~1e-6 (Σ over 8 × 50,257
                // terms of p·(log p − log q), with log p ≈ −11 carrying ~1e-6 rounding), so which edges fall at 1e-6
                // rather than 1e-5 depends on the last bits of the logits (e.g. A0.1->A1.3.K: ΔKL = 1.063e-6 here,
                // AutoCircuit removed it). Those are counted, not failed (at most 1 in 20).
                // On the 1,650-edge token graph the 1e-5 pass has a few close calls of the same kind: an edge whose ΔKL
                // lies within float32 rounding of 1e-5 (or whose earlier close calls in the same pass changed the state
                // it is tried from) is removed one τ step later or earlier than AutoCircuit removed it. Which edges do
                // depends on the BLAS thread count and the machine (two full runs on this project's machine gave edge
                // 1184 and edge 1244). Such a one-step difference between finite τs is allowed for at most 1 edge in
                // 200; the circuit (+∞), every other score, and the single-τ runs (exact, above) must match exactly.
                int noise = 0;
                int closeCalls = 0;
                List<Float> taus = new ArrayList<>();
                for (JsonNode t : goldenRun.get("taus")) taus.add((float) t.asDouble());
                for (int i = 0; i < expected.length; i++) {
                    if (expected[i] != actual[i]) noise++;
                    expected[i] = Math.max(expected[i], 1e-5f);
                    actual[i] = Math.max(actual[i], 1e-5f);
                    int e = taus.indexOf(expected[i]);
                    int a = taus.indexOf(actual[i]);
                    if (e >= 0 && a >= 0 && Math.abs(e - a) == 1) {
                        closeCalls++;
                        System.out.printf("ACDC %s %s: edge %d removed at τ %s, AutoCircuit at %s (close call)%n", fixture,
                            kind, i, actual[i], expected[i]);
                        actual[i] = expected[i];
                    }
                }
                System.out.printf("ACDC %s %s, %s kernels: %d of %d edges differ only between 1e-6 and 1e-5, %d one τ step"
                    + " apart above it%n", fixture, kind, kernels, noise - closeCalls, expected.length, closeCalls);
                assertTrue(noise <= expected.length / 20, noise + " edges differ at the noise floor");
                assertTrue(closeCalls <= expected.length / 200, closeCalls + " edges removed one τ step away from"
                    + " AutoCircuit's, more than 1 in 200");
            }
            assertClose(expected, actual, 0, 1e-6, kind + " scores for taus " + tausText);
        }
    }

    static Acdc.Options options(JsonNode kwargs) {
        List<Double> bases = new ArrayList<>();
        kwargs.get("tao_bases").forEach(b -> bases.add(b.asDouble()));
        List<Integer> exps = new ArrayList<>();
        kwargs.get("tao_exps").forEach(e -> exps.add(e.asInt()));
        return Acdc.Options.ofBasesExps(bases, exps, Acdc.Faithfulness.parse(kwargs.get("faithfulness_target").asText()));
    }

    static List<String> visitOrder(JsonNode golden) {
        List<String> order = new ArrayList<>();
        for (JsonNode e : golden.get("edge_visit_order")) {
            JsonNode seq = e.get("seq_idx");
            order.add(Acdc.edgeKey(e.get("name").asText(), seq.isNull() ? OptionalInt.empty() : OptionalInt.of(seq.asInt())));
        }
        return order;
    }
}
