package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.List;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;

/**
 * One Hugging Face architecture: which {@code config.json} fields give the {@link ModelConfig}, and which checkpoint
 * tensors, reshaped how, give the TransformerLens-layout {@link TransformerWeights}. Nothing else: the forward pass
 * is {@link org.autocircuit.model.HookedTransformer}'s, chosen by the config. Adding a family is adding one
 * implementation and listing it in {@link Architectures}.
 */
public interface Architecture {

    /** The names {@code config.json}'s {@code architectures} field uses ({@code "LlamaForCausalLM"}). */
    List<String> names();

    /** The {@code model_type} that identifies the architecture when {@code architectures} is absent. */
    String modelType();

    /** Reads the config; {@code architecture} of the result is {@code name}. */
    ModelConfig config(ConfigJson json, String name);

    /**
     * Loads and converts the weights. Each tensor is converted in a scope of its own, so the checkpoint's tensor and
     * its converted copy never both stay alive past one tensor. The results are created in the caller's scope.
     */
    TransformerWeights weights(ModelConfig cfg, WeightSource source) throws IOException;
}
