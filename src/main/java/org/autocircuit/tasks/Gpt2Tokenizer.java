package org.autocircuit.tasks;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import java.util.Arrays;

/**
 * GPT-2's byte-level BPE tokenizer, via jtokkit's {@code r50k_base} (the same ranks and split
 * pattern as GPT-2's {@code vocab.json} + {@code merges.txt}; checked against the token ids that
 * AutoCircuit produced for the IOI fixture).
 *
 * <p>{@code <|endoftext|>} (id 50256) is both BOS and PAD, as in Hugging Face's GPT-2 tokenizer with
 * AutoCircuit's settings. jtokkit's ordinary encoding treats that string as plain text, so
 * {@link #encode} splits the text at each occurrence and emits id 50256 there itself, which is what
 * Hugging Face does for a registered special token. Immutable and thread-safe.
 */
public final class Gpt2Tokenizer implements Tokenizer {
    /** GPT-2's vocabulary size (50,000 merges + 256 bytes + {@code <|endoftext|>}). */
    public static final int VOCAB_SIZE = 50257;
    /** {@code <|endoftext|>}: BOS, EOS and PAD. */
    public static final long END_OF_TEXT_ID = 50256;
    public static final String END_OF_TEXT = "<|endoftext|>";

    /** Holder idiom: the rank table (≈0.8 MB) is read once, on first use, and never changes. */
    private static final class Holder {
        static final Encoding R50K = Encodings.newLazyEncodingRegistry().getEncoding(EncodingType.R50K_BASE);
    }

    public Gpt2Tokenizer() {
    }

    @Override
    public long[] encode(String text) {
        if (text == null) throw new IllegalArgumentException("text to encode is null");
        Encoding enc = Holder.R50K;
        long[] out = new long[Math.max(16, text.length())];
        int n = 0;
        int from = 0;
        while (true) {
            int at = text.indexOf(END_OF_TEXT, from);
            String segment = at < 0 ? text.substring(from) : text.substring(from, at);
            if (!segment.isEmpty()) {
                IntArrayList ids = enc.encodeOrdinary(segment);
                for (int i = 0; i < ids.size(); i++) {
                    if (n == out.length) out = Arrays.copyOf(out, out.length * 2);
                    out[n++] = ids.get(i);
                }
            }
            if (at < 0) break;
            if (n == out.length) out = Arrays.copyOf(out, out.length * 2);
            out[n++] = END_OF_TEXT_ID;
            from = at + END_OF_TEXT.length();
        }
        return Arrays.copyOf(out, n);
    }

    @Override
    public String decode(long[] ids) {
        StringBuilder sb = new StringBuilder();
        IntArrayList run = new IntArrayList();
        for (int i = 0; i < ids.length; i++) {
            long id = ids[i];
            if (id < 0 || id >= VOCAB_SIZE) {
                throw new IllegalArgumentException("token id " + id + " at index " + i + " is outside GPT-2's vocabulary [0, "
                    + VOCAB_SIZE + ")");
            }
            if (id == END_OF_TEXT_ID) {
                flush(run, sb);
                sb.append(END_OF_TEXT);
            } else {
                run.add((int) id);
            }
        }
        flush(run, sb);
        return sb.toString();
    }

    /** Decodes a run of ordinary ids together, so multi-byte characters split across tokens come out whole. */
    private static void flush(IntArrayList run, StringBuilder sb) {
        if (run.isEmpty()) return;
        sb.append(Holder.R50K.decode(run));
        run.clear();
    }

    @Override public long bosId() { return END_OF_TEXT_ID; }

    @Override public long padId() { return END_OF_TEXT_ID; }

    @Override public String bosString() { return END_OF_TEXT; }

    @Override public String name() { return "gpt2"; }

    @Override public String toString() { return "Gpt2Tokenizer(r50k_base)"; }
}
