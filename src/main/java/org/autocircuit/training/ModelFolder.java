package org.autocircuit.training;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;
import org.autocircuit.model.ModelConfig;
import org.autocircuit.tasks.WordTokenizer;

/**
 * Writes a trained model as a folder that {@link org.autocircuit.model.HookedTransformer#fromPretrained} and
 * {@link org.autocircuit.tasks.Tokenizers#forModel} read: {@code config.json} (Hugging Face GPT-2 keys with
 * {@code "architectures": ["AutoCircuitTransformer"]} and {@code "attn_only": true}, plus the training recipe
 * under {@code "autocircuit_training"}), {@code model.safetensors} and the word vocabulary
 * ({@value WordTokenizer#VOCAB_FILE}).
 *
 * <p>The folder is written next to the target under a temporary name and then renamed into place, so a reader
 * never sees half a model and an interrupted run leaves the old folder intact.
 */
public final class ModelFolder {
    private ModelFolder() {}

    /** Extra facts about the run, recorded in config.json next to the recipe. */
    public record RunInfo(double seconds, double finalLoss, String command) {}

    /**
     * Writes the folder.
     *
     * @param force replace an existing {@code target}; without it an existing target is an error
     * @throws IllegalArgumentException if {@code target} exists and {@code force} is false, or is a file
     */
    public static void write(Path target, boolean force, TrainableWeights weights, TrainConfig recipe,
                             List<String> vocabulary, RunInfo run) throws IOException {
        Path abs = target.toAbsolutePath().normalize();
        if (Files.exists(abs) && !force) {
            throw new IllegalArgumentException("output folder " + target + " already exists; pass --force to replace it");
        }
        if (Files.exists(abs) && !Files.isDirectory(abs)) {
            throw new IllegalArgumentException("output " + target + " exists and is not a folder");
        }
        Path parent = abs.getParent();
        Files.createDirectories(parent);
        Path tmp = Files.createTempDirectory(parent, abs.getFileName() + ".tmp-");
        Path old = null;
        try {
            weights.save(tmp.resolve("model.safetensors"));
            Files.writeString(tmp.resolve(WordTokenizer.VOCAB_FILE), String.join("\n", vocabulary) + "\n",
                StandardCharsets.UTF_8);
            ObjectMapper mapper = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            Files.writeString(tmp.resolve("config.json"),
                mapper.writeValueAsString(configJson(weights.config(), recipe, run)) + "\n", StandardCharsets.UTF_8);
            if (Files.exists(abs)) {
                old = Files.createTempDirectory(parent, abs.getFileName() + ".old-");
                Files.delete(old);
                move(abs, old);
            }
            move(tmp, abs);
        } finally {
            deleteTree(tmp);
            if (old != null) deleteTree(old);
        }
    }

    /** The config.json object of a trained model. */
    public static ObjectNode configJson(ModelConfig cfg, TrainConfig recipe, RunInfo run) {
        ObjectNode o = new ObjectMapper().createObjectNode();
        o.putArray("architectures").add(cfg.architecture());
        o.put("model_type", "autocircuit");
        o.put("attn_only", cfg.attnOnly());
        o.put("n_layer", cfg.nLayers());
        o.put("n_embd", cfg.dModel());
        o.put("n_head", cfg.nHeads());
        o.put("vocab_size", cfg.dVocab());
        o.put("n_positions", cfg.nCtx());
        o.put("layer_norm_epsilon", cfg.lnEps());
        o.put("tie_word_embeddings", cfg.tiedUnembed());
        o.put("bos_token_id", cfg.bosTokenId());
        o.put("pad_token_id", cfg.bosTokenId());
        o.put("tokenizer", "word");
        o.put("vocab_file", WordTokenizer.VOCAB_FILE);
        ObjectNode training = o.putObject("autocircuit_training");
        training.put("task", "repeated random tokens: BOS r r, loss on the second copy of r");
        training.set("config", recipe.toJson());
        if (run != null) {
            training.put("command", run.command());
            training.put("seconds", Math.round(run.seconds() * 10) / 10.0);
            training.put("final_loss", run.finalLoss());
        }
        return o;
    }

    private static void move(Path from, Path to) throws IOException {
        try {
            Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(from, to);
        } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
            throw new IOException("cannot move " + from + " to " + to + ": the target exists", e);
        }
    }

    private static void deleteTree(Path dir) throws IOException {
        if (!Files.exists(dir)) return;
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(p);
        }
    }
}
