package org.autocircuit.patching;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.autocircuit.testing.TensorAsserts.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.autocircuit.algorithms.EdgeAttributionPatching;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.DestModule;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.graph.SrcModule;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedModel;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.KvCache;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Tokenizers;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.autocircuit.util.Progress;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Gemma-2's post-attention norm under patching: every patched pass divides the heads' outputs by the norm scale of the
 * unpatched run of its input ({@code s_clean}), never by a scale recomputed from the patched heads. Checked on the tiny
 * Gemma-2 fixture with its own tokenizer's IOI prompts, on both kernel paths: (a) the normed attention output of a
 * block whose inputs are patched is {@code Σ_h result_h / s_clean · g}, computed here by hand through hooks; (b) at
 * masks 0 every kind of pass gives the clean run's logits bit for bit (a last block trimmed to the last position: to
 * rounding); (c) at masks 1 the output is the corrupt run's
 * and each head's source is the corrupt one rescaled by {@code s_corrupt / s_clean}; (d) EAP's mask gradients equal
 * central finite differences of patched passes, exact EAP and each other across kernel paths.
 */
class Gemma2FrozenScalesTest {
    private static Path dir;
    private static PromptPairBatch batch;

    @BeforeAll
    static void load() throws IOException {
        dir = Fixtures.resource("families/gemma2/model");
        Datasets.LoadedDatasets data = Datasets.load(Fixtures.resource("datasets/ioi-32.json"), Fixtures.ioiOptions(),
            Tokenizers.forModel(dir));
        batch = data.train().batches().get(0);
    }

    private static PatchableModel patchable(String kernels) throws IOException {
        return PatchableModel.of(HookedTransformer.fromPretrained(dir), true, OutputSlice.LAST_SEQ, null, true,
            Fixtures.kernels(kernels));
    }

    private static Tensor clean() {
        return Inputs.clean(batch);
    }

    private static Tensor cleanPad() {
        return Inputs.padding(batch, Ablations.CleanCorrupt.CLEAN);
    }

    private static Tensor corrupt() {
        return Inputs.corrupt(batch);
    }

    private static Tensor corruptPad() {
        return Inputs.padding(batch, Ablations.CleanCorrupt.CORRUPT);
    }

    /** The post-norm scales {@code [batch, seq, 1]} of every block of an unpatched run, read at the model's hook points. */
    private static List<Tensor> recordedScales(HookedModel model, Tensor tokens, Tensor padding) {
        List<Tensor> out = new ArrayList<>();
        HookPoints record = (name, value) -> {
            if (name.endsWith("ln1_post.hook_scale")) out.add(value);
            return value;
        };
        model.forwardResidual(tokens, padding, null, record, OutputSlice.ALL, null, false);
        assertEquals(model.nLayers(), out.size(), "a post-norm scale per block");
        return out;
    }

    private static SrcModule headsOf(PatchableModel model, int block) {
        return model.graph().srcModules().stream()
            .filter(s -> s.moduleName().equals("blocks." + block + ".attn.hook_result")).findFirst().orElseThrow();
    }

    /** Hand-made per-head input: {@code resid + Σ_src mask[h, src] · (patch[src] − clean[src])}, {@code [b, s, H, d]}. */
    private static Tensor patchedByHand(Tensor resid, Tensor mask, Tensor patch, Tensor cleanSrc) {
        long nIn = mask.size(1), heads = mask.size(0);
        long[] s = resid.shape();
        Tensor diff = patch.narrow(0, 0, nIn).sub(cleanSrc.narrow(0, 0, nIn)).reshape(nIn, -1);      // [nIn, b·s·d]
        Tensor delta = torch.matmul(mask.to(diff.scalar_type()), diff).reshape(heads, s[0], s[1], s[2])
            .permute(1, 2, 0, 3);                                                                   // [b, s, H, d]
        return resid.unsqueeze(2).add(delta);
    }

