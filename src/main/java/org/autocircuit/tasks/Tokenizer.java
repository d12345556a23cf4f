package org.autocircuit.tasks;

/**
 * Text ↔ token ids, as the dataset loader needs it (tokenizing the prompts and answers).
 *
 * <p>{@link #encode} never adds special tokens by itself: the loader prepends {@link #bosString()}
 * to each prompt string when {@code prepend_bos} is set, so there is exactly one BOS, and answers
 * get none. An occurrence of {@link #bosString()} inside the text is encoded as the single special
 * token {@link #bosId()}, as Hugging Face tokenizers do for their registered special tokens.
 *
 * <p>A tokenizer may hold native memory ({@link HuggingFaceTokenizer}); {@link #close()} frees it, so open
 * tokenizers in try-with-resources. Closing the pure-Java ones does nothing.
 */
public interface Tokenizer extends AutoCloseable {
    /** Token ids of {@code text}, with no special tokens added. */
    long[] encode(String text);

    /** The text of {@code ids}; special ids decode to their strings. */
    String decode(long[] ids);

    /** Id of the beginning-of-sequence token. */
    long bosId();

    /** Id used for left padding. */
    long padId();

    /** The text form of the BOS token, prepended to prompt strings. */
    String bosString();

    /** A short name for messages and logs, e.g. {@code "gpt2"}. */
    String name();

    /** Frees what the tokenizer holds outside the Java heap; the default holds nothing. */
    @Override
    default void close() {}
}
