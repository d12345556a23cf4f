package org.autocircuit.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.autocircuit.testing.ChildJvm;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.util.HostTensor;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A 16-bit model is built in its dtype tensor by tensor: a checkpoint's BF16 tensors are read straight into bfloat16
 * (the file's values, no float32 copy), and a model built as bfloat16 never holds its weights in float32 as a whole,
 * which the peak resident memory of a fresh JVM building one shows.
 */
class SixteenBitLoadTest {

    /** Every tensor of the bf16 Llama fixture: read for a bf16 model, it is bf16 with the file's values. */
    @Test
    void bf16TensorsAreReadAsStored() throws Exception {
        try (Checkpoint checkpoint = Checkpoint.open(FamilyFixtures.modelDir("llama")); PointerScope scope = new PointerScope()) {
            int n = 0;
            for (String name : checkpoint.names()) {
                SafeTensors st = SafeTensors.open(FamilyFixtures.modelDir("llama").resolve(Checkpoint.SINGLE_FILE));
                long[] shape;
                String stored;
                try (st) {
                    shape = st.info(name).shape();
                    stored = st.info(name).dtype();
                }
                Tensor asFloat = checkpoint.load(name, shape);
                Tensor asBf16 = checkpoint.loadFor(torch.ScalarType.BFloat16, name, shape);
                Tensor asHalf = checkpoint.loadFor(torch.ScalarType.Half, name, shape);
                assertEquals("BF16", stored, name);
                assertEquals(torch.ScalarType.Float, asFloat.scalar_type().intern(), name);
                assertEquals(torch.ScalarType.BFloat16, asBf16.scalar_type().intern(), name + " read for a bf16 model");
                assertEquals(torch.ScalarType.Float, asHalf.scalar_type().intern(), name + ": not stored as fp16, so float32");
                assertArrayEquals(HostTensor.of(asFloat).floats(), HostTensor.of(asBf16.to(torch.ScalarType.Float)).floats(), name);
                n++;
            }
            assertTrue(n > 10, "the fixture's tensors: " + n);
        }
    }

    /** The bf16 model of the fixture gives the logits of the float32 model rounded weight by weight: the same weights. */
    @Test
    void bf16ModelHasTheFilesWeights() throws Exception {
        Path dir = FamilyFixtures.modelDir("llama");
        try (HookedTransformer bf16 = HookedTransformer.fromPretrained(dir, WeightProcessing.NONE,
                org.autocircuit.kernels.Device.CPU, torch.ScalarType.BFloat16);
             HookedTransformer f32 = HookedTransformer.fromPretrained(dir);
             PointerScope scope = new PointerScope()) {
            assertEquals(torch.ScalarType.BFloat16, bf16.dtype());
            Tensor tokens = torch.arange(new Scalar(1), new Scalar(13)).reshape(2, 6);
            Tensor a = bf16.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);
            assertEquals(torch.ScalarType.BFloat16, a.scalar_type().intern(), "activations in bf16");
            Tensor b = f32.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);
            // bf16 activations round every step: close to the float32 model, not equal
            float max = HostTensor.of(b.abs().max()).floats()[0];
            org.autocircuit.testing.TensorAsserts.assertClose(b, a.to(torch.ScalarType.Float), 0.1 * max,
                "bf16 vs float32 logits");
        }
    }

    /**
     * A fresh JVM builds a Llama-shaped model of 94 M parameters in bfloat16 from a float32 source: its resident
     * memory grows by less than 1.5 times the bf16 weights (189 MB; the model also keeps its Q/K/V weights a second
     * time in one matrix per block, 25 MB; measured 226 MB). Building the float32 model first and converting it, as
     * loading did before, grows it by 3.6 times (680 MB). glibc is told to map every allocation of 1 MiB or more on
     * its own ({@code MALLOC_MMAP_THRESHOLD_}), so that a freed per-tensor float32 buffer leaves the resident set at
     * once: with its default, moving threshold it keeps some of them (1.8 to 2.2 times, varying from run to run),
     * which is the allocator's retention, not what the build holds.
     */
    @Test
    void bf16BuildPeakStaysNearTheBf16Weights(@TempDir Path tmp) throws Exception {
        Path log = tmp.resolve("child.log");
        Process p = ChildJvm.start(log, java.util.Map.of("MALLOC_MMAP_THRESHOLD_", "1048576"), PeakMain.class);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child finished: " + ChildJvm.output(log));
        String out = ChildJvm.output(log);
        assertEquals(0, p.exitValue(), out);
        Matcher m = Pattern.compile("weights=(\\d+) growth=(\\d+)").matcher(out);
        assertTrue(m.find(), out);
        long weights = Long.parseLong(m.group(1)), growth = Long.parseLong(m.group(2));
        assertTrue(weights > 150_000_000L, "bf16 weight bytes " + weights);
        assertTrue(growth < 1.5 * weights, "peak RSS growth " + growth / 1_000_000 + " MB while building "
            + weights / 1_000_000 + " MB of bf16 weights (must stay below 1.5×)");
    }

    /** The child of {@link #bf16BuildPeakStaysNearTheBf16Weights}: prints the bf16 weight bytes and the peak RSS growth. */
    public static final class PeakMain {
        public static void main(String[] args) throws Exception {
            ModelConfig cfg = new ModelConfig("LlamaForCausalLM", 8, 1024, 16, 4, 64, 2816, 4096, 2048, 1e-5,
                ModelConfig.Norm.RMS_NORM, ModelConfig.ActFn.SILU, false, false, true, true, 1,
                new ModelConfig.Rotary(64, 500000.0, new ModelConfig.NoScaling()), ModelConfig.Biases.NONE);
            long params = 4096L * 1024 + 8L * (1024 * 1024 * 2 + 2L * 1024 * 256 + 3L * 1024 * 2816 + 2 * 1024) + 1024;
            try (PointerScope warm = new PointerScope()) {
                torch.randn(new long[] {64, 64}).matmul(torch.randn(new long[] {64, 64}));   // libtorch loaded
            }
            long before = status("VmRSS");
            torch.manual_seed(0);
            try (HookedTransformer model = HookedTransformer.fromWeights(cfg, (name, shape) ->
                    name.contains("norm") ? torch.ones(shape) : torch.randn(shape).mul(new Scalar(0.02)),
                    org.autocircuit.kernels.Device.CPU, torch.ScalarType.BFloat16)) {
                long peak = status("VmHWM");
                System.out.println("weights=" + 2 * params + " growth=" + (peak - before));
            }
        }

        /** A /proc/self/status field in bytes. */
        private static long status(String field) throws Exception {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith(field + ":")) return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
            throw new IllegalStateException("no " + field);
        }
    }
}
