package org.autocircuit.tasks;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.autocircuit.model.OutputSlice;

/**
 * Every task of AutoCircuit's {@code TASKS} list, in its order, plus the tasks of this port.
 *
 * <p>The pretrained models cannot be downloaded here: each task names a folder under the user's models root
 * ({@code --models-root}, default {@code models/}) and says what it must hold. The prompts are this repository's
 * own datasets where a generator exists ({@code ioi.json}, {@code greater-than.json}, {@code docstring.json}, see
 * {@code autocircuit generate}); other tasks name AutoCircuit's file, which the user supplies under
 * {@code datasets/}. Tasks this port cannot run say why ({@link Task#unsupported()}): Pythia (GPT-NeoX) models,
 * tracr models, the attention-only docstring model (its own tokenizer) and sparse-autoencoder tasks.
 *
 * <p>Adding a task is one entry in {@link #ALL}.
 */
public final class Tasks {

    private static final String GPT2 = "GPT-2 small (124M) in Hugging Face format: config.json and model.safetensors, "
        + "e.g. the files of huggingface.co/gpt2";
    private static final String PYTHIA = "this port loads GPT-2-architecture models only; Pythia (GPT-NeoX) is not "
        + "supported";
    private static final String SAE = "needs sparse autoencoders, which this port does not implement";
    private static final String TRACR = "tracr models are compiled from RASP programs by the Python tracr library, "
        + "which this port does not have";
    private static final String ATTN_ONLY = "attn-only-4l uses its own tokenizer (not GPT-2's) and TransformerLens-only "
        + "weights, which this port cannot load";

