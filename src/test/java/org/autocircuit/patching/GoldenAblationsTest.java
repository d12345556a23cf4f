package org.autocircuit.patching;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.List;
import java.util.Set;
import java.util.stream.Stream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.metrics.ModelMetricContext;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.testing.GoldenCircuits;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * run_circuits under every ablation type and both patch types, against {@code circuit_metrics_all_ablations_*.json}
 * (component graph, token graph, and the left-padded prompts on the component graph). Those files come from
 * src/test/scripts/golden_ablations.py, an independent plain-PyTorch reference whose own run first reproduces every
 * number of AutoCircuit's golden files (the three ablations AutoCircuit ran) and whose header records that check.
 * Checks the real edge counts, all eight metrics (rtol 1e-3) and every prompt's answer and wrong-answer logits and
 * log-sum-exp (1e-4), on both kernel paths. Shapes, counts and the ablation list come from the golden files.
 */
@Tag("golden")
class GoldenAblationsTest {

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String kernels : List.of("reference", "native")) {
            for (String fixture : List.of("component", "token", "padded")) out.add(Arguments.of(kernels, fixture));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{1} prompts and graph, {0} kernels")
    @MethodSource("cases")
    void everyAblationTypeUnderBothPatchTypesMatches(String kernels, String fixture) {
        boolean padded = fixture.equals("padded");
        String graphKind = padded ? "component" : fixture;
        String dir = padded ? "padded/" : "";
        JsonNode golden = Fixtures.golden(dir + "circuit_metrics_all_ablations_" + graphKind + ".json");
        JsonNode seqLenNode = golden.get("header").get("graph").get("seq_len");
        Integer seqLen = seqLenNode.isNull() ? null : seqLenNode.asInt();
        List<PromptPairBatch> test = (padded ? Fixtures.ioiPadded() : Fixtures.ioi()).test().batches();
        List<Integer> counts = GoldenCircuits.requestedCounts(golden);
        Set<AblationType> seen = EnumSet.noneOf(AblationType.class);
        try (PatchableModel model = PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, seqLen, true,
                Fixtures.kernels(kernels))) {
            PruneScores scores = Fixtures.pruneScores(model.graph(),
                Fixtures.golden(dir + "prune_scores_eap_mask_gradient_" + graphKind + ".json").get("prune_scores"));
            ModelMetricContext ctx = new ModelMetricContext(model, test);
            golden.get("measurements").fields().forEachRemaining(byPatch -> {
                PatchType patchType = PatchType.valueOf(byPatch.getKey());
                byPatch.getValue().fields().forEachRemaining(byAblation -> {
                    AblationType ablation = AblationType.valueOf(byAblation.getKey());
                    seen.add(ablation);
                    String where = fixture + " " + patchType + " " + ablation + " (" + kernels + ")";
                    CircuitOutputs outs = RunCircuits.run(model, test, counts, scores, patchType, ablation, false);
                    GoldenCircuits.checkEveryMetric(byAblation.getValue(), outs, ctx, where);
                    GoldenCircuits.checkPerPrompt(golden.get("run_circuits_detail").get(patchType.name()).get(ablation.name()),
                        outs, test, where);
                });
            });
        }
        // the file must cover every ablation type the library has
        assertEquals(EnumSet.allOf(AblationType.class), seen, fixture + ": ablation types in the golden file");
    }
}