    /** (a) a patched block's normed attention output is Σ_h result_h / s_clean · g, with result_h from a run by hand. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void patchedAttentionIsNormedWithTheCleanScale(String kernels) throws Exception {
        try (PatchableModel model = patchable(kernels); PointerScope scope = new PointerScope();
             NoGradGuard g = new NoGradGuard()) {
            HookedModel inner = model.model();
            List<Tensor> sClean = recordedScales(inner, clean(), cleanPad());
            Tensor patch = model.srcOutputs(corrupt(), corruptPad(), null);
            Tensor cleanSrc = model.srcOutputs(clean(), cleanPad(), null);
            // block 1's Q input of head 0 and K input of head 1 take every patch value; head 2's Q, the first half
            model.setAllMasks(0);
            Tensor q = model.mask("blocks.1.hook_q_input"), k = model.mask("blocks.1.hook_k_input");
            q.select(0, 0).fill_(new Scalar(1.0));
            q.select(0, 2).narrow(0, 0, q.size(1) / 2).fill_(new Scalar(1.0));
            k.select(0, 1).fill_(new Scalar(1.0));
            Tensor actual;
            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                model.forward(clean(), cleanPad());
                SrcModule heads = headsOf(model, 1);
                actual = model.currSrcOuts().narrow(0, heads.srcStart(), heads.count()).sum(0);   // [b, s, d]
            }
            // by hand: the same inputs through hooks, the scale set to 1 so that hook_result is result_h · g
            Tensor qMask = q.clone(), kMask = k.clone();
            Tensor[] raw = new Tensor[2];   // [0]: scale 1, [1]: the pass's own scale (what patching used to do)
            for (int variant = 0; variant < 2; variant++) {
                boolean unitScale = variant == 0;
                int slot = variant;
                HookPoints byHand = (name, value) -> switch (name) {
                    case "blocks.1.hook_q_input" -> patchedByHand(value, qMask, patch, cleanSrc);
                    case "blocks.1.hook_k_input" -> patchedByHand(value, kMask, patch, cleanSrc);
                    case "blocks.1.ln1_post.hook_scale" -> unitScale ? torch.ones_like(value) : value;
                    case "blocks.1.attn.hook_result" -> {
                        raw[slot] = value.sum(2);
                        yield value;
                    }
                    default -> value;
                };
                inner.forwardResidual(clean(), cleanPad(), null, byHand, OutputSlice.ALL, null, false);
            }
            Tensor expected = raw[0].div(sClean.get(1));                                            // Σ_h result_h·g / s_clean
            float max = HostTensor.of(expected.abs().max()).floats()[0];
            assertClose(expected, actual, 1e-5 * max, kernels + ": patched block 1 attention output vs Σ result_h / s_clean · g");
            // the scale matters here: the pass's own (patched) scale gives something else
            assertTrue(maxAbsDiff(raw[1], actual) > 1e-2 * max,
                "the patched heads' own scale differs from the clean one (else this test shows nothing): "
                    + maxAbsDiff(raw[1], actual));
        }
    }

    /** (b) at masks 0, every pass (whole, zero-mask, restarted, trimmed, padded, over a cached prefix) is the clean run. */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void masksZeroGiveTheCleanLogitsExactly(String kernels) throws Exception {
        try (PatchableModel model = patchable(kernels); PointerScope scope = new PointerScope();
             NoGradGuard g = new NoGradGuard()) {
            Tensor cleanLogits = model.forward(clean(), cleanPad());
            Tensor patch = model.srcOutputs(corrupt(), corruptPad(), null);
            model.setAllMasks(0);
            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                assertExactly(cleanLogits, model.forward(clean(), cleanPad()), "patch mode, whole pass");
                Tensor[] residPre = new Tensor[model.model().nLayers()];
                model.forwardResidual(clean(), cleanPad(), residPre);
                IllegalStateException e = assertThrows(IllegalStateException.class,
                    () -> model.residualFromBlock(1, residPre[1], cleanPad()));
                assertTrue(e.getMessage().contains("freezeNormScales"), e.getMessage());
                mode.freezeNormScales(model.normScales(clean(), cleanPad()));
                assertExactly(cleanLogits, model.unembed(model.residualFromBlock(1, residPre[1], cleanPad())),
                    "restarted at block 1");
            }
            // the last block trimmed to the last position: its products over one position round differently from
            // the whole block's (the unpatched trimmed pass differs from the whole one too), and the patched pass
            // divides by the whole clean run's scale there, so this one holds to rounding, not bit for bit
            try (PatchableModel.OutputsOnly o = model.outputsOnly()) {
                Tensor trimmedClean = model.unembed(model.forwardResidual(clean(), cleanPad()));
                try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                    Tensor trimmedPatched = model.unembed(model.forwardResidual(clean(), cleanPad()));
                    assertClose(cleanLogits, trimmedPatched, 1e-5, "last block trimmed to the last position");
                    assertClose(trimmedClean, trimmedPatched, 1e-5, "trimmed, patched vs unpatched");
                }
            }
            try (PatchableModel.PatchMode mode = model.patchModeAtZeroMasks(patch)) {
                assertExactly(cleanLogits, model.forward(clean(), cleanPad()), "zero-mask mode");
            }
            // left padding added to every prompt: the padded patched pass is the padded clean run
            Tensor padded = leftPad(clean(), 3), paddedMask = leftPadMask(cleanPad(), clean(), 3);
            Tensor paddedClean = model.forward(padded, paddedMask);
            Tensor paddedPatch = model.srcOutputs(leftPad(corrupt(), 3), leftPadMask(corruptPad(), corrupt(), 3), null);
            try (PatchableModel.PatchMode mode = model.patchMode(paddedPatch)) {
                assertExactly(paddedClean, model.forward(padded, paddedMask), "left-padded");
            }
            // a cached prefix of 2 tokens: patched passes over the tail
            assertTrue(cleanPad() == null, "the fixture's prompts are unpadded (the prefix cache below assumes it)");
            long seq = clean().size(1);
            Tensor tail = clean().narrow(1, 2, seq - 2).contiguous();
            model.addKvCache(model.model().buildKvCache(clean().narrow(1, 0, 2).contiguous(), null));
            Tensor tailClean = model.forward(tail, null);
            Tensor tailPatch = model.srcOutputs(corrupt().narrow(1, 2, seq - 2).contiguous(), null, null);
            try (PatchableModel.PatchMode mode = model.patchMode(tailPatch)) {
                assertExactly(tailClean, model.forward(tail, null), "over a cached prefix");
            }
            model.removeKvCache(clean().size(0));
        }
    }

    private static Tensor leftPad(Tensor tokens, int n) {
        Tensor pads = torch.zeros(new long[] {tokens.size(0), n}, new TensorOptions(torch.ScalarType.Long));
        return torch.cat(new TensorVector(pads, tokens), 1);
    }

    private static Tensor leftPadMask(Tensor mask, Tensor tokens, int n) {
        Tensor real = mask != null ? mask : torch.ones(tokens.shape(), new TensorOptions(torch.ScalarType.Long));
        return torch.cat(new TensorVector(torch.zeros(new long[] {tokens.size(0), n},
            new TensorOptions(torch.ScalarType.Long)), real), 1);
    }

    private static void assertExactly(Tensor expected, Tensor actual, String what) {
        assertArrayEquals(HostTensor.of(expected).floats(), HostTensor.of(actual).floats(), what);
    }

    /**
     * (c) at masks 1 every destination reads the corrupt run's sources, so the output is the corrupt run's; the heads'
     * own outputs in that pass are the corrupt heads' results over the clean scale, {@code patch_h · s_corrupt / s_clean},
     * the MLPs' (which read fully patched inputs and have no shared scale) are the corrupt ones, and the embedding,
     * which reads no destination, stays the clean one.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void masksOneGiveTheCorruptOutputAndRescaledHeads(String kernels) throws Exception {
        try (PatchableModel model = patchable(kernels); PointerScope scope = new PointerScope();
             NoGradGuard g = new NoGradGuard()) {
            HookedModel inner = model.model();
            List<Tensor> sClean = recordedScales(inner, clean(), cleanPad());
            List<Tensor> sCorrupt = recordedScales(inner, corrupt(), corruptPad());
            Tensor corruptLogits = model.forward(corrupt(), corruptPad());
            Tensor patch = model.srcOutputs(corrupt(), corruptPad(), null);
            Tensor cleanSrc = model.srcOutputs(clean(), cleanPad(), null);
            model.setAllMasks(1);
            try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                Tensor out = model.forward(clean(), cleanPad());
                float max = HostTensor.of(corruptLogits.abs().max()).floats()[0];
                assertClose(corruptLogits, out, 1e-5 * max, kernels + ": masks 1 vs the corrupt run");
                Tensor curr = model.currSrcOuts();
                float srcMax = HostTensor.of(patch.abs().max()).floats()[0];
                boolean differs = false;
                for (SrcModule sm : model.graph().srcModules()) {
                    Tensor mine = curr.narrow(0, sm.srcStart(), sm.count());
                    Tensor theirs = patch.narrow(0, sm.srcStart(), sm.count());
                    if (sm.headed()) {
                        int b = Integer.parseInt(sm.moduleName().split("\\.")[1]);
                        Tensor rescaled = theirs.mul(sCorrupt.get(b)).div(sClean.get(b));
                        assertClose(rescaled, mine, 1e-5 * srcMax, sm.moduleName() + ": corrupt heads over the clean scale");
                        differs |= maxAbsDiff(theirs, mine) > 1e-3 * srcMax;
                    } else if (sm.moduleName().equals("blocks.0.hook_resid_pre")) {
                        assertClose(cleanSrc.narrow(0, sm.srcStart(), 1), mine, 0, "the embedding: the clean one");
                    } else {
                        assertClose(theirs, mine, 1e-5 * srcMax, sm.moduleName() + ": the corrupt output");
                    }
                }
                assertTrue(differs, "the clean and corrupt scales differ (else the heads check shows nothing)");
            }
        }
    }

    /**
     * (d) EAP's mask gradients under the frozen scale: equal on both kernel paths, equal to exact EAP (the gradient of
     * the unpatched run, whose scale is the clean one), and equal to central finite differences of patched passes,
     * whose scale stays the clean one as a mask moves off 0.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"native"})
    void eapEqualsFiniteDifferencesAndExactEap(String kernels) throws Exception {
        PruneScores reference, other, exact;
        List<PromptPairBatch> one = List.of(batch);
        try (PatchableModel model = patchable("reference")) {
            reference = MaskGradient.scores(model, one, MaskGradient.Options.eap());
            exact = EdgeAttributionPatching.scores(model, one, EdgeAttributionPatching.Options.defaults(), Progress.NONE);
            checkFiniteDifferences(model, reference);
        }
        try (PatchableModel model = patchable(kernels)) {
            other = MaskGradient.scores(model, one, MaskGradient.Options.eap());
        }
        float[] r = reference.flat();
        float max = 0;
        for (float f : r) max = Math.max(max, Math.abs(f));
        org.autocircuit.testing.TensorAsserts.assertClose(r, other.flat(), 1e-5 * max, 0, "reference vs " + kernels);
        org.autocircuit.testing.TensorAsserts.assertClose(r, exact.flat(), 1e-4 * max, 0, "mask gradient vs exact EAP");
    }

    /** The largest scores, and some of block 1's, against (L(+ε) − L(−ε)) / 2ε of patched passes. */
    private static void checkFiniteDifferences(PatchableModel model, PruneScores scores) {
        float[] flat = scores.flat();
        float max = 0;
        for (float f : flat) max = Math.max(max, Math.abs(f));
        Integer[] order = new Integer[flat.length];
        for (int i = 0; i < order.length; i++) order[i] = i;
        java.util.Arrays.sort(order, (a, b) -> Float.compare(Math.abs(flat[b]), Math.abs(flat[a])));
        List<String> modules = new ArrayList<>();
        List<Integer> offsets = new ArrayList<>();
        for (DestModule dm : model.graph().destModules()) {
            for (int i = 0; i < dm.maskNumel(); i++) {
                modules.add(dm.moduleName());
                offsets.add(i);
            }
        }
        double eps = 1e-2;
        int checked = 0;
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor patch = model.srcOutputs(corrupt(), corruptPad(), null);
            model.setAllMasks(0);
            for (int rank = 0; rank < 8; rank++) {
                int e = order[rank];
                Tensor element = model.mask(modules.get(e)).view(-1).narrow(0, offsets.get(e), 1);
                double[] loss = new double[2];
                for (int side = 0; side < 2; side++) {
                    element.fill_(new Scalar(side == 0 ? eps : -eps));
                    try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                        Tensor logits = model.forward(clean(), cleanPad());
                        // EAP's loss: −(mean logit difference)
                        loss[side] = -HostTensor.of(org.autocircuit.metrics.TensorOps.batchAvgAnswerDiff(logits, batch))
                            .floats()[0];
                    }
                }
                element.fill_(new Scalar(0.0));
                double fd = (loss[0] - loss[1]) / (2 * eps);
                assertEquals(flat[e], fd, 2e-2 * max, "edge " + e + " (" + modules.get(e) + "[" + offsets.get(e)
                    + "]): EAP " + flat[e] + " vs finite difference " + fd);
                checked++;
            }
        }
        assertEquals(8, checked);
    }

    /**
     * ACDC on Gemma-2: each trial (batched over the window from a later block, with the clean scales repeated per
     * trial) gives the output of a whole patched pass with the trial's masks, which finds the clean scales itself; and
     * the batched search decides as the one-trial-at-a-time search does.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void acdcTrialsUseTheCleanScale(String kernels) throws Exception {
        List<PromptPairBatch> one = List.of(batch);
        int[] checked = new int[1];
        try (PatchableModel model = patchable(kernels); PatchableModel check = patchable(kernels)) {
            org.autocircuit.algorithms.Acdc.TrialObserver observer = (tauIndex, edge, output, masks) -> {
                if (checked[0] >= 6 || edge.hashCode() % 5 != 0) return;
                try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
                    check.setMasks(masks.get());
                    Tensor patch = check.srcOutputs(corrupt(), corruptPad(), null);
                    try (PatchableModel.PatchMode mode = check.patchMode(patch)) {
                        Tensor whole = check.forward(clean(), cleanPad());
                        float max = HostTensor.of(whole.abs().max()).floats()[0];
                        assertClose(whole, output.toTensor(), 1e-5 * max, "trial of " + edge);
                    }
                }
                checked[0]++;
            };
            org.autocircuit.algorithms.Acdc.Options options = org.autocircuit.algorithms.Acdc.Options.of(List.of(1e-3),
                org.autocircuit.algorithms.Acdc.Faithfulness.KL_DIV);
            org.autocircuit.algorithms.PruneRun run = org.autocircuit.algorithms.PruneRun.of(model, one);
            PruneScores batched = org.autocircuit.algorithms.Acdc.scores(run, options, observer);
            PruneScores single = org.autocircuit.algorithms.Acdc.scores(run, options, null, 1, false);
            assertArrayEquals(single.flat(), batched.flat(), "batched vs single trials");
        }
        assertTrue(checked[0] >= 3, "trials checked: " + checked[0]);
    }

    /**
     * A point of integrated gradients (every mask at 0.5): the uniform-mask shortcut gives the plain path's mask
     * gradients, and both equal central finite differences of patched passes around that point, with the scale
     * frozen at the clean run's.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void integratedGradientsPointUsesTheCleanScale(String kernels) throws Exception {
        double alpha = 0.5;
        try (PatchableModel model = patchable(kernels); PointerScope scope = new PointerScope()) {
            Tensor patch;
            try (NoGradGuard g = new NoGradGuard()) {
                patch = model.srcOutputs(corrupt(), corruptPad(), null);
            }
            float[] plain = gradientsAt(model, patch, alpha, false);
            float[] uniform = gradientsAt(model, patch, alpha, true);
            org.autocircuit.testing.TensorAsserts.assertClose(plain, uniform, 1e-6, 1e-4, kernels + ": uniform vs plain");
            float max = 0;
            for (float f : plain) max = Math.max(max, Math.abs(f));
            Integer[] order = new Integer[plain.length];
            for (int i = 0; i < order.length; i++) order[i] = i;
            java.util.Arrays.sort(order, (a, b) -> Float.compare(Math.abs(plain[b]), Math.abs(plain[a])));
            double eps = 1e-2;
            try (NoGradGuard g = new NoGradGuard()) {
                for (int rank = 0; rank < 4; rank++) {
                    int e = order[rank];
                    double[] loss = new double[2];
                    for (int side = 0; side < 2; side++) {
                        float[] m = new float[plain.length];
                        java.util.Arrays.fill(m, (float) alpha);
                        m[e] += (float) (side == 0 ? eps : -eps);
                        model.setMasks(PruneScores.ofFlat(model.graph(), m));
                        try (PatchableModel.PatchMode mode = model.patchMode(patch)) {
                            loss[side] = -HostTensor.of(org.autocircuit.metrics.TensorOps.batchAvgAnswerDiff(
                                model.forward(clean(), cleanPad()), batch)).floats()[0];
                        }
                    }
                    double fd = (loss[0] - loss[1]) / (2 * eps);
                    assertEquals(plain[e], fd, 2e-2 * max, "edge " + e + " at mask " + alpha + ": gradient " + plain[e]
                        + " vs finite difference " + fd);
                }
            }
        }
    }

    /** Mask gradients of −(mean logit difference) of one patched pass with every mask at {@code alpha}. */
    private static float[] gradientsAt(PatchableModel model, Tensor patch, double alpha, boolean uniform) {
        model.setAllMasks(alpha);
        try (PatchableModel.MaskTraining training = model.trainMaskMode(); PointerScope step = new PointerScope();
             PatchableModel.PatchMode mode = uniform ? model.patchModeAtUniformMasks(patch, alpha) : model.patchMode(patch)) {
            long before = model.uniformMaskTermCount();
            Tensor logits = model.forward(clean(), cleanPad());
            // (the uniform-mask mode's deferred mask gradients come from mode.backward; on a plain mode it is backward())
            mode.backward(org.autocircuit.metrics.TensorOps.batchAvgAnswerDiff(logits, batch).neg());
            assertEquals(uniform, model.uniformMaskTermCount() > before, "the shortcut ran where asked");
            return model.maskGradients().flat();
        }
    }

    /**
     * run_circuits on Gemma-2 (each batch's circuits restarted at their first patched block, the last block trimmed,
     * the prompts' shared prefix over a key/value cache): every circuit's logits equal a whole patched pass with its
     * masks, which finds the clean scales itself.
     */
    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"reference", "native"})
    void runCircuitsUsesTheCleanScale(String kernels) throws Exception {
        try (PatchableModel model = patchable(kernels); PatchableModel check = patchable(kernels);
             PointerScope scope = new PointerScope()) {
            PruneScores scores = org.autocircuit.algorithms.RandomScores.scores(model.graph(), 1L);
            int n = model.graph().nEdges();
            List<Integer> counts = List.of(1, 5, n / 4, n / 2, n - 3);
            for (PatchType type : PatchType.values()) {
                // edge patching runs the corrupt prompts with the circuit's edges patched from the clean run; tree
                // patching runs the clean prompts with the other edges patched from the corrupt run
                boolean onClean = type == PatchType.TREE_PATCH;
                Tensor input = onClean ? clean() : corrupt(), padding = onClean ? cleanPad() : corruptPad();
                CircuitOutputs outputs = RunCircuits.run(model, List.of(batch), counts, scores, type,
                    AblationType.RESAMPLE, false);
                try (NoGradGuard g = new NoGradGuard()) {
                    Tensor patch = onClean ? check.srcOutputs(corrupt(), corruptPad(), null)
                        : check.srcOutputs(clean(), cleanPad(), null);
                    for (int k : counts) {
                        check.setMasks(RunCircuits.MaskSet.of(scores, scores.threshold(k), type).masks());
                        try (PatchableModel.PatchMode mode = check.patchMode(patch)) {
                            Tensor whole = check.forward(input, padding);
                            float max = HostTensor.of(whole.abs().max()).floats()[0];
                            assertClose(whole, outputs.output(k, batch.key()).toTensor(), 1e-5 * max,
                                kernels + ": run_circuits " + type + " at " + k + " edges");
                        }
                    }
                }
            }
            assertTrue(RunCircuits.sharedPrefixLength(model, batch) > 0, "the batch's passes ran over a shared prefix");
        }
    }
}
