package org.autocircuit.patching;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.stream.Stream;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.Graph;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.model.MicroModel;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * MicroModel(n_layers=2) against AutoCircuit's own outputs (micro_model.json), on the component and the token
 * graph, on both kernel paths: clean and corrupt outputs at every position, the recorded three-edge patch, run_circuits
 * of the recorded scores under EDGE_PATCH and TREE_PATCH, and the mask-gradient scores (logit, avg_diff, mask 0),
 * each computed here and compared with the golden numbers.
 */
@Tag("golden")
class MicroModelGoldenTest {

    static Stream<Arguments> cases() {
        List<Arguments> out = new ArrayList<>();
        for (String kind : List.of("component", "token")) {
            for (String kernels : List.of("reference", "native")) out.add(Arguments.of(kind, kernels));
        }
        return out.stream();
    }

    @ParameterizedTest(name = "{0} graph, {1} kernels")
    @MethodSource("cases")
    void microModelMatchesAutoCircuit(String kind, String kernels) {
        JsonNode root = Fixtures.golden("micro_model.json");
        JsonNode golden = root.get(kind);
        PromptPairBatch batch = batch(root);
        Integer seqLen = kind.equals("token") ? (int) batch.clean().shape()[1] : null;
        OptionalInt pos = seqLen == null ? OptionalInt.empty() : OptionalInt.of(golden.get("known_mask_seq_idx").asInt());
        String where = kind + " graph, " + kernels + " kernels";
        try (PointerScope scope = new PointerScope();
             PatchableModel all = PatchableModel.of(new MicroModel(2), true, OutputSlice.ALL, seqLen, true,
                 Fixtures.kernels(kernels));
             PatchableModel last = PatchableModel.of(new MicroModel(2), true, OutputSlice.LAST_SEQ, seqLen, true,
                 Fixtures.kernels(kernels))) {
            assertEquals(golden.get("n_edges").asInt(), all.graph().nEdges(), where + ": edges");
            assertClose(floats(golden.get("clean_output")), all.forward(Inputs.clean(batch), null), 1e-5, where + ": clean output");
            assertClose(floats(golden.get("corrupt_output")), all.forward(Inputs.corrupt(batch), null), 1e-5, where + ": corrupt output");

            Tensor corruptSrcs = Ablations.srcAblations(all, Inputs.corrupt(batch), null, AblationType.RESAMPLE);
            List<Edge> known = new ArrayList<>();
            golden.get("known_mask_edges").forEach(n -> known.add(all.graph().edge(n.asText(), pos)));
            try (PatchableModel.PatchMode mode = all.patchModeWithEdges(corruptSrcs, known)) {
                assertClose(floats(golden.get("known_mask_patched_output")), all.forward(Inputs.clean(batch), null), 1e-5,
                    where + ": output with the recorded edges patched");
            }

            JsonNode rc = golden.get("run_circuits_known_scores");
            Graph g = last.graph();
            PruneScores scores = PruneScores.zeros(g);
            for (Iterator<Map.Entry<String, JsonNode>> it = rc.get("prune_scores").fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                scores = scores.with(g.edge(e.getKey(), pos), (float) e.getValue().asDouble());
            }
            List<Integer> counts = new ArrayList<>();
            rc.get("test_edge_counts").forEach(n -> counts.add(n.asInt()));
            AblationType ablation = AblationType.valueOf(rc.get("ablation_type").asText());
            for (PatchType patchType : PatchType.values()) {
                JsonNode expected = rc.get("outputs_last_seq").get(patchType.name());
                CircuitOutputs outs = RunCircuits.run(last, List.of(batch), counts, scores, patchType, ablation, false);
                assertEquals(expected.size(), outs.edgeCounts().size(), where + " " + patchType + ": circuit sizes");
                for (int count : outs.edgeCounts()) {
                    assertClose(floats(expected.get(Integer.toString(count))), outs.output(count, batch.key()).floats(), 1e-4, 0,
                        where + " " + patchType + " at " + count + " edges");
                }
            }

            PruneScores expectedGrads = Fixtures.pruneScores(g, golden.get("mask_gradient_logit_avg_diff_mask_val_0"));
            PruneScores grads = MaskGradient.scores(last, List.of(batch), MaskGradient.Options.eap());
            assertClose(expectedGrads.flat(), grads.flat(), 1e-4, 1e-5, where + ": mask-gradient scores");
        }
    }

    /** The golden's single prompt pair: float inputs [1, seq, 2], one answer and one wrong answer. */
    static PromptPairBatch batch(JsonNode root) {
        return new PromptPairBatch(1L, 0, host(root.get("clean_input")), host(root.get("corrupt_input")), null, null,
            Answers.of(List.of(HostTensor.ofLongs(new long[] {root.get("answers").get(0).get(0).asLong()}, 1))),
            Answers.of(List.of(HostTensor.ofLongs(new long[] {root.get("wrong_answers").get(0).get(0).asLong()}, 1))));
    }

    private static HostTensor host(JsonNode nested) {
        int b = nested.size(), s = nested.get(0).size(), d = nested.get(0).get(0).size();
        return HostTensor.ofFloats(floats(nested), b, s, d);
    }

    private static float[] floats(JsonNode nested) {
        List<Float> out = new ArrayList<>();
        collect(nested, out);
        float[] f = new float[out.size()];
        for (int i = 0; i < f.length; i++) f[i] = out.get(i);
        return f;
    }

    private static void collect(JsonNode n, List<Float> out) {
        if (n.isArray()) n.forEach(c -> collect(c, out));
        else out.add((float) n.asDouble());
    }
}
