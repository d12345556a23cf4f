package org.autocircuit.tasks;

import ai.djl.huggingface.tokenizers.Encoding;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * The tokenizer of a Hugging Face model folder, read from its {@code tokenizer.json} by the Hugging Face
 * {@code tokenizers} library itself (the Rust code, through DJL's JNI binding {@code ai.djl.huggingface:tokenizers}):
 * byte-level BPE of GPT-2, GPT-NeoX / Pythia, Llama 3, Qwen2, and any other model type that library reads.
 *
 * <p><b>Offline.</b> The DJL jar carries the native library for linux-x86_64 (and linux-aarch64, macOS arm64,
 * Windows x86_64); on first use it is copied to DJL's cache folder ({@code ~/.djl.ai/tokenizers/…}, or
 * {@code $DJL_CACHE_DIR}) and loaded from there. Nothing is downloaded, and the tokenizer is built from the folder's
 * files only.
 *
 * <p><b>Special tokens and BOS.</b> {@link #encode} never adds special tokens (no post-processor template): the
 * dataset loader prepends {@link #bosString()} itself when {@code prepend_bos} is set, so there is exactly one BOS
 * whatever the family does by default. Special tokens written in the text (e.g. {@code <|endoftext|>}) become their
 * single ids, as in Python. Which token is BOS, and which pads, follows the folder, see {@link SpecialTokens}.
 *
 * <p><b>Native memory.</b> The Rust tokenizer lives until {@link #close()}; open it in try-with-resources. Using it
 * after close is an {@link IllegalStateException}. Encoding and decoding are thread-safe, also against a concurrent
 * close.
 */
public final class HuggingFaceTokenizer implements Tokenizer {
    /** The file this class reads; its presence in a model folder selects it (see {@link Tokenizers#forModel}). */
    public static final String TOKENIZER_FILE = "tokenizer.json";
    public static final String CONFIG_FILE = "tokenizer_config.json";

    private final Path folder;
    private final SpecialTokens special;
    private final int vocabSize;
    /** Encoding and decoding share the native tokenizer; closing waits for them, so no call sees it freed. */
    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private ai.djl.huggingface.tokenizers.HuggingFaceTokenizer tokenizer;

    private HuggingFaceTokenizer(Path folder, SpecialTokens special, int vocabSize,
                                 ai.djl.huggingface.tokenizers.HuggingFaceTokenizer tokenizer) {
        this.folder = folder;
        this.special = special;
        this.vocabSize = vocabSize;
        this.tokenizer = tokenizer;
    }

    /**
     * Reads {@code folder/tokenizer.json} (and {@code tokenizer_config.json} when present).
     *
     * @throws IllegalArgumentException naming the file and field when a file is not valid JSON, lacks the fields a
     *                                  tokenizer needs, or names a BOS/EOS/PAD token the tokenizer does not have
     * @throws IllegalStateException    when the native tokenizers library cannot be loaded
     */
    public static HuggingFaceTokenizer open(Path folder) throws IOException {
        Path file = folder.resolve(TOKENIZER_FILE);
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException(file + ": no such file (a Hugging Face tokenizer folder needs it)");
        }
        JsonNode json = readJson(file);
        if (!json.isObject() || !json.path("model").isObject()) {
            throw new IllegalArgumentException(file + ": field 'model' is missing; expected a Hugging Face tokenizer.json");
        }
        JsonNode vocab = json.path("model").path("vocab");
        if (!vocab.isObject() && !vocab.isArray()) {
            throw new IllegalArgumentException(file + ": field 'model.vocab' is missing or not an object/array");
        }
        int size = maxId(json) + 1;
        Path configFile = folder.resolve(CONFIG_FILE);
        JsonNode config = Files.isRegularFile(configFile) ? readJson(configFile) : null;
        ai.djl.huggingface.tokenizers.HuggingFaceTokenizer native_ = build(file);
        try {
            SpecialTokens special = SpecialTokens.resolve(json, config, configFile, file,
                text -> native_.encode(text, false, false).getIds());
            return new HuggingFaceTokenizer(folder, special, size, native_);
        } catch (RuntimeException e) {
            native_.close();  // nothing half-loaded stays in memory
            throw e;
        }
    }

    private static ai.djl.huggingface.tokenizers.HuggingFaceTokenizer build(Path file) throws IOException {
        try {
            return ai.djl.huggingface.tokenizers.HuggingFaceTokenizer.builder()
                .optTokenizerPath(file)
                .optAddSpecialTokens(false)
                .optTruncation(false)
                .optPadding(false)
                .build();
        } catch (UnsatisfiedLinkError | ExceptionInInitializerError | NoClassDefFoundError e) {
            throw new IllegalStateException("cannot load the native Hugging Face tokenizers library (DJL) for " + file
                + ": " + e + "; its cache folder (~/.djl.ai, or $DJL_CACHE_DIR) must be writable", e);
        } catch (RuntimeException e) {
            // the Rust side rejects a tokenizer.json it cannot read (unknown model type, bad merges, ...)
            throw new IllegalArgumentException(file + ": the Hugging Face tokenizers library cannot read it: "
                + e.getMessage(), e);
        }
    }

    private static JsonNode readJson(Path file) throws IOException {
        try {
            return new ObjectMapper().readTree(file.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
    }

    /** The largest id in {@code model.vocab} and {@code added_tokens}. */
    private static int maxId(JsonNode json) {
        int max = -1;
        JsonNode vocab = json.path("model").path("vocab");
        if (vocab.isObject()) {
            for (JsonNode id : (Iterable<JsonNode>) vocab::elements) max = Math.max(max, id.asInt(-1));
        } else {
            max = vocab.size() - 1;  // Unigram: a list of [piece, score], the index is the id
        }
        for (JsonNode t : json.path("added_tokens")) max = Math.max(max, t.path("id").asInt(-1));
        return max;
    }

    /** Call under the read lock. */
    private ai.djl.huggingface.tokenizers.HuggingFaceTokenizer live() {
        ai.djl.huggingface.tokenizers.HuggingFaceTokenizer t = tokenizer;
        if (t == null) throw new IllegalStateException("the tokenizer of " + folder + " is closed");
        return t;
    }

    @Override
    public long[] encode(String text) {
        if (text == null) throw new IllegalArgumentException("text to encode is null");
        lock.readLock().lock();
        try {
            Encoding e = live().encode(text, false, false);
            return e.getIds();
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override
    public String decode(long[] ids) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= vocabSize) {
                throw new IllegalArgumentException("token id " + ids[i] + " at index " + i + " is outside the vocabulary"
                    + " [0, " + vocabSize + ") of " + folder.resolve(TOKENIZER_FILE));
            }
        }
        lock.readLock().lock();
        try {
            return live().decode(ids, false);
        } finally {
            lock.readLock().unlock();
        }
    }

    @Override public long bosId() { return special.bosId(); }

    @Override public long padId() { return special.padId(); }

    @Override public String bosString() { return special.bos(); }

    @Override public String name() { return "tokenizer.json of " + folder.getFileName(); }

    /** One more than the largest token id the tokenizer can produce. */
    public int vocabSize() { return vocabSize; }

    /** Where the BOS, EOS and PAD tokens came from, and whether the family adds BOS by itself. */
    public SpecialTokens specialTokens() { return special; }

    @Override
    public void close() {
        lock.writeLock().lock();
        try {
            if (tokenizer != null) {
                tokenizer.close();
                tokenizer = null;
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override public String toString() { return "HuggingFaceTokenizer(" + folder + ", " + special + ")"; }
}
