package org.autocircuit.model.arch;

import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.TransformerWeights;
import org.autocircuit.model.WeightSource;
import org.bytedeco.javacpp.PointerScope;
import org.bytedeco.pytorch.global.torch;

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

    /**
     * The checkpoint tensors {@link #weights} reads for {@code cfg}, with their shapes, in the order it reads them: the
     * weight-name map as data (what the trainer creates and saves). Found by running {@link #weights} on zeros.
     */
    default Map<String, long[]> tensorShapes(ModelConfig cfg) {
        Map<String, long[]> shapes = new LinkedHashMap<>();
        try (PointerScope scope = new PointerScope()) {
            weights(cfg, (name, shape) -> {
                shapes.put(name, shape.clone());
                return torch.zeros(shape);
            });
        } catch (IOException e) {
            throw new AssertionError("zeros do no I/O", e);
        }
        return shapes;
    }
}
