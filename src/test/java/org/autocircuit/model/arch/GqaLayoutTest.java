package org.autocircuit.model.arch;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The two graph layouts of a grouped-query-attention model (the Llama fixture: 4 query heads, 2 key/value heads).
 * {@code ungrouped} has one K and one V destination per query head, {@code grouped} one per key/value head. At zero
 * masks the grouped gradients are the sums of the ungrouped ones over each group's query heads, and a grouped circuit
 * gives the same outputs as the ungrouped circuit whose query heads copy their group's mask rows.
 */
class GqaLayoutTest {
    static List<PromptPairBatch> train;

    @BeforeAll
    static void load() {
        train = Fixtures.ioi().train().batches();
    }

    private static PatchableModel model(GqaLayout layout, String kernels) {
        return PatchableModel.of(FamilyFixtures.model("llama"), true, OutputSlice.LAST_SEQ, null, true, layout,
            Fixtures.kernels(kernels));
    }

    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void groupedScoresAreUngroupedScoresSummedOverEachGroup(String kernels) {
        try (PatchableModel ungrouped = model(GqaLayout.UNGROUPED, kernels);
             PatchableModel grouped = model(GqaLayout.GROUPED, kernels)) {
            // 110 edges ungrouped; grouped, each block has 2 fewer K and 2 fewer V rows of 1 (block 0) or 6 (block 1) inputs
            assertEquals(110, ungrouped.graph().nEdges());
            assertEquals(110 - 4 * 1 - 4 * 6, grouped.graph().nEdges());
            PruneScores u = MaskGradient.scores(ungrouped, train, MaskGradient.Options.eap());
            PruneScores g = MaskGradient.scores(grouped, train, MaskGradient.Options.eap());
            for (String module : g.moduleNames()) {
                float[] gs = g.module(module), us = u.module(module);
                if (!module.endsWith("hook_k_input") && !module.endsWith("hook_v_input")) {
                    assertClose(us, gs, 1e-6, 1e-4, module + ": same destinations in both layouts");
                    continue;
                }
                int nIn = (int) g.shape(module)[1];
                assertEquals(2, g.shape(module)[0], module + " grouped rows");
                float[] summed = new float[gs.length];
                for (int h = 0; h < 4; h++) {
                    for (int s = 0; s < nIn; s++) summed[(h / 2) * nIn + s] += us[h * nIn + s];
                }
                assertClose(summed, gs, 1e-6, 1e-4, module + ": grouped = Σ ungrouped over the group's query heads");
            }
        }
    }

    /** Random 0/1 circuits, patched passes with and without gradients (the compact and the plain per-head inputs). */
    @ParameterizedTest(name = "{0} kernels")
    @ValueSource(strings = {"reference", "native"})
    void groupedCircuitEqualsUngroupedCircuitWithCopiedRows(String kernels) {
        PromptPairBatch batch = train.get(0);
        Random random = new Random(3);
        try (PatchableModel ungrouped = model(GqaLayout.UNGROUPED, kernels);
             PatchableModel grouped = model(GqaLayout.GROUPED, kernels);
             PointerScope scope = new PointerScope()) {
            for (int trial = 0; trial < 4; trial++) {
                Map<String, float[]> g = new HashMap<>(), u = new HashMap<>();
                for (String module : grouped.graph().destModules().stream().map(d -> d.moduleName()).toList()) {
                    long[] shape = grouped.currentMasks().shape(module);
                    int n = (int) java.util.Arrays.stream(shape).reduce(1, (a, b) -> a * b);
                    float[] m = new float[n];
                    // trial 0: one ablated head row per module (compact inputs); later trials: random masks
                    for (int i = 0; i < n; i++) m[i] = trial == 0 ? (i < shape[shape.length - 1] ? 1 : 0)
                        : (random.nextFloat() < 0.4f ? 1 : 0);
                    g.put(module, m);
                    if (module.endsWith("hook_k_input") || module.endsWith("hook_v_input")) {
                        int nIn = (int) shape[1];
                        float[] expanded = new float[4 * nIn];
                        for (int h = 0; h < 4; h++) System.arraycopy(m, (h / 2) * nIn, expanded, h * nIn, nIn);
                        u.put(module, expanded);
                    } else {
                        u.put(module, m);
                    }
                }
                grouped.setMasks(PruneScores.of(grouped.graph(), g));
                ungrouped.setMasks(PruneScores.of(ungrouped.graph(), u));
                for (boolean gradients : new boolean[] {false, true}) {
                    try (PointerScope pass = new PointerScope()) {
                        NoGradGuard noGrad = gradients ? null : new NoGradGuard();
                        Tensor patchG = Ablations.srcAblations(grouped, Inputs.corrupt(batch), null, AblationType.RESAMPLE);
                        Tensor patchU = Ablations.srcAblations(ungrouped, Inputs.corrupt(batch), null, AblationType.RESAMPLE);
                        Tensor outG, outU;
                        try (var mode = grouped.patchMode(patchG)) {
                            outG = grouped.forward(Inputs.clean(batch), null);
                        }
                        try (var mode = ungrouped.patchMode(patchU)) {
                            outU = ungrouped.forward(Inputs.clean(batch), null);
                        }
                        assertClose(outU, outG, 1e-4, "trial " + trial + (gradients ? " with" : " without") + " gradients");
                        if (noGrad != null) noGrad.close();
                    }
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void groupedLayoutNeedsSeparateQkv() throws Exception {
        ModelConfig cfg = ModelConfig.fromHuggingFace(FamilyFixtures.modelDir("llama").resolve("config.json"));
        assertThrows(IllegalArgumentException.class, () -> org.autocircuit.graph.Graph.transformerFactorized(
            cfg.shape().withKvDestHeads(cfg.nKvHeads()), false, null));
    }
}
