package org.autocircuit.patching;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.AbstractTensor;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Ports of AutoCircuit's tests/test_prune.py and the micro-model part of test_unfactorized_edges.py. */
class MicroPatchingTest {

    /** clean [[3,3],[2,2],[1,1]], corrupt = −clean, answers [1], wrong [0] (micro_model_inputs.json). */
    static PromptPairBatch microBatch() {
        float[] clean = {3, 3, 2, 2, 1, 1};
        float[] corrupt = {-3, -3, -2, -2, -1, -1};
        return new PromptPairBatch(1L, 0, HostTensor.ofFloats(clean, 1, 3, 2), HostTensor.ofFloats(corrupt, 1, 3, 2),
            null, null, Answers.of(List.of(HostTensor.ofLongs(new long[] {1}, 1))),
            Answers.of(List.of(HostTensor.ofLongs(new long[] {0}, 1))));
    }

    static PatchableModel micro(boolean factorized, OutputSlice slice, Integer seqLen) {
        return PatchableModel.of(new MicroModel(2), factorized, slice, seqLen, true, Kernels.reference());
    }

    @ParameterizedTest(name = "seqLen={0}")
    @ValueSource(ints = {0, 3})
    void testPruning(int seqLenOrZero) {
        Integer seqLen = seqLenOrZero == 0 ? null : seqLenOrZero;
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro(true, OutputSlice.LAST_SEQ, seqLen)) {
            PromptPairBatch batch = microBatch();
            assertClose(new float[] {25, 49}, model.forward(Inputs.clean(batch), null), 0, "clean output");
            assertClose(new float[] {-25, -49}, model.forward(Inputs.corrupt(batch), null), 0, "corrupt output");
            Graph g = model.graph();
            OptionalInt pos = seqLen == null ? OptionalInt.empty() : OptionalInt.of(2);
            PruneScores ps = PruneScores.zeros(g)
                .with(g.edge("B0.1->Resid End", pos), 3)
                .with(g.edge("B0.0->B1.1", pos), 2)
                .with(g.edge("Resid Start->B0.0", pos), 1);
            CircuitOutputs outs = RunCircuits.run(model, List.of(batch), List.of(0, 1, 2, 3), ps,
                PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
            assertEquals(List.of(0, 1, 2, 3), List.copyOf(outs.edgeCounts()));
            assertClose(new float[] {-25, -49}, outs.output(0, 1L).floats(), 1e-3, 0, "count 0");
            assertClose(new float[] {-19, -41}, outs.output(1, 1L).floats(), 1e-3, 0, "count 1");
            assertClose(new float[] {-13, -25}, outs.output(2, 1L).floats(), 1e-3, 0, "count 2");
            assertClose(new float[] {-9, -13}, outs.output(3, 1L).floats(), 1e-3, 0, "count 3");
        }
    }

