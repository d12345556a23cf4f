package org.autocircuit.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Picks the tokenizer of a model folder, the one place that does (every command that takes {@code --model DIR}
 * goes through {@link #forModel}):
 * <ol>
 *   <li>{@value WordTokenizer#VOCAB_FILE} → {@link WordTokenizer} (the models {@code autocircuit train} writes);
 *       its size must equal {@code vocab_size} in {@code config.json};</li>
 *   <li>{@value HuggingFaceTokenizer#TOKENIZER_FILE} → {@link HuggingFaceTokenizer}: the folder's own tokenizer
 *       (GPT-2, Pythia, Llama 3, Qwen2, …) read by the Hugging Face tokenizers library, with BOS and PAD from
 *       {@code tokenizer_config.json} ({@link SpecialTokens}); its ids must fit {@code vocab_size}, which may be
 *       larger (Pythia and Qwen2 pad their embeddings);</li>
 *   <li>GPT-2's {@code vocab.json} + {@code merges.txt} without a {@code tokenizer.json}, or a {@code config.json}
 *       of a GPT-2 model with GPT-2's 50,257-token vocabulary → {@link Gpt2Tokenizer} (whose ranks are built in);
 *       a {@code vocab.json} of another size is an error rather than a silently wrong GPT-2 tokenization;</li>
 *   <li>anything else is an {@link IllegalArgumentException} that names the folder and what was looked for.</li>
 * </ol>
 * The caller owns the tokenizer and closes it ({@link Tokenizer#close()}).
 */
public final class Tokenizers {
    private Tokenizers() {}

    /**
     * The tokenizer for the model in {@code modelFolder}.
     *
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException if the folder has no tokenizer this library knows, or a tokenizer file
     *                                  disagrees with {@code config.json}
     */
    public static Tokenizer forModel(Path modelFolder) throws IOException {
        if (!Files.isDirectory(modelFolder)) {
            throw new IllegalArgumentException("model folder " + modelFolder + " does not exist or is not a directory");
        }
        Path configFile = modelFolder.resolve("config.json");
        JsonNode config = readJson(configFile);
        JsonNode vocabSize = config == null ? null : config.get("vocab_size");
        Path words = modelFolder.resolve(WordTokenizer.VOCAB_FILE);
        if (Files.isRegularFile(words)) {
            WordTokenizer tok = WordTokenizer.fromFile(words);
            if (vocabSize != null && vocabSize.asInt() != tok.vocabSize()) {
                throw new IllegalArgumentException(words + " holds " + tok.vocabSize() + " tokens, but "
                    + configFile + " says vocab_size " + vocabSize.asInt());
            }
            return tok;
        }
        if (Files.isRegularFile(modelFolder.resolve(HuggingFaceTokenizer.TOKENIZER_FILE))) {
            HuggingFaceTokenizer tok = HuggingFaceTokenizer.open(modelFolder);
            if (vocabSize != null && tok.vocabSize() > vocabSize.asInt()) {
                tok.close();
                throw new IllegalArgumentException(modelFolder.resolve(HuggingFaceTokenizer.TOKENIZER_FILE) + " has ids up to "
                    + (tok.vocabSize() - 1) + ", but " + configFile + " says vocab_size " + vocabSize.asInt()
                    + ": the tokenizer does not belong to this model");
            }
            return tok;
        }
        Path vocabJson = modelFolder.resolve("vocab.json");
        if (Files.isRegularFile(vocabJson) && Files.isRegularFile(modelFolder.resolve("merges.txt"))) {
            JsonNode vocab = readJson(vocabJson);
            if (vocab.size() != Gpt2Tokenizer.VOCAB_SIZE
                    || vocab.path(Gpt2Tokenizer.END_OF_TEXT).asLong(-1) != Gpt2Tokenizer.END_OF_TEXT_ID) {
                throw new IllegalArgumentException(vocabJson + " holds " + vocab.size() + " tokens, not GPT-2's "
                    + Gpt2Tokenizer.VOCAB_SIZE + " with " + Gpt2Tokenizer.END_OF_TEXT + " = " + Gpt2Tokenizer.END_OF_TEXT_ID
                    + "; only GPT-2's vocabulary is read from vocab.json + merges.txt: add the model's tokenizer.json");
            }
            return new Gpt2Tokenizer();
        }
        if (isGpt2Config(config)) return new Gpt2Tokenizer();
        throw new IllegalArgumentException("model folder " + modelFolder + " has no tokenizer: expected "
            + WordTokenizer.VOCAB_FILE + " (word-level), " + HuggingFaceTokenizer.TOKENIZER_FILE + " (Hugging Face), "
            + "GPT-2's vocab.json + merges.txt, or a GPT-2 config.json with vocab_size " + Gpt2Tokenizer.VOCAB_SIZE);
    }

    private static JsonNode readJson(Path file) throws IOException {
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
