package org.autocircuit.model;

import java.io.IOException;
import org.autocircuit.testing.FamilyReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The Mistral fixture (GQA, untied unembedding) against Hugging Face's eager logits: without a sliding window from one
 * {@code model.safetensors} and from two shards with {@code model.safetensors.index.json}, and with a sliding window
 * of 4 tokens, shorter than the 15-token prompts (every query attends to itself and the 3 tokens before it).
 */
@Tag("golden")
class MistralReferenceLogitsTest {
    @Test
    void noWindowMatchesHuggingFace() throws IOException {
        FamilyReference.check("mistral", "model-no-window", "reference_logits_no_window.json");
    }

    @Test
    void twoShardsMatchHuggingFace() throws IOException {
        FamilyReference.check("mistral", "model-sharded", "reference_logits_no_window.json");
    }

    @Test
    void slidingWindowOfFourMatchesHuggingFace() throws IOException {
        FamilyReference.checkSlidingWindow("mistral", "model", "reference_logits.json");
    }

    /** Left-padded prompts of 7 to 15 tokens with the sliding window: Hugging Face's last-position logits. */
    @Test
    void leftPaddedPromptsMatchHuggingFace() throws IOException {
        FamilyReference.checkPadded("mistral", "model", "reference_logits_padded.json");
    }
}
