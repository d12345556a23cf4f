package org.autocircuit.metrics;

import static org.autocircuit.metrics.MetricFixtures.batch;
import static org.autocircuit.metrics.MetricFixtures.floats;
import static org.autocircuit.metrics.MetricFixtures.ragged;
import static org.autocircuit.metrics.MetricFixtures.stacked;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Function;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.junit.jupiter.api.Test;

/** Port of AutoCircuit's tests/utils/test_tensor_ops.py, plus the ragged paths it never checks. */
class TensorOpsTest {
    private static final long[][] ANS_01 = {{0}, {1}};

    private static double scalar(Function<Tensor, Tensor> f, float[][] vals) {
        try (var scope = new PointerScope()) {
            return f.apply(floats(vals).toTensor()).item_double();
        }
    }

    @Test
    void batchAvgAnswerVal() {
        float[][] logits = {{.75f, .2f, .7f}, {.3f, .25f, .5f}};
        Answers wrong = stacked(new long[][] {{2}, {2}});
        for (Answers answers : new Answers[] {stacked(ANS_01), ragged(ANS_01)}) {
            PromptPairBatch b = batch(1, answers, wrong);
            assertEquals(0.5, scalar(v -> TensorOps.batchAvgAnswerVal(v, b, false), logits), 0.0, answers.toString());
        }
        // Wrong answers: (0.7 + 0.5) / 2.
        PromptPairBatch b = batch(1, stacked(ANS_01), wrong);
        assertEquals(0.6, scalar(v -> TensorOps.batchAvgAnswerVal(v, b, true), logits), 1e-7);
    }

    @Test
    void batchAvgAnswerValRaggedIsMeanOfPromptMeans() {
        // Prompt 0 has answers {0, 2} (mean 0.725), prompt 1 has {1} (0.25): mean of means 0.4875, not (0.75+0.7+0.25)/3.
        float[][] logits = {{.75f, .2f, .7f}, {.3f, .25f, .5f}};
        PromptPairBatch b = batch(1, ragged(new long[][] {{0, 2}, {1}}), ragged(new long[][] {{1}, {0}}));
        assertEquals(0.4875, scalar(v -> TensorOps.batchAvgAnswerVal(v, b, false), logits), 1e-7);
    }

    @Test
    void batchAvgAnswerDiff() {
        float[][] logits = {{.75f, .2f, .75f}, {.3f, 1.25f, .25f}};
        long[][] wrong = {{2}, {2}};
        for (boolean isRagged : new boolean[] {false, true}) {
            PromptPairBatch b = isRagged ? batch(1, ragged(ANS_01), ragged(wrong)) : batch(1, stacked(ANS_01), stacked(wrong));
            assertEquals(0.5, scalar(v -> TensorOps.batchAvgAnswerDiff(v, b), logits), 0.0);
            try (var scope = new PointerScope()) {
                Tensor diffs = TensorOps.batchAnswerDiffs(floats(logits).toTensor(), b);
                assertArrayEquals(new float[] {0f, 1f}, HostTensor.of(diffs).floats(), 0f);
            }
        }
    }

    @Test
    void batchAnswerDiffsTracrShape() {
        // tracr: vals [batch, 5, vocab], answers [batch, 5, 1] → diffs [batch, 5].
        float[] vals = new float[2 * 5 * 3];
        for (int i = 0; i < vals.length; i++) vals[i] = i;                  // vals[b][p][v] = 15b + 3p + v
        long[] ans = new long[10];
        long[] wrong = new long[10];
        java.util.Arrays.fill(ans, 2);
        java.util.Arrays.fill(wrong, 0);
        PromptPairBatch b = batch(1, new Answers.Stacked(HostTensor.ofLongs(ans, 2, 5, 1)),
            new Answers.Stacked(HostTensor.ofLongs(wrong, 2, 5, 1)));
        try (var scope = new PointerScope()) {
            Tensor diffs = TensorOps.batchAnswerDiffs(HostTensor.ofFloats(vals, 2, 5, 3).toTensor(), b);
            assertArrayEquals(new long[] {2, 5}, diffs.shape());
            float[] expected = new float[10];
            java.util.Arrays.fill(expected, 2f);
            assertArrayEquals(expected, HostTensor.of(diffs).floats(), 0f);
        }
    }

    @Test
    void correctAnswerProportion() {
        float[][][] cases = {
            {{1f, .2f, .7f}, {.3f, .9f, .5f}},
            {{.5f, .2f, .7f}, {.3f, .6f, .5f}},
            {{.1f, .2f, .7f}, {.3f, .2f, .5f}},
        };
        double[] expected = {1.0, 0.5, 0.0};
        Answers wrong = stacked(new long[][] {{2}, {2}});
        for (Answers answers : new Answers[] {stacked(ANS_01), ragged(ANS_01)}) {
            PromptPairBatch b = batch(1, answers, wrong);
            for (int c = 0; c < cases.length; c++) {
                try (var scope = new PointerScope()) {
                    assertEquals(expected[c], TensorOps.correctAnswerProportion(floats(cases[c]).toTensor(), b), 0.0,
                        "case " + c + " " + answers);
                }
            }
        }
    }

