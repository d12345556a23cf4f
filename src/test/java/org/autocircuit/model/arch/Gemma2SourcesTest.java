package org.autocircuit.model.arch;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Tokenizers;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;

/**
 * Gemma-2's norms after attention and MLP would make the residual stream non-additive in the heads' outputs; the
 * model applies the post-attention norm per head with the scale of the summed heads, so the graph's sources (the
 * heads' outputs after the post-norm, the MLPs' after theirs, the scaled embedding) must sum to the residual stream
 * exactly (to float rounding) on the unpatched run. Checked on the Gemma-2 fixture with the IOI prompts, both
 * through the hook points and through the patchable model's source buffer.
 */
class Gemma2SourcesTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static Tensor promptTokens() throws Exception {
        JsonNode ref = JSON.readTree(Fixtures.resource("families/gemma2/reference_logits.json").toFile());
        JsonNode prompts = ref.get("prompts");
        int n = 8, seq = prompts.get(0).get("ids").size();
        long[] flat = new long[n * seq];
        for (int i = 0; i < n; i++) {
            for (int t = 0; t < seq; t++) flat[i * seq + t] = prompts.get(i).get("ids").get(t).asLong();
        }
        return HostTensor.ofLongs(flat, n, seq).toTensor();
    }

    @Test
    void sourcesSumToTheResidualStreamOnTheUnpatchedRun() throws Exception {
        try (HookedTransformer model = HookedTransformer.fromPretrained(Fixtures.resource("families/gemma2/model"));
             PointerScope scope = new PointerScope()) {
            assertTrue(model.config().extras().postNorms(), "the fixture has post-norms");
            Tensor tokens = promptTokens();
            List<Tensor> sources = new ArrayList<>();
            List<String> scales = new ArrayList<>();
            HookPoints record = new HookPoints() {
                @Override
                public Tensor apply(String name, Tensor value) {
                    if (name.equals("blocks.0.hook_resid_pre") || name.endsWith(".hook_mlp_out")) sources.add(value);
                    if (name.endsWith(".attn.hook_result")) sources.add(value.sum(2));   // every head of the block
                    if (name.endsWith("ln1_post.hook_scale")) scales.add(name);
                    return value;
                }
            };
            Tensor resid = model.forwardResidual(tokens, null, null, record, OutputSlice.ALL, null);   // [8, 15, 64]
            assertEquals(1 + 2 * model.nLayers(), sources.size(), "embedding, attention and MLP of every block");
            assertEquals(model.nLayers(), scales.size(), "the post-norm scale is a hook point of every block");
            Tensor sum = sources.get(0);
            for (int i = 1; i < sources.size(); i++) sum = sum.add(sources.get(i));
            float max = HostTensor.of(resid.abs().max()).floats()[0];
            assertClose(resid, sum, 1e-6 * max * 10, "sum of the sources vs the residual stream");

            // the scale is the summed heads' RMS: replacing it changes the output (it is really used)
            HookPoints doubled = new HookPoints() {
                @Override
                public Tensor apply(String name, Tensor value) {
                    return name.endsWith("ln1_post.hook_scale") ? value.mul(new Scalar(2.0)) : value;
                }
            };
            Tensor changed = model.forwardResidual(tokens, null, null, doubled, OutputSlice.ALL, null);
            assertFalse(torch.allclose(changed, resid, 1e-3, 1e-3, false), "the post-norm scale hook feeds the pass");
            // the same through the graph: every source the patchable model records, summed, at the output position
            // (the patchable model owns and closes the model)
            try (PatchableModel patchable = PatchableModel.of(model, true, OutputSlice.LAST_SEQ, null, true,
                    Kernels.reference())) {
                Tensor buffer = patchable.srcOutputs(tokens, null, null, null);          // [nSrc, 8, 15, 64]
                assertEquals(patchable.graph().nSrcs(), buffer.size(0));
                long last = tokens.size(1) - 1;
                assertClose(resid.select(1, last), buffer.sum(0).select(1, last), 1e-6 * max * 10,
                    "sum of the graph's source outputs vs the final residual stream");
            }

        }
    }

    /** EAP (mask gradients) runs on the Gemma-2 graph: finite scores, and not all zero. */
    @Test
    void eapScoresAreFinite() throws Exception {
        java.nio.file.Path dir = Fixtures.resource("families/gemma2/model");
        Datasets.LoadedDatasets data = Datasets.load(Fixtures.resource("datasets/ioi-32.json"), Fixtures.ioiOptions(),
            Tokenizers.forModel(dir));
        try (PatchableModel model = PatchableModel.of(HookedTransformer.fromPretrained(dir), true,
                OutputSlice.LAST_SEQ, null, true, Kernels.reference())) {
            List<PromptPairBatch> train = data.train().batches();
            PruneScores scores = MaskGradient.scores(model, train.subList(0, 1), MaskGradient.Options.eap());
            float[] flat = scores.flat();
            assertEquals(model.graph().nEdges(), flat.length);
            boolean nonZero = false;
            for (float f : flat) {
                assertTrue(Float.isFinite(f), "finite EAP score");
                nonZero |= f != 0;
            }
            assertTrue(nonZero, "some edge matters");
        }
    }
}
