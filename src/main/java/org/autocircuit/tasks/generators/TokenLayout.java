package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.autocircuit.tasks.Tokenizer;

/**
 * A prompt built from parts (fixed text and filled-in words), with the token index at which each part starts.
 * Generators use it to compute {@code word_idxs}: the index of a word is the number of tokens before it. That is
 * only true when tokenizing the parts one by one gives the same ids as tokenizing the whole prompt, which the
 * constructor checks.
 */
final class TokenLayout {
    private final String text;
    private final long[] ids;
    private final int[] starts;

    TokenLayout(Tokenizer tok, List<String> parts) {
        StringBuilder sb = new StringBuilder();
        List<Long> concat = new ArrayList<>();
        starts = new int[parts.size() + 1];
        for (int i = 0; i < parts.size(); i++) {
            starts[i] = concat.size();
            sb.append(parts.get(i));
            for (long id : tok.encode(parts.get(i))) concat.add(id);
        }
        starts[parts.size()] = concat.size();
        text = sb.toString();
        ids = tok.encode(text);
        long[] joined = concat.stream().mapToLong(Long::longValue).toArray();
        if (!Arrays.equals(ids, joined)) {
            throw new IllegalStateException("parts of \"" + text + "\" merge across their boundaries when tokenized "
                + "together: " + Arrays.toString(ids) + " vs " + Arrays.toString(joined) + " (parts " + parts + ")");
        }
    }

    String text() {
        return text;
    }

    int nTokens() {
        return ids.length;
    }

    /** Token index where part {@code i} starts. */
    int start(int part) {
        return starts[part];
    }

    /** Number of tokens of part {@code i}. */
    int length(int part) {
        return starts[part + 1] - starts[part];
    }

    long[] ids() {
        return ids.clone();
    }
}