    @Test
    void correctAnswerProportionArgmaxTakesFirstMaximum() {
        // Prompt 0 ties its answer (index 0) with index 1: first maximum is the answer → correct.
        // Prompt 1 ties index 0 with its answer (index 1): first maximum is 0 → wrong.
        float[][] logits = {{7f, 7f, 1f}, {4f, 4f, 1f}};
        for (Answers answers : new Answers[] {stacked(ANS_01), ragged(ANS_01)}) {
            PromptPairBatch b = batch(1, answers, stacked(new long[][] {{2}, {2}}));
            try (var scope = new PointerScope()) {
                assertEquals(0.5, TensorOps.correctAnswerProportion(floats(logits).toTensor(), b), 0.0);
            }
        }
    }

    @Test
    void correctAnswerProportionRejectsSeveralAnswers() {
        PromptPairBatch stackedBatch = batch(1, stacked(new long[][] {{0, 1}, {1, 2}}), stacked(new long[][] {{2}, {2}}));
        PromptPairBatch raggedBatch = batch(1, ragged(new long[][] {{0}, {1, 2}}), ragged(new long[][] {{2}, {0}}));
        try (var scope = new PointerScope()) {
            Tensor logits = floats(new float[][] {{1f, 2f, 3f}, {1f, 2f, 3f}}).toTensor();
            var e1 = assertThrows(IllegalArgumentException.class, () -> TensorOps.correctAnswerProportion(logits, stackedBatch));
            assertTrue(e1.getMessage().contains("answers"), e1.getMessage());
            assertThrows(IllegalArgumentException.class, () -> TensorOps.correctAnswerProportion(logits, raggedBatch));
            assertThrows(IllegalArgumentException.class,
                () -> TensorOps.correctAnswerGreaterThanIncorrectProportion(logits, stackedBatch));
        }
    }

    @Test
    void correctGreaterThanIncorrectProportion() {
        long[][] wrong = {{1, 3}, {0, 3}};
        // Unlike AutoCircuit's test (quirk 16 of docs/quirks.md), the list block really uses ragged answers here.
        PromptPairBatch[] batches = {batch(1, stacked(ANS_01), stacked(wrong)), batch(2, ragged(ANS_01), ragged(wrong))};
        for (PromptPairBatch b : batches) {
            String what = b.answers().getClass().getSimpleName();
            assertEquals(1.0, greater(b, new float[][] {{9, 2, 7, 1}, {3, 9, 5, 1}}), 0.0, what);
            float[][] l2 = {{6, 2, 7, 1}, {3, 4, 5, 1}};
            assertEquals(0.0, correct(b, l2), 0.0, what);
            assertEquals(1.0, greater(b, l2), 0.0, what);
            assertEquals(0.5, greater(b, new float[][] {{5, 7, 7, 1}, {3, 6, 5, 1}}), 0.0, what);
            float[][] l4 = {{5, 7, 7, 1}, {3, 6, 9, 1}};
            assertEquals(0.0, correct(b, l4), 0.0, what);
            assertEquals(0.5, greater(b, l4), 0.0, what);
            assertEquals(0.0, greater(b, new float[][] {{1, 2, 7, 1}, {3, 2, 5, 1}}), 0.0, what);
        }
    }

    @Test
    void correctGreaterThanIncorrectRaggedWrongAnswersAndTies() {
        // Prompt 0: answer 0, wrong {1, 2, 3}; prompt 1: answer 1, wrong {0}. Different numbers of wrong answers, so
        // only the per-prompt path can take them.
        PromptPairBatch b = batch(1, ragged(ANS_01), ragged(new long[][] {{1, 2, 3}, {0}}));
        // Prompt 0: [5 | 2, 7, 1] → max is a wrong answer; prompt 1: [6 | 3] → correct.
        assertEquals(0.5, greater(b, new float[][] {{5, 2, 7, 1}, {3, 6, 5, 1}}), 0.0);
        // A tie goes to the correct answer (argmax takes the first maximum): prompt 0 [7 | 2, 7, 1], prompt 1 [3 | 3].
        assertEquals(1.0, greater(b, new float[][] {{7, 2, 7, 1}, {3, 3, 5, 1}}), 0.0);
        // Stacked answers with a tie, for the vectorised path.
        PromptPairBatch s = batch(2, stacked(ANS_01), stacked(new long[][] {{1, 3}, {0, 3}}));
        assertEquals(1.0, greater(s, new float[][] {{7, 7, 0, 1}, {3, 3, 5, 1}}), 0.0);
    }

