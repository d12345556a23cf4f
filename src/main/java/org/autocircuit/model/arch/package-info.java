/**
 * One adapter per Hugging Face architecture ({@link org.autocircuit.model.arch.Gpt2},
 * {@link org.autocircuit.model.arch.NeoX}, {@link org.autocircuit.model.arch.Llama},
 * {@link org.autocircuit.model.arch.Mistral}, {@link org.autocircuit.model.arch.Qwen2}, {@link org.autocircuit.model.arch.Gemma2}): which {@code config.json}
 * fields give the {@link org.autocircuit.model.ModelConfig} and which checkpoint tensors give the
 * TransformerLens-layout weights. The forward pass itself is the one generic
 * {@link org.autocircuit.model.HookedTransformer}; {@link org.autocircuit.model.arch.Architectures} lists the adapters.
 */
package org.autocircuit.model.arch;
