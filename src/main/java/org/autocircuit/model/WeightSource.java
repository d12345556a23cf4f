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

    /**
     * {@link #load} for a model that keeps its weights in {@code dtype}: the tensor in its stored dtype where that is
     * {@code dtype} (a checkpoint's BF16 tensor for a bfloat16 model, read straight into bfloat16), else as
     * {@link #load} gives it. By default, {@link #load}.
     */
    default Tensor loadFor(org.bytedeco.pytorch.global.torch.ScalarType dtype, String name, long... shape)
            throws IOException {
        return load(name, shape);
    }

    /**
     * A model weight made from this source's tensors, in the form the model keeps it. The adapters call it on each
     * weight inside that weight's own scope, so a model in a 16-bit dtype is converted tensor by tensor and never
     * exists in float32 as a whole. By default, the weight as it is.
     */
    default Tensor keep(Tensor weight) {
        return weight;
    }
}
