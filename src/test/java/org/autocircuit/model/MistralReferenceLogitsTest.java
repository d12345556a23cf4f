package org.autocircuit.model;

import java.io.IOException;
import org.autocircuit.testing.FamilyReference;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * The Mistral fixture (sliding-window attention with a window of 4, shorter than the 15-token prompts; GQA; untied
 * unembedding) against Hugging Face's eager logits, from one {@code model.safetensors} and from two shards with
 * {@code model.safetensors.index.json}. Skips, saying so, only while the model loader does not support
 * {@code MistralForCausalLM} (see {@link FamilyReference}).
 */
@Tag("golden")
class MistralReferenceLogitsTest {
    @Test
    void singleFileMatchesHuggingFace() throws IOException {
        FamilyReference.check("mistral", "model", "reference_logits.json");
    }

    @Test
    void twoShardsMatchHuggingFace() throws IOException {
        FamilyReference.check("mistral", "model-sharded", "reference_logits.json");
    }
}