    private static double greater(PromptPairBatch b, float[][] logits) {
        try (var scope = new PointerScope()) {
            return TensorOps.correctAnswerGreaterThanIncorrectProportion(floats(logits).toTensor(), b);
        }
    }

    private static double correct(PromptPairBatch b, float[][] logits) {
        try (var scope = new PointerScope()) {
            return TensorOps.correctAnswerProportion(floats(logits).toTensor(), b);
        }
    }

    @Test
    void batchAnswerDiffPercent() {
        float[][] pred = {{.3f, .7f}, {.6f, .4f}};
        float[][] target = {{.2f, .8f}, {.5f, .3f}};
        long[][] ans = {{0}, {0}};
        long[][] wrong = {{1}, {1}};
        for (PromptPairBatch b : new PromptPairBatch[] {batch(1, stacked(ans), stacked(wrong)),
                                                        batch(1, ragged(ans), ragged(wrong))}) {
            try (var scope = new PointerScope()) {
                Tensor pct = TensorOps.batchAnswerDiffPercents(floats(pred).toTensor(), floats(target).toTensor(), b);
                float[] got = HostTensor.of(pct).floats();
                assertArrayEquals(new float[] {66.666664f, 100.0f}, got, 1e-4f);
                // As the test states it: ((pred0 − pred1) / (tgt0 − tgt1)) · 100 per row.
                for (int i = 0; i < 2; i++) {
                    double expected = (pred[i][0] - pred[i][1]) / (double) (target[i][0] - target[i][1]) * 100;
                    assertEquals(expected, got[i], 1e-4);
                }
            }
        }
    }

    @Test
    void batchAvgAnswerDiffIsDifferentiable() {
        PromptPairBatch b = batch(1, stacked(ANS_01), stacked(new long[][] {{2}, {2}}));
        try (var scope = new PointerScope()) {
            Tensor vals = floats(new float[][] {{.75f, .2f, .75f}, {.3f, 1.25f, .25f}}).toTensor();
            vals.set_requires_grad(true);
            Tensor loss = TensorOps.batchAvgAnswerDiff(vals, b);
            loss.backward();
            // d mean(ans − wrong) / d vals: +1/2 at each answer, −1/2 at each wrong answer.
            assertArrayEquals(new float[] {.5f, 0f, -.5f, 0f, .5f, -.5f}, HostTensor.of(vals.grad()).floats(), 0f);
        }
    }

    @Test
    void multibatchKlDiv() {
        // Row 0: KL([.5, .5] ‖ [.25, .75]) = .5 ln 2 + .5 ln(2/3) = .5 ln(4/3); row 1: identical rows → 0.
        double row0 = 0.5 * Math.log(4.0 / 3.0);
        float[][] target = {{(float) Math.log(.5), (float) Math.log(.5)}, {(float) Math.log(.1), (float) Math.log(.9)}};
        float[][] input = {{(float) Math.log(.25), (float) Math.log(.75)}, {(float) Math.log(.1), (float) Math.log(.9)}};
        try (var scope = new PointerScope()) {
            double kl = TensorOps.multibatchKlDiv(floats(input).toTensor(), floats(target).toTensor()).item_double();
            assertEquals(row0 / 2, kl, 1e-7);
            // Extra batch dimensions count as rows: [2, 1, 2] gives the same mean over 2 rows.
            Tensor in3 = floats(input).toTensor().reshape(2, 1, 2);
            Tensor tg3 = floats(target).toTensor().reshape(2, 1, 2);
            assertEquals(row0 / 2, TensorOps.multibatchKlDiv(in3, tg3).item_double(), 1e-7);
            Tensor bad = floats(new float[][] {{0f, 0f, 0f}}).toTensor();
            assertThrows(IllegalArgumentException.class, () -> TensorOps.multibatchKlDiv(bad, in3));
        }
    }

    @Test
    void badInputNamesTheArgument() {
        PromptPairBatch b = batch(1, stacked(ANS_01), stacked(new long[][] {{2}, {2}}));
        try (var scope = new PointerScope()) {
            Tensor threeRows = floats(new float[][] {{1, 2, 3}, {1, 2, 3}, {1, 2, 3}}).toTensor();
            var e = assertThrows(IllegalArgumentException.class, () -> TensorOps.batchAvgAnswerDiff(threeRows, b));
            assertTrue(e.getMessage().startsWith("vals"), e.getMessage());
            Tensor idx = HostTensor.ofLongs(new long[] {0}, 1).toTensor();
            var e2 = assertThrows(IllegalArgumentException.class, () -> TensorOps.indicesVals(threeRows, idx));
            assertTrue(e2.getMessage().startsWith("idx"), e2.getMessage());
        }
    }
}
