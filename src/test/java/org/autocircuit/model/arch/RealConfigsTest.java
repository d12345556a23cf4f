package org.autocircuit.model.arch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.autocircuit.graph.Graph;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.testing.Fixtures;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The config.json files of real checkpoints (src/test/resources/configs, the public Hugging Face values: Pythia-70m,
 * Pythia-160m, Llama-3.2-1B, Qwen2.5-0.5B, Mistral-7B-v0.1, Gemma-2-2B) read by their adapters, and the edge counts of their
 * factorized graphs (separate Q/K/V, component level) in both grouped-query layouts, against a closed form computed
 * here: every destination reads every source of an earlier graph layer.
 */
class RealConfigsTest {

    /**
     * Edges of the factorized graph: per block, each Q/K/V destination reads the {@code 1 + b·(H+1)} sources of the
     * earlier blocks (residual start, H heads and the MLP each), the MLP those plus its own block's H heads unless
     * attention and MLP run in parallel, and the final residual reads all {@code 1 + L·(H+1)}.
     */
    static long closedForm(int layers, int heads, int kvDestHeads, boolean parallel) {
        long edges = 0;
        for (int b = 0; b < layers; b++) {
            long earlier = 1 + (long) b * (heads + 1);
            edges += (heads + 2L * kvDestHeads) * earlier + (parallel ? earlier : earlier + heads);
        }
        return edges + 1 + (long) layers * (heads + 1);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        // config,         architecture,       layers, heads, kv, dHead, rotaryDim, parallel, tied, ungrouped, grouped
        "pythia-70m,       GPTNeoXForCausalLM,  6,  8,  8,  64, 16,  true, false, 3580,    3580",
        "pythia-160m,      GPTNeoXForCausalLM, 12, 12, 12,  64, 16,  true, false, 32347,   32347",
        "llama-3.2-1b,     LlamaForCausalLM,   16, 32,  8,  64, 64, false, true,  386713,  195865",
        "qwen2.5-0.5b,     Qwen2ForCausalLM,   24, 14,  2,  64, 64, false, true,  179749,  79813",
        "mistral-7b,       MistralForCausalLM, 32, 32,  8, 128, 128, false, false, 1592881, 805681",
        "gemma-2-2b,       Gemma2ForCausalLM,  26,  8,  4, 256, 256, false, true,  74218,   50610"})
    void adaptersReadRealConfigsAndGraphsHaveTheClosedFormEdgeCounts(String name, String arch, int layers, int heads,
            int kv, int dHead, int rotaryDim, boolean parallel, boolean tied, int ungrouped, int grouped) throws Exception {
        ModelConfig cfg = ModelConfig.fromHuggingFace(Fixtures.resource("configs/" + name + ".json"));
        assertEquals(arch, cfg.architecture());
        assertEquals(layers, cfg.nLayers());
        assertEquals(heads, cfg.nHeads());
        assertEquals(kv, cfg.nKvHeads());
        assertEquals(dHead, cfg.dHead());
        assertEquals(parallel, cfg.parallelAttnMlp());
        assertEquals(tied, cfg.tiedUnembed());
        ModelConfig.Rotary rotary = assertInstanceOf(ModelConfig.Rotary.class, cfg.positions());
        assertEquals(rotaryDim, rotary.rotaryDim());
        Graph u = Graph.transformerFactorized(cfg.shape(), true, null);
        Graph g = Graph.transformerFactorized(cfg.shape().withKvDestHeads(cfg.nKvHeads()), true, null);
        assertEquals(closedForm(layers, heads, heads, parallel), u.nEdges(), name + " ungrouped, closed form");
        assertEquals(closedForm(layers, heads, kv, parallel), g.nEdges(), name + " grouped, closed form");
        assertEquals(ungrouped, u.nEdges(), name + " ungrouped (the figure in docs/models.md)");
        assertEquals(grouped, g.nEdges(), name + " grouped (the figure in docs/models.md)");
    }

    @Test
    void gpt2SmallClosedFormIsTheKnownCount() {
        assertEquals(32491, closedForm(12, 12, 12, false));   // README's W1 graph
    }

    @Test
    void familySpecificFieldsAreRead() throws Exception {
        ModelConfig llama = ModelConfig.fromHuggingFace(Fixtures.resource("configs/llama-3.2-1b.json"));
        ModelConfig.Rotary r = (ModelConfig.Rotary) llama.positions();
        assertEquals(500000.0, r.theta());
        assertEquals(new ModelConfig.Llama3Scaling(32, 1, 4, 8192), r.scaling());
        assertEquals(ModelConfig.Norm.RMS_NORM, llama.norm());
        assertTrue(llama.gatedMlp());
        assertEquals(ModelConfig.Biases.NONE, llama.biases());
        ModelConfig qwen = ModelConfig.fromHuggingFace(Fixtures.resource("configs/qwen2.5-0.5b.json"));
        assertEquals(new ModelConfig.Biases(true, false, false), qwen.biases());
        assertEquals(1e6, ((ModelConfig.Rotary) qwen.positions()).theta());
        ModelConfig mistral = ModelConfig.fromHuggingFace(Fixtures.resource("configs/mistral-7b.json"));
        assertEquals(32768, mistral.nCtx(), "the full context");
        assertEquals(4096, mistral.extras().slidingWindow(), "a sliding window in every block");
        assertTrue(mistral.extras().windowed(0) && mistral.extras().windowed(31));
        ModelConfig gemma = ModelConfig.fromHuggingFace(Fixtures.resource("configs/gemma-2-2b.json"));
        ModelConfig.Extras g = gemma.extras();
        assertEquals(new ModelConfig.Extras(4096, gemmaAlternating(26), 50.0, 30.0, 256, true, true), g);
        assertTrue(g.windowed(0) && !g.windowed(1) && g.windowed(24) && !g.windowed(25), "even blocks windowed");
        assertEquals(ModelConfig.ActFn.GELU_NEW, gemma.actFn(), "gelu_pytorch_tanh is the tanh approximation");
        assertTrue(gemma.gatedMlp());
        assertEquals(2, gemma.bosTokenId());
        ModelConfig pythia = ModelConfig.fromHuggingFace(Fixtures.resource("configs/pythia-70m.json"));
        assertEquals(ModelConfig.Norm.LAYER_NORM, pythia.norm());
        assertEquals(ModelConfig.ActFn.GELU, pythia.actFn());
        assertEquals(ModelConfig.Biases.ALL, pythia.biases());
    }

    private static java.util.List<Boolean> gemmaAlternating(int layers) {
        java.util.List<Boolean> out = new java.util.ArrayList<>();
        for (int i = 0; i < layers; i++) out.add(i % 2 == 0);
        return out;
    }

    @Test
    void badConfigsNameFileAndField(@TempDir Path dir) throws Exception {
        String llama = Files.readString(Fixtures.resource("configs/llama-3.2-1b.json"));
        Path rope = dir.resolve("rope.json");
        Files.writeString(rope, llama.replace("\"llama3\"", "\"yarn\""));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(rope));
        assertTrue(e.getMessage().contains("rope.json") && e.getMessage().contains("rope_scaling.rope_type")
            && e.getMessage().contains("llama3"), e.getMessage());

        Path kv = dir.resolve("kv.json");
        Files.writeString(kv, llama.replace("\"num_key_value_heads\": 8", "\"num_key_value_heads\": 5"));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(kv));
        assertTrue(e.getMessage().contains("kv.json") && e.getMessage().contains("num_key_value_heads"), e.getMessage());

        Path missing = dir.resolve("missing.json");
        Files.writeString(missing, llama.replace("\"hidden_size\": 2048,", ""));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(missing));
        assertTrue(e.getMessage().contains("missing.json") && e.getMessage().contains("hidden_size"), e.getMessage());

        String gemma = Files.readString(Fixtures.resource("configs/gemma-2-2b.json"));
        Path types = dir.resolve("types.json");
        Files.writeString(types, gemma.replace("\"sliding_window\": 4096,",
            "\"sliding_window\": 4096, \"layer_types\": [\"sliding_attention\", \"full_attention\"],"));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(types));
        assertTrue(e.getMessage().contains("types.json") && e.getMessage().contains("'layer_types'")
            && e.getMessage().contains("26"), e.getMessage());
        Path cap = dir.resolve("cap.json");
        Files.writeString(cap, gemma.replace("\"attn_logit_softcapping\": 50.0", "\"attn_logit_softcapping\": -1"));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(cap));
        assertTrue(e.getMessage().contains("cap.json") && e.getMessage().contains("'attn_logit_softcapping'"), e.getMessage());
        Path window = dir.resolve("window.json");
        Files.writeString(window, Files.readString(Fixtures.resource("configs/mistral-7b.json"))
            .replace("\"sliding_window\": 4096", "\"sliding_window\": \"wide\""));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(window));
        assertTrue(e.getMessage().contains("window.json") && e.getMessage().contains("'sliding_window'"), e.getMessage());

        Path arch = dir.resolve("arch.json");
        Files.writeString(arch, llama.replace("LlamaForCausalLM", "FalconForCausalLM"));
        e = assertThrows(IllegalArgumentException.class, () -> ModelConfig.fromHuggingFace(arch));
        for (String supported : Architectures.supportedNames()) assertTrue(e.getMessage().contains(supported), e.getMessage());
    }
}
