package org.autocircuit.model;

import java.io.IOException;
import org.bytedeco.pytorch.Tensor;

/**
 * Supplies a checkpoint's tensors by their Hugging Face name, as float tensors of the expected shape, created in
 * the caller's current {@code PointerScope}: a {@link Checkpoint} (one file or shards), in-memory training weights,
 * or random initialisation.
 */
@FunctionalInterface
public interface WeightSource {

    /**
     * @param name  the checkpoint's tensor name ({@code "model.layers.0.self_attn.q_proj.weight"})
     * @param shape the shape config.json implies
     * @throws IllegalArgumentException naming the file and tensor when it is missing or shaped otherwise
     */
    Tensor load(String name, long... shape) throws IOException;

    /** Whether the checkpoint holds {@code name} (for optional tensors such as an untied {@code lm_head}). */
    default boolean has(String name) {
        return true;
    }

    /** An optional tensor (the unembedding bias, which GPT-2 checkpoints lack): null when the source has none. */
    default Tensor loadIfPresent(String name, long... shape) throws IOException {
        return null;
    }
}
