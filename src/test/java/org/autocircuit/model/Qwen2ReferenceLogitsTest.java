package org.autocircuit.model;

import java.io.IOException;
import org.autocircuit.testing.FamilyReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The Qwen2 fixture (q/k/v biases, tied embeddings, rope_theta 1e6, embedding padded beyond the tokenizer) against
 * Hugging Face's eager logits.
 */
@Tag("golden")
class Qwen2ReferenceLogitsTest {
    @Test
    void bf16WeightsMatchHuggingFace() throws IOException {
        FamilyReference.check("qwen2", "model", "reference_logits.json");
    }

    /** The same model stored in float16, with its own reference (rounding to fp16 changes a few tiny weights). */
    @Test
    void fp16WeightsMatchHuggingFace() throws IOException {
        FamilyReference.check("qwen2", "model-fp16", "reference_logits_fp16.json");
    }
}
