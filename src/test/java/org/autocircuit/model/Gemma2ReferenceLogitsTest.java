package org.autocircuit.model;

import java.io.IOException;
import org.autocircuit.testing.FamilyReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The Gemma-2 fixture (attention and final logit soft-capping, norms after attention and MLP, a sliding-window layer
 * then a full one, embeddings scaled by sqrt(d_model), query_pre_attn_scalar 24 instead of d_head, gains stored as
 * 1 + weight) against Hugging Face's eager logits.
 */
@Tag("golden")
class Gemma2ReferenceLogitsTest {
    @Test
    void bf16WeightsMatchHuggingFace() throws IOException {
        FamilyReference.check("gemma2", "model", "reference_logits.json");
    }

    /** Left-padded prompts of 7 to 15 tokens with the sliding window: Hugging Face's last-position logits. */
    @Test
    void leftPaddedPromptsMatchHuggingFace() throws IOException {
        FamilyReference.checkPadded("gemma2", "model", "reference_logits_padded.json");
    }
}
