package org.autocircuit.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Picks the tokenizer of a model folder:
 * <ol>
 *   <li>{@value WordTokenizer#VOCAB_FILE} → {@link WordTokenizer} (the models {@code autocircuit train} writes);
 *       its size must equal {@code vocab_size} in {@code config.json};</li>
 *   <li>GPT-2 BPE files ({@code vocab.json} + {@code merges.txt}, or {@code tokenizer.json}), or a
 *       {@code config.json} of a GPT-2 model with GPT-2's 50,257-token vocabulary → {@link Gpt2Tokenizer}
 *       (whose ranks are built in, so the files themselves are not read);</li>
 *   <li>anything else is an {@link IllegalArgumentException} that names the folder and what was looked for.</li>
 * </ol>
 */
public final class Tokenizers {
    private Tokenizers() {}

    /**
     * The tokenizer for the model in {@code modelFolder}.
     *
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException if the folder has no tokenizer this library knows, or the word vocabulary
     *                                  disagrees with {@code config.json}
     */
    public static Tokenizer forModel(Path modelFolder) throws IOException {
        if (!Files.isDirectory(modelFolder)) {
            throw new IllegalArgumentException("model folder " + modelFolder + " does not exist or is not a directory");
        }
        JsonNode config = readConfig(modelFolder.resolve("config.json"));
        Path words = modelFolder.resolve(WordTokenizer.VOCAB_FILE);
        if (Files.isRegularFile(words)) {
            WordTokenizer tok = WordTokenizer.fromFile(words);
            JsonNode vocabSize = config == null ? null : config.get("vocab_size");
            if (vocabSize != null && vocabSize.asInt() != tok.vocabSize()) {
                throw new IllegalArgumentException(words + " holds " + tok.vocabSize() + " tokens, but "
                    + modelFolder.resolve("config.json") + " says vocab_size " + vocabSize.asInt());
            }
            return tok;
        }
        boolean bpeFiles = (Files.isRegularFile(modelFolder.resolve("vocab.json"))
                && Files.isRegularFile(modelFolder.resolve("merges.txt")))
            || Files.isRegularFile(modelFolder.resolve("tokenizer.json"));
        if (bpeFiles || isGpt2Config(config)) return new Gpt2Tokenizer();
        throw new IllegalArgumentException("model folder " + modelFolder + " has no tokenizer: expected "
            + WordTokenizer.VOCAB_FILE + " (word-level), GPT-2 BPE files (vocab.json + merges.txt, or tokenizer.json), "
            + "or a GPT-2 config.json with vocab_size " + Gpt2Tokenizer.VOCAB_SIZE);
    }

    private static JsonNode readConfig(Path file) throws IOException {
        if (!Files.isRegularFile(file)) return null;
        try {
            return new ObjectMapper().readTree(Files.readString(file));
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    private static boolean isGpt2Config(JsonNode config) {
        if (config == null || !config.isObject()) return false;
        boolean gpt2 = "gpt2".equals(config.path("model_type").asText(null))
            || "GPT2LMHeadModel".equals(config.path("architectures").path(0).asText(null));
        return gpt2 && config.path("vocab_size").asInt(-1) == Gpt2Tokenizer.VOCAB_SIZE;
    }
}
