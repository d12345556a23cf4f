package org.autocircuit.model.arch;

import static org.autocircuit.testing.TensorAsserts.assertClose;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.model.HookPoints;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.KvCache;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.Inputs;
import org.autocircuit.testing.FamilyFixtures;
import org.autocircuit.testing.Fixtures;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.Tensor;
import org.bytedeco.pytorch.TensorOptions;
import org.bytedeco.pytorch.TensorVector;
import org.bytedeco.pytorch.global.torch;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The passes the fast paths use, on rotary models (the Llama, NeoX, Mistral with a 4-token sliding window and Gemma-2
 * fixtures), against the plain whole pass: rotary positions and sliding windows must follow left padding, a cached
 * prefix, a restart at a later block and a last block trimmed to the last position exactly as they follow the whole
 * prompt. (Hugging Face's reference logits cover unpadded prompts only; this is what holds the window under padding.)
 */
class FamilyInvariantsTest {
    static PromptPairBatch batch;

    @BeforeAll
    static void load() {
        batch = Fixtures.ioi().train().batches().get(0);
    }

    private static TensorOptions longs() {
        return new TensorOptions(torch.ScalarType.Long);
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"llama", "neox", "mistral", "gemma2"})
    void fastPassesEqualTheWholePass(String family) {
        try (HookedTransformer model = FamilyFixtures.model(family); PointerScope scope = new PointerScope()) {
            // the IOI prompts' GPT-2 ids, folded into the small vocabularies of the Mistral and Gemma-2 fixtures
            Tensor tokens = Inputs.clean(batch).remainder(new Scalar(model.config().dVocab()));   // [8, 15]
            long seq = tokens.size(1);
            Tensor full = model.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);           // [8, 15, V]
            Tensor last = full.select(1, seq - 1);

            // left padding: positions restart at the first real token
            Tensor pads = torch.full(new long[] {8, 3}, new Scalar(model.config().dVocab() - 1L), longs());
            Tensor padded = torch.cat(new TensorVector(pads, tokens), 1);                          // [8, 18]
            Tensor mask = torch.cat(new TensorVector(torch.zeros(new long[] {8, 3}, longs()),
                torch.ones(new long[] {8, seq}, longs())), 1);
            assertClose(last, model.forward(padded, mask, HookPoints.NONE, OutputSlice.LAST_SEQ), 1e-4,
                family + ": padded vs unpadded last position");

            // the explicit attention pattern (hooks that observe it) vs the fused kernel
            HookPoints observing = (name, value) -> value;
            assertClose(full, model.forward(tokens, null, observing, OutputSlice.ALL), 1e-4, family + ": pattern path");

            // a frozen cache of a prefix: the tail's positions continue after it
            int prefix = 4;
            try (KvCache cache = model.buildKvCache(tokens.narrow(1, 0, prefix).contiguous(), null)) {
                Tensor tail = model.forward(tokens.narrow(1, prefix, seq - prefix).contiguous(), null, cache,
                    HookPoints.NONE, OutputSlice.ALL, null);
                assertClose(full.narrow(1, prefix, seq - prefix), tail, 1e-4, family + ": cached prefix");
            }

            // restart at block 1 from the recorded residual stream, and the last block trimmed to the last position
            Tensor[] residPre = new Tensor[model.nLayers()];
            model.forward(tokens, mask.narrow(1, 3, seq).contiguous(), null, HookPoints.NONE, OutputSlice.ALL, residPre);
            Tensor restarted = model.forwardFromBlock(1, residPre[1], null, null, HookPoints.NONE, OutputSlice.ALL);
            assertClose(full, restarted, 1e-4, family + ": restart at block 1");
            Tensor trimmed = model.unembed(model.residualFromBlock(1, residPre[1], null, null, HookPoints.NONE,
                OutputSlice.LAST_SEQ, true));
            assertClose(last, trimmed, 1e-4, family + ": last block on the last position only");
            Tensor trimmedPadded = model.unembed(model.forwardResidual(padded, mask, null, HookPoints.NONE,
                OutputSlice.LAST_SEQ, null, true));
            assertClose(last, trimmedPadded, 1e-4, family + ": padded, last block on the last position only");
        }
    }

    /** A random model of every rope scaling type and bias pattern runs, and scaling changes only long-range angles. */
    @Test
    void ropeScalingAndQwenBiasesRun() throws Exception {
        for (ModelConfig.RopeScaling scaling : new ModelConfig.RopeScaling[] {new ModelConfig.NoScaling(),
                new ModelConfig.LinearScaling(4), new ModelConfig.Llama3Scaling(8, 1, 4, 32)}) {
            ModelConfig cfg = new ModelConfig("Qwen2ForCausalLM", 2, 32, 4, 2, 8, 48, 100, 64, 1e-6,
                ModelConfig.Norm.RMS_NORM, ModelConfig.ActFn.SILU, false, false, true, true, 1,
                new ModelConfig.Rotary(8, 1e6, scaling), new ModelConfig.Biases(true, false, false));
            try (HookedTransformer model = HookedTransformer.randomInit(cfg, 0, 0.2); PointerScope scope = new PointerScope()) {
                Tensor tokens = torch.arange(new Scalar(10)).reshape(1, 10);
                Tensor out = model.forward(tokens, null, HookPoints.NONE, OutputSlice.ALL);
                assertEquals(100, out.size(2));
                try (KvCache cache = model.buildKvCache(tokens.narrow(1, 0, 3).contiguous(), null)) {
                    assertClose(out.narrow(1, 3, 7), model.forward(tokens.narrow(1, 3, 7).contiguous(), null, cache,
                        HookPoints.NONE, OutputSlice.ALL, null), 1e-4, scaling + ": cached prefix");
                }
            }
        }
    }
}
