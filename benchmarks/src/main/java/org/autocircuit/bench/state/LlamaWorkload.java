package org.autocircuit.bench.state;

import java.io.IOException;
import java.util.List;
import org.autocircuit.data.PromptPairBatch;
import org.autocircuit.graph.GqaLayout;
import org.autocircuit.kernels.Kernels;
import org.autocircuit.model.HookedTransformer;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.model.OutputSlice;
import org.autocircuit.patching.PatchableModel;
import org.autocircuit.tasks.Datasets;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.LoaderOptions;
import org.bytedeco.pytorch.Scalar;
import org.bytedeco.pytorch.global.torch;

/**
 * The model and prompts of workloads W5/W6: a random model of Llama-3.2-1B's shape (16 layers, d_model 2048, 32 query
 * and 8 key/value heads of 64, gated SiLU MLP of 8192, RMSNorm, rotary with rope_theta 5·10⁵ and llama3 scaling, tied
 * unembedding, the real vocabulary of 128,256 rows; 1.24 billion parameters), its weights drawn normal(0, 0.02) and
 * rounded to bf16 (as a bf16 checkpoint holds them), held and computed in float32 (about 5 GB) or in bfloat16 (2.5 GB),
 * seed 0; the 32 IOI prompts of datasets/ioi-32.json (GPT-2 token ids, all below the vocabulary size) in
 * batches of {@code batchSize}; the factorized graph with Q/K/V split in the given grouped-query layout (386,713 edges
 * ungrouped, 195,865 grouped), last position.
 */
public final class LlamaWorkload implements AutoCloseable {
    public static final int VOCAB = 128256;

    public static ModelConfig config(int vocab) {
        return new ModelConfig("LlamaForCausalLM", 16, 2048, 32, 8, 64, 8192, vocab, 131072, 1e-5,
            ModelConfig.Norm.RMS_NORM, ModelConfig.ActFn.SILU, false, false, true, true, vocab > 128000 ? 128000 : 0,
            new ModelConfig.Rotary(64, 500000.0, new ModelConfig.Llama3Scaling(32, 1, 4, 8192)),
            ModelConfig.Biases.NONE);
    }

    public final PatchableModel model;
    public final List<PromptPairBatch> batches;

    public LlamaWorkload(GqaLayout layout, int batchSize, Kernels kernels) throws IOException {
        this(layout, batchSize, kernels, torch.ScalarType.Float, 32);
    }

    /**
     * @param dtype   the weights' and activations' dtype: float32 (the bf16 values held as float32, about 5 GB) or
     *                bfloat16 (2.5 GB)
     * @param prompts the first {@code prompts} of the 32 IOI prompts
     */
    public LlamaWorkload(GqaLayout layout, int batchSize, Kernels kernels, torch.ScalarType dtype, int prompts)
            throws IOException {
        if (prompts < 1 || prompts > 32) throw new IllegalArgumentException("prompts must be 1..32, got " + prompts);
        LoaderOptions options = LoaderOptions.builder().prependBos(true).batchSize(batchSize).trainTestSize(32, 0)
            .returnSeqLength(false).tailDivergence(false).shuffle(false).randomSeed(42).pad(true).build();
        List<PromptPairBatch> all = Datasets.load(Gpt2SmallWorkload.datasetPath(), options, new Gpt2Tokenizer()).train().batches();
        List<PromptPairBatch> kept = new java.util.ArrayList<>();
        int left = prompts;
        for (PromptPairBatch b : all) {
            if (left == 0) break;
            kept.add(b.batchSize() <= left ? b : b.rows(0, left));
            left -= Math.min(left, b.batchSize());
        }
        this.batches = List.copyOf(kept);
        long start = System.nanoTime();
        this.model = PatchableModel.of(randomBf16(config(VOCAB), dtype), true, OutputSlice.LAST_SEQ, null, true, layout,
            kernels);
        System.out.printf("LlamaWorkload: %s model built in %.1f s, %d edges (%s), %d prompts, peak RSS so far %d MB%n",
            dtype, (System.nanoTime() - start) / 1e9, model.graph().nEdges(), layout, prompts, Gpt2SmallWorkload.peakRssMb());
    }

    /**
     * Random weights rounded to bf16 (norm gains 1), drawn one tensor at a time in float32 and handed over as bf16;
     * the model keeps them in {@code dtype}, converting each as it is built.
     */
    public static HookedTransformer randomBf16(ModelConfig cfg, torch.ScalarType dtype) throws IOException {
        torch.manual_seed(0);
        return HookedTransformer.fromWeights(cfg, (name, shape) -> {
            if (name.contains("norm")) return torch.ones(shape);
            // created in the loader's per-tensor scope, which frees the intermediates once the weight is converted
            return torch.randn(shape).mul(new Scalar(0.02)).to(torch.ScalarType.BFloat16);
        }, org.autocircuit.kernels.Device.CPU, dtype);
    }

    @Override
    public void close() {
        model.close();
    }
}
