package org.autocircuit.algorithms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.IntStream;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.Edge;
import org.autocircuit.graph.PruneScores;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.AblationType;
import org.autocircuit.patching.Ablations;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.NoGradGuard;
import org.bytedeco.pytorch.ScalarTypeOptional;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Every grad function × answer function (bar mse, which needs float answers) and other ablation types, against central
 * finite differences of the same loss on the fixture model: for the edges with the largest scores, moving that edge's
 * mask by ±ε must change the loss by 2ε·score. (prob and logit_exp scores are ~1e-6 here: the random model spreads its
 * probability over 50,257 tokens; the tolerance is relative to the largest score.)
 */
class MaskGradientTest {
    static List<PromptPairBatch> oneBatch;

    @BeforeAll
    static void load() {
        oneBatch = List.of(Fixtures.ioi().train().batches().get(0));
    }

    static PatchableModel fixtureModel() {
        return PatchableModel.of(Fixtures.model(), true, OutputSlice.LAST_SEQ, null, true, Kernels.reference());
    }

    @ParameterizedTest(name = "{0} {1} at mask {2}, {3}")
    @CsvSource({
        "LOGIT,     AVG_DIFF, 0.0, RESAMPLE",
        "LOGIT,     AVG_VAL,  0.5, RESAMPLE",
        "PROB,      AVG_VAL,  0.0, RESAMPLE",
        "PROB,      AVG_DIFF, 0.3, RESAMPLE",
        "LOGPROB,   AVG_VAL,  0.0, RESAMPLE",
        "LOGPROB,   AVG_DIFF, 0.7, RESAMPLE",
        "LOGIT_EXP, AVG_VAL,  0.0, RESAMPLE",
        "LOGIT_EXP, AVG_DIFF, 0.4, RESAMPLE",
        "LOGIT,     AVG_DIFF, 0.0, ZERO",
        "LOGPROB,   AVG_DIFF, 0.2, TOKENWISE_MEAN_CORRUPT",
        "LOGIT,     AVG_DIFF, 0.5, BATCH_TOKENWISE_MEAN"})
    void matchesFiniteDifferences(MaskGradient.GradFunction grad, MaskGradient.AnswerFunction answer, double maskVal,
                                  AblationType ablation) {
        Ablations.CleanCorrupt side = ablation.needsCleanCorrupt() ? Ablations.CleanCorrupt.CORRUPT : null;
        MaskGradient.Options options = new MaskGradient.Options(grad, answer, maskVal, null, ablation, side);
        try (PointerScope scope = new PointerScope(); PatchableModel model = fixtureModel()) {
            PruneScores scores = MaskGradient.scores(model, oneBatch, options);
            float[] flat = scores.flat();
            List<Edge> edges = model.graph().edges();
            List<Integer> top = IntStream.range(0, flat.length).boxed()
                .sorted(Comparator.comparingDouble(i -> -Math.abs(flat[i]))).limit(4).toList();
            double maxAbs = Math.abs(flat[top.get(0)]);
            assertTrue(maxAbs > 0, "the scores are not all 0");
            Tensor patch = Ablations.batchSrcAblations(model, oneBatch, ablation, side).get(oneBatch.get(0).key());
            double eps = 1e-2;
            // float32 rounding of the loss, amplified by 1/(2ε), plus a relative slack for the O(ε²) truncation
            double lossScale = Math.abs(loss(model, patch, options, edges.get(top.get(0)), maskVal));
            double tol = 5e-3 * maxAbs + 4 * 1.2e-7 * lossScale / eps;
            List<String> report = new ArrayList<>();
            for (int i : top) {
                double fd = (loss(model, patch, options, edges.get(i), maskVal + eps)
                    - loss(model, patch, options, edges.get(i), maskVal - eps)) / (2 * eps);
                report.add(edges.get(i).name() + ": grad " + flat[i] + ", fd " + fd);
                assertEquals(flat[i], fd, tol, "edge " + edges.get(i).name() + " (" + report + ")");
            }
        }
    }

    /** The loss with every mask at {@code maskVal} except {@code edge} at {@code edgeVal}. */
    static double loss(PatchableModel model, Tensor patch, MaskGradient.Options o, Edge edge, double edgeVal) {
        PromptPairBatch batch = oneBatch.get(0);
        try (PointerScope scope = new PointerScope(); NoGradGuard g = new NoGradGuard()) {
            Tensor base = null;
            if (o.gradFunction() == MaskGradient.GradFunction.LOGIT_EXP) {
                // logit_exp's denominator is a constant to the gradient: hold it at the unperturbed point
                model.setAllMasks(o.maskVal());
                try (var mode = model.patchMode(patch)) {
                    base = model.forward(Inputs.clean(batch), null).exp()
                        .sum(new long[] {-1}, true, new ScalarTypeOptional());
                }
            }
            model.setMasks(PruneScores.filled(model.graph(), (float) o.maskVal().doubleValue()).with(edge, (float) edgeVal));
            try (var mode = model.patchMode(patch)) {
                Tensor logits = model.forward(Inputs.clean(batch), null);
                Tensor vals = base != null ? logits.exp().div(base) : o.gradFunction().apply(logits);
                return o.answerFunction().loss(vals, batch).item_double();
            }
        }
    }

    @Test
    void enforcesTheCleanCorruptRule() {
        try (PatchableModel model = fixtureModel()) {
            assertThrows(IllegalArgumentException.class, () -> MaskGradient.scores(model, oneBatch, new MaskGradient.Options(
                MaskGradient.GradFunction.LOGIT, MaskGradient.AnswerFunction.AVG_DIFF, 0.0, null, AblationType.RESAMPLE, null)));
            assertThrows(IllegalArgumentException.class, () -> MaskGradient.scores(model, oneBatch, new MaskGradient.Options(
                MaskGradient.GradFunction.LOGIT, MaskGradient.AnswerFunction.AVG_DIFF, 0.0, null, AblationType.ZERO,
                Ablations.CleanCorrupt.CORRUPT)));
            assertThrows(IllegalArgumentException.class, () -> new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                MaskGradient.AnswerFunction.AVG_DIFF, 0.0, 10, AblationType.RESAMPLE, Ablations.CleanCorrupt.CORRUPT));
        }
    }

    /** Integrated gradients are the sum of the gradients at the n+1 mask values k/n (quirk 5 of docs/quirks.md). */
    @Test
    void integratedGradientsSumTheFixedMaskGradients() {
        try (PatchableModel model = fixtureModel()) {
            float[] ig = MaskGradient.scores(model, oneBatch, MaskGradient.Options.integratedGradients(3)).flat();
            float[] sum = new float[ig.length];
            for (int k = 0; k <= 3; k++) {
                float[] s = MaskGradient.scores(model, oneBatch, new MaskGradient.Options(MaskGradient.GradFunction.LOGIT,
                    MaskGradient.AnswerFunction.AVG_DIFF, k / 3.0, null, AblationType.RESAMPLE, Ablations.CleanCorrupt.CORRUPT)).flat();
                for (int i = 0; i < sum.length; i++) sum[i] += s[i];
            }
            org.autocircuit.testing.TensorAsserts.assertClose(sum, ig, 1e-6, 1e-4, "IG-3 vs the sum of 4 fixed-mask runs");
        }
    }
}