    /** Every task, in AutoCircuit's order, then this port's. */
    public static final List<Task> ALL = List.of(
        Task.builder("sports-token", "Sports Players").autocircuitKey("Sports Players Token Circuit")
            .model("pythia-2.8b-deduped", "pythia-2.8b-deduped", "pythia-2.8b-deduped in Hugging Face format")
            .dataset("sports-players/sports_players_pythia-2.8b-deduped_prompts.json").batch(10, 20, 10, 5)
            .tokenCircuit(true).separateQkv(false).officialCircuit("sports-players").unsupported(PYTHIA).build(),
        Task.builder("sports-component", "Sports Players").autocircuitKey("Sports Players Component Circuit")
            .model("pythia-2.8b-deduped", "pythia-2.8b-deduped", "pythia-2.8b-deduped in Hugging Face format")
            .dataset("sports-players/sports_players_pythia-2.8b-deduped_prompts.json").batch(15, 7)
            .separateQkv(false).officialCircuit("sports-players").unsupported(PYTHIA + " (and AutoCircuit runs it in "
                + "bfloat16)").build(),
        Task.builder("ioi-token", "Indirect Object Identification")
            .autocircuitKey("Indirect Object Identification Token Circuit").model("gpt2-small", "gpt2", GPT2)
            .dataset("ioi.json").batch(300, 100, 1, 1).tokenCircuit(true).officialCircuit("ioi-heads").build(),
        Task.builder("ioi-component", "Indirect Object Identification")
            .autocircuitKey("Indirect Object Identification Component Circuit").model("gpt2-small", "gpt2", GPT2)
            .dataset("ioi.json").batch(64, 2).officialCircuit("ioi").build(),
        Task.builder("ioi-gpt2-autoencoder", "Indirect Object Identification")
            .autocircuitKey("Indirect Object Identification GPT2 Autoencoder Component Circuit")
            .model("gpt2-small", "gpt2", GPT2).dataset("ioi.json").batch(1, 2).unsupported(SAE).build(),
        Task.builder("docstring-token", "Docstring").autocircuitKey("Docstring Token Circuit")
            .model("attn-only-4l", "attn-only-4l", "attn-only-4l (Attn_Only_4L512W_C4_Code)")
            .dataset("docstring.json").batch(128, 2).tokenCircuit(true).officialCircuit("docstring-heads")
            .unsupported(ATTN_ONLY).build(),
        Task.builder("docstring-component", "Docstring").autocircuitKey("Docstring Component Circuit")
            .model("attn-only-4l", "attn-only-4l", "attn-only-4l (Attn_Only_4L512W_C4_Code)")
            .dataset("docstring.json").batch(128, 2).officialCircuit("docstring").unsupported(ATTN_ONLY).build(),
        Task.builder("greater-than-component", "Greaterthan").autocircuitKey("Greaterthan Component Circuit")
            .model("gpt2-small", "gpt2", GPT2).dataset("greater-than.json").batch(64, 2).officialCircuit("greater-than")
            .build(),
        Task.builder("greater-than-gpt2-autoencoder", "Greaterthan")
            .autocircuitKey("Greaterthan GPT2 Autoencoder Component Circuit").model("gpt2-small", "gpt2", GPT2)
            .dataset("greater-than.json").batch(1, 2).unsupported(SAE).build(),
        Task.builder("animal-diet-gpt2-autoencoder", "Animal Diet")
            .autocircuitKey("Animal Diet GPT2 Autoencoder Component Circuit").model("gpt2-small", "gpt2", GPT2)
            .dataset("animal_diet_short_prompts.json").batch(2, 16).unsupported(SAE).build(),
        Task.builder("capital-cities-pythia-70m-autoencoder", "Capital Cities")
            .autocircuitKey("Capital Cities Pythia 70M Deduped Autoencoder Component Circuit")
            .model("pythia-70m-deduped", "pythia-70m-deduped", "pythia-70m-deduped in Hugging Face format")
            .dataset("capital_cities_pythia-70m-deduped_prompts.json").batch(2, 4).tokenCircuit(true)
            .unsupported(SAE + "; " + PYTHIA).build(),
        Task.builder("tracr-xproportion-token", "Tracr xproportion").autocircuitKey("Tracr xproportion Token Circuit")
            .model("tracr-xproportion", "tracr-xproportion", "the compiled tracr x-proportion program")
            .dataset("tracr/tracr_xproportion_len_5_prompts.json").batch(64, 8).tokenCircuit(true)
            .slice(OutputSlice.NOT_FIRST_SEQ).officialCircuit("tracr-xproportion").unsupported(TRACR).build(),
        Task.builder("tracr-reverse-token", "Tracr reverse").autocircuitKey("Tracr reverse Token Circuit")
            .model("tracr-reverse", "tracr-reverse", "the compiled tracr reverse program")
            .dataset("tracr/tracr_reverse_len_5_prompts.json").batch(11, 11).tokenCircuit(true)
            .slice(OutputSlice.NOT_FIRST_SEQ).officialCircuit("tracr-reverse").unsupported(TRACR).build(),
        // This port's tasks: they run out of the box on bundled models.
        Task.builder("induction-2l", "Induction on the bundled 2-layer attention-only model")
            .bundledModel("models/induction-2l").tokenizer("auto").dataset("induction.json").batch(32, 2)
            .officialCircuit("induction-2l").build(),
        Task.builder("ioi-tiny", "IOI on the bundled tiny model").bundledModel("models/gpt2-tiny-random")
            .dataset("ioi-32.json").batch(8, 2).build());

    private static final Map<String, Task> BY_KEY = index();

    private Tasks() {
    }

    private static Map<String, Task> index() {
        Map<String, Task> m = new LinkedHashMap<>();
        for (Task t : ALL) {
            for (String k : new String[] {t.key(), t.autocircuitKey()}) {
                Task old = m.put(k.toLowerCase(Locale.ROOT), t);
                if (old != null && old != t) throw new IllegalStateException("duplicate task key " + k);
            }
        }
        return m;
    }

    /**
     * The task with this key (ours, e.g. {@code ioi-token}, or AutoCircuit's, e.g. {@code "Indirect Object
     * Identification Token Circuit"}), case-insensitive.
     *
     * @throws IllegalArgumentException listing the valid keys
     */
    public static Task byKey(String key) {
        Task t = key == null ? null : BY_KEY.get(key.trim().toLowerCase(Locale.ROOT));
        if (t == null) throw new IllegalArgumentException("unknown task '" + key + "'; valid: " + keys());
        return t;
    }

    /** Our keys, in listing order. */
    public static List<String> keys() {
        List<String> out = new ArrayList<>();
        for (Task t : ALL) out.add(t.key());
        return out;
    }
}