    @Test
    void testPruneSequence() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro(true, OutputSlice.ALL, 3)) {
            PromptPairBatch batch = microBatch();
            Graph g = model.graph();
            PruneScores ps = PruneScores.zeros(g)
                .with(g.edge("B0.1->Resid End", OptionalInt.of(2)), 3)
                .with(g.edge("B0.0->B1.1", OptionalInt.of(2)), 2)
                .with(g.edge("Resid Start->Resid End", OptionalInt.of(0)), 1);
            CircuitOutputs outs = RunCircuits.run(model, List.of(batch), List.of(0, 1, 2, 3), ps,
                PatchType.EDGE_PATCH, AblationType.RESAMPLE, false);
            assertClose(new float[] {-75, -147, -50, -98, -25, -49}, outs.output(0, 1L).floats(), 1e-3, 0, "count 0");
            assertClose(new float[] {-19, -41}, outs.output(1, 1L).row(0).row(2).floats(), 1e-3, 0, "count 1, pos 2");
            assertClose(new float[] {-13, -25}, outs.output(2, 1L).row(0).row(2).floats(), 1e-3, 0, "count 2, pos 2");
            assertClose(new float[] {-69, -141}, outs.output(3, 1L).row(0).row(0).floats(), 1e-3, 0, "count 3, pos 0");
        }
    }

    /** The fixture's patching example: three edges with corrupt values on the clean input give [9, 13]. */
    @Test
    void patchModeWithNamedEdges() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro(true, OutputSlice.LAST_SEQ, null)) {
            PromptPairBatch batch = microBatch();
            Tensor corruptSrcs = Ablations.srcAblations(model, Inputs.corrupt(batch), null, AblationType.RESAMPLE);
            try (var mode = model.patchModeWithEdges(corruptSrcs, List.of("B0.1->Resid End", "B0.0->B1.1", "Resid Start->B0.0"))) {
                assertClose(new float[] {9, 13}, model.forward(Inputs.clean(batch), null), 1e-5, "patched output");
            }
            assertTrue(!model.inPatchMode(), "patch mode ends with its scope");
            assertClose(new float[] {25, 49}, model.forward(Inputs.clean(batch), null), 0, "unpatched after scope");
        }
    }

    @Test
    void patchModesNestAndRestore() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro(true, OutputSlice.LAST_SEQ, null)) {
            PromptPairBatch batch = microBatch();
            Tensor corrupt = Ablations.srcAblations(model, Inputs.corrupt(batch), null, AblationType.RESAMPLE);
            Tensor zero = Ablations.srcAblations(model, Inputs.corrupt(batch), null, AblationType.ZERO);
            model.setAllMasks(1);
            try (var outer = model.patchMode(corrupt)) {
                Tensor fullyCorrupt = model.forward(Inputs.clean(batch), null);
                assertClose(new float[] {-25, -49}, fullyCorrupt, 1e-5, "every edge patched with corrupt");
                try (var inner = model.patchMode(zero)) {
                    assertClose(new float[] {0, 0}, model.forward(Inputs.clean(batch), null), 1e-5, "every edge zeroed");
                }
                assertClose(new float[] {-25, -49}, model.forward(Inputs.clean(batch), null), 1e-5, "outer mode restored");
            }
            assertTrue(!model.inPatchMode());
        }
    }

    @Test
    void useAfterCloseIsAnIllegalState() {
        PatchableModel model = micro(true, OutputSlice.LAST_SEQ, null);
        model.close();
        model.close();   // a no-op
        assertThrows(IllegalStateException.class, () -> model.setAllMasks(0));
    }

    @Test
    void patchValuesMustMatchTheInputBatch() {
        try (PointerScope scope = new PointerScope(); PatchableModel model = micro(true, OutputSlice.LAST_SEQ, null)) {
            Tensor patch = org.bytedeco.pytorch.global.torch.zeros(5, 2, 3, 2);   // batch 2
            try (var mode = model.patchMode(patch)) {
                IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> model.forward(Inputs.clean(microBatch()), null));
                assertTrue(e.getMessage().contains("batch size 1"), e.getMessage());
            }
        }
    }

    /**
     * test_micro_model_unfactorized_edges: no patching equals the raw model; patching every edge from B0.1
     * gives the same output in the factorized (39 edges) and unfactorized (18 edges) graphs.
     */
    @Test
    void factorizedAndUnfactorizedAgree() {
        try (PointerScope scope = new PointerScope();
             PatchableModel fact = micro(true, OutputSlice.ALL, 3);
             PatchableModel unfact = micro(false, OutputSlice.ALL, 3);
             MicroModel raw = new MicroModel(2)) {
            assertEquals(39, fact.graph().nEdges());
            assertEquals(18, unfact.graph().nEdges());
            org.bytedeco.pytorch.global.torch.manual_seed(0);
            Tensor input = org.bytedeco.pytorch.global.torch.rand(4, 3, 2).mul(new org.bytedeco.pytorch.Scalar(10));
            Tensor patchIn = org.bytedeco.pytorch.global.torch.rand(4, 3, 2).mul(new org.bytedeco.pytorch.Scalar(10));
            Tensor expected = raw.forward(input, null, org.autocircuit.model.HookPoints.NONE, OutputSlice.ALL);
            assertClose(expected, fact.forward(input, null), 0, "factorized, no patch mode");
            assertClose(expected, unfact.forward(input, null), 0, "unfactorized, no patch mode");
            Tensor outFact = patchFromB01(fact, input, patchIn);
            Tensor outUnfact = patchFromB01(unfact, input, patchIn);
            assertTrue(org.autocircuit.testing.TensorAsserts.maxAbsDiff(expected, outFact) > 1e-3, "patching changes the output");
            assertClose(outFact, outUnfact, 1e-4, "factorized == unfactorized");
        }
    }

    private static Tensor patchFromB01(PatchableModel model, Tensor input, Tensor patchIn) {
        Graph g = model.graph();
        PruneScores masks = PruneScores.zeros(g);
        for (Edge e : g.edges()) if (e.src().name().equals("B0.1")) masks = masks.with(e, 1);
        model.setMasks(masks);
        Tensor patch = Ablations.srcAblations(model, patchIn, null, AblationType.RESAMPLE);
        try (var mode = model.patchMode(patch)) {
            return model.forward(input, null);
        }
    }
}
