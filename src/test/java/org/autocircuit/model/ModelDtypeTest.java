package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import org.autocircuit.algorithms.MaskGradient;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.kernels.Device;
import org.autocircuit.patching.Inputs;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * 16-bit models: the weights and every activation in bfloat16 or float16 (masks and kernel sums in float32). The
 * float32 model of the same folder is the reference: logits and EAP scores must agree within what one 16-bit rounding
 * per op allows, and every source output must really be 16-bit.
 */
class ModelDtypeTest {

    private static Path folder(String family) {
        return family.equals("gpt2") ? Fixtures.modelDir() : FamilyFixtures.modelDir(family);
    }

    /** Relative L2 distance of two float vectors. */
    private static double relative(float[] got, float[] want) {
        double num = 0, den = 0;
        for (int i = 0; i < want.length; i++) {
            num += ((double) got[i] - want[i]) * ((double) got[i] - want[i]);
            den += (double) want[i] * want[i];
        }
        return Math.sqrt(num / den);
    }

    @ParameterizedTest(name = "{0} {1}")
    @CsvSource({"gpt2, bfloat16, 0.03, 0.1", "gpt2, float16, 0.005, 0.02", "llama, bfloat16, 0.03, 0.1",
        "llama, float16, 0.005, 0.02"})
    void sixteenBitModelsAgreeWithFloat32(String family, String dtypeName, double logitTol, double scoreTol)
            throws Exception {
        torch.ScalarType dtype = HookedTransformer.parseDtype(dtypeName);
        List<PromptPairBatch> batches = Fixtures.ioi().train().batches();
        try (PatchableModel full = PatchableModel.of(HookedTransformer.fromPretrained(folder(family)), true,
                 OutputSlice.LAST_SEQ, null, true, null);
             PatchableModel half = PatchableModel.of(HookedTransformer.fromPretrained(folder(family),
                 WeightProcessing.NONE, Device.CPU, dtype), true, OutputSlice.LAST_SEQ, null, true, null)) {
            assertEquals(dtype, half.model().dtype());
            try (PointerScope scope = new PointerScope()) {
                Tensor tokens = Inputs.clean(batches.get(0));
                Tensor want = full.forward(tokens, null);
                Tensor got = half.forward(tokens, null);
                assertEquals(dtype, got.scalar_type().intern(), "logits of a 16-bit model are 16-bit");
                double rel = relative(HostTensor.of(got).floats(), HostTensor.of(want).floats());
                assertTrue(rel <= logitTol, family + " " + dtypeName + ": logits differ by " + rel + " (relative L2)");
                Tensor src = half.srcOutputs(Inputs.corrupt(batches.get(0)), null, null);
                assertEquals(dtype, src.scalar_type().intern(), "source outputs of a 16-bit model are 16-bit");
            }
            float[] scoresWant = MaskGradient.scores(full, batches, MaskGradient.Options.eap()).flat();
            float[] scoresGot = MaskGradient.scores(half, batches, MaskGradient.Options.eap()).flat();
            double rel = relative(scoresGot, scoresWant);
            assertTrue(rel <= scoreTol, family + " " + dtypeName + ": EAP scores differ by " + rel + " (relative L2)");
            System.out.printf("%s %s: EAP scores relative L2 %.2e (%s kernels)%n", family, dtypeName, rel,
                half.kernels().name());
        }
    }

    @org.junit.jupiter.api.Test
    void otherDtypesAreRefusedNamingThem() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> HookedTransformer.parseDtype("int8"));
        assertTrue(e.getMessage().contains("float32, bfloat16 or float16") && e.getMessage().contains("'int8'"));
        IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> HookedTransformer.fromPretrained(
            Fixtures.modelDir(), WeightProcessing.NONE, Device.CPU, torch.ScalarType.Double));
        assertTrue(d.getMessage().contains("got Double"), d.getMessage());
    }
}
