package org.autocircuit.tasks;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A word-level tokenizer: a token is a maximal run of non-whitespace characters, looked up in a fixed
 * vocabulary. The vocabulary file ({@value #VOCAB_FILE} in a model folder) holds one token per line; the line
 * number (from 0) is the id. It must contain {@value #BOS}, which is both BOS and pad.
 *
 * <p>As with {@link Gpt2Tokenizer}, an occurrence of the BOS string is one special token even when it touches a
 * word ({@code "<bos>w01 w02"} is three tokens), because the dataset loader prepends the BOS string to each
 * prompt without a space. Whitespace is not part of any token, so {@code " w01"} and {@code "w01"} are the same
 * token. A word outside the vocabulary is an error (no unknown-token fallback: a silently mapped word would
 * corrupt a circuit experiment). Immutable and thread-safe.
 */
public final class WordTokenizer implements Tokenizer {
    /** The vocabulary file name in a model folder. */
    public static final String VOCAB_FILE = "vocab.txt";
    /** The BOS (and pad) token. */
    public static final String BOS = "<bos>";

    private final List<String> tokens;
    private final Map<String, Long> ids;
    private final long bosId;
    private final String source;

    /**
     * @param vocabulary every token, indexed by id
     * @param source     where the vocabulary came from, for messages
     * @throws IllegalArgumentException for an empty, blank, whitespace-containing or duplicate token, or no BOS
     */
    public WordTokenizer(List<String> vocabulary, String source) {
        if (vocabulary == null || vocabulary.isEmpty()) {
            throw new IllegalArgumentException(source + ": the vocabulary is empty");
        }
        this.source = source;
        this.tokens = List.copyOf(vocabulary);
        this.ids = new HashMap<>();
        for (int i = 0; i < tokens.size(); i++) {
            String t = tokens.get(i);
            if (t.isEmpty() || t.codePoints().anyMatch(Character::isWhitespace)) {
                throw new IllegalArgumentException(source + ": token " + i + " '" + t
                    + "' is empty or contains whitespace; expected one token per line");
            }
            Long before = ids.put(t, (long) i);
            if (before != null) {
                throw new IllegalArgumentException(source + ": token '" + t + "' appears twice (ids " + before + " and " + i + ")");
            }
        }
        Long bos = ids.get(BOS);
        if (bos == null) throw new IllegalArgumentException(source + ": the vocabulary lacks the BOS token " + BOS);
        this.bosId = bos;
    }

    /** Reads a vocabulary file (UTF-8, one token per line; a trailing newline is allowed). */
    public static WordTokenizer fromFile(Path vocabFile) throws IOException {
        List<String> lines = new ArrayList<>(Files.readAllLines(vocabFile, StandardCharsets.UTF_8));
        while (!lines.isEmpty() && lines.get(lines.size() - 1).isEmpty()) lines.remove(lines.size() - 1);
        return new WordTokenizer(lines, vocabFile.toString());
    }

    /** Number of tokens. */
    public int vocabSize() {
        return tokens.size();
    }

    /** Every token, indexed by id. */
    public List<String> vocabulary() {
        return tokens;
    }

    @Override
    public long[] encode(String text) {
        if (text == null) throw new IllegalArgumentException("text to encode is null");
        List<Long> out = new ArrayList<>();
        int from = 0;
        while (true) {
            int at = text.indexOf(BOS, from);
            String segment = at < 0 ? text.substring(from) : text.substring(from, at);
            for (String word : segment.trim().split("\\s+")) {
                if (word.isEmpty()) continue;
                Long id = ids.get(word);
                if (id == null) {
                    throw new IllegalArgumentException("word '" + word + "' is not in the vocabulary " + source
                        + " (" + tokens.size() + " tokens)");
                }
                out.add(id);
            }
            if (at < 0) break;
            out.add(bosId);
            from = at + BOS.length();
        }
        long[] result = new long[out.size()];
        for (int i = 0; i < result.length; i++) result[i] = out.get(i);
        return result;
    }

    @Override
    public String decode(long[] ids) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < ids.length; i++) {
            long id = ids[i];
            if (id < 0 || id >= tokens.size()) {
                throw new IllegalArgumentException("token id " + id + " at index " + i + " is outside the vocabulary [0, "
                    + tokens.size() + ") of " + source);
            }
            if (i > 0) sb.append(' ');
            sb.append(tokens.get((int) id));
        }
        return sb.toString();
    }

    @Override public long bosId() { return bosId; }

    @Override public long padId() { return bosId; }

    @Override public String bosString() { return BOS; }

    @Override public String name() { return "word"; }

    @Override public String toString() { return "WordTokenizer(" + tokens.size() + " tokens, " + source + ")"; }
}
