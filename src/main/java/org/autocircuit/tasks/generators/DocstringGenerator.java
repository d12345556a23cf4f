package org.autocircuit.tasks.generators;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.autocircuit.tasks.DatasetFile;
import org.autocircuit.tasks.Gpt2Tokenizer;
import org.autocircuit.tasks.RawPromptPair;
import org.autocircuit.tasks.Tokenizer;

/**
 * Python docstring prompts (Heimersheim & Janiak 2023, "A circuit for Python docstrings in a 4-layer attention-only
 * transformer"): a function definition with parameters A, B, C, D and a docstring that documents A and B; the model
 * should continue the third {@code :param} with C.
 * <pre>
 * def load(self, files, size, state, port):
 *     """oil column piece
 *
 *     :param files: crime population
 *     :param size: unit dark
 *     :param</pre>
 * → " state". The corrupt prompt is the post's "random_random" corruption: the definition's parameters and the two
 * documented parameter names are replaced by other random words, so nothing in the prompt says which name comes
 * next. Wrong answers are the other definition parameters (A, B, D) and the six names of the corrupt prompt.
 *
 * <p>All words are single GPT-2 tokens with and without a leading space, so every prompt has the same token
 * layout and {@code word_idxs} (A_def, B_def, ",_B", C_def, D_def, A_doc, param_2, B_doc, param_3, before BOS) hold
 * for all of them. Token positions therefore differ from AutoCircuit's file, which used the model's own tokenizer.
 */
public final class DocstringGenerator implements DatasetGenerator {

    /** Variable-like English words, each one GPT-2 token with and without a leading space. */
    static final List<String> WORDS = List.of("load", "size", "files", "last", "port", "state", "image", "data", "name",
        "value", "key", "user", "token", "path", "file", "line", "text", "node", "item", "field", "model", "query",
        "result", "order", "page", "group", "type", "mode", "index", "level", "count", "url", "host", "code", "message",
        "target", "source", "context", "config", "event", "request", "response", "parent", "child", "color", "shape",
        "label", "title", "content", "format", "table", "column", "row", "object", "action", "option", "number",
        "length", "width", "height", "time", "date", "day", "month", "year", "price", "cost", "rate", "score", "limit",
        "range", "start", "end", "step", "block", "buffer", "stream", "client", "server", "session", "account", "email",
        "password", "address", "phone", "city", "country", "region", "location", "position", "point", "oil", "piece",
        "crime", "population", "unit", "dark", "water", "fire", "light", "money", "power", "world", "game", "system",
        "network", "device", "window", "button", "list", "map", "set", "queue", "stack", "tree", "graph", "edge",
        "weight", "input", "output", "layer", "filter", "scale", "offset", "angle", "speed", "force", "mass", "energy",
        "heat", "sound", "voice", "word", "letter", "method", "module", "package", "version", "status", "error",
        "warning", "info", "debug", "author", "photo", "video", "audio");

    // Part indices of the layout below.
    private static final int A_DEF = 3;
    private static final int B_DEF = 5;
    private static final int B_COMMA = 6;
    private static final int C_DEF = 7;
    private static final int D_DEF = 9;
    private static final int A_DOC = 15;
    private static final int PARAM_2 = 19;
    private static final int B_DOC = 20;
    private static final int PARAM_3 = 24;

    private final Tokenizer tok = new Gpt2Tokenizer();

    @Override public String key() { return "docstring"; }

    @Override
    public String description() {
        return "Docstring (Heimersheim & Janiak 2023): def f(self, A, B, C, D) with A and B documented -> ' C'; "
            + "corrupt = random parameter names (random_random)";
    }

    @Override
    public DatasetFile generate(int n, long seed) {
        Picks.checkN(n);
        Random r = new Random(seed);
        List<RawPromptPair> prompts = new ArrayList<>(n);
        TokenLayout first = null;
        for (int i = 0; i < n; i++) {
            // Parameter names are all distinct; the function name and the description words (which may repeat)
            // are none of them, so the prompt never hints at the answer by accident.
            List<String> params = Picks.distinct(r, WORDS, 4, List.of());
            List<String> corruptParams = Picks.distinct(r, WORDS, 6, params);
            List<String> names = new ArrayList<>(params);
            names.addAll(corruptParams);
            List<String> others = new ArrayList<>(WORDS);
            others.removeAll(names);
            String fn = Picks.one(r, others);
            List<String> desc = new ArrayList<>();
            for (int k = 0; k < 7; k++) desc.add(Picks.one(r, others));
            TokenLayout clean = layout(fn, params, params.get(0), params.get(1), desc);
            TokenLayout corrupt = layout(fn, corruptParams.subList(0, 4), corruptParams.get(4), corruptParams.get(5), desc);
            if (clean.nTokens() != corrupt.nTokens()) {
                throw new IllegalStateException("docstring corrupt prompt has another length: " + clean.text());
            }
            if (first == null) first = clean;
            List<String> wrong = new ArrayList<>();
            for (String w : List.of(params.get(0), params.get(1), params.get(3))) wrong.add(" " + w);
            for (String w : corruptParams) wrong.add(" " + w);
            prompts.add(RawPromptPair.ofText(clean.text(), corrupt.text(), List.of(" " + params.get(2)), wrong));
        }
        Map<String, Integer> words = new LinkedHashMap<>();
        words.put("A_def", first.start(A_DEF));
        words.put("B_def", first.start(B_DEF));
        words.put(",_B", first.start(B_COMMA));
        words.put("C_def", first.start(C_DEF));
        words.put("D_def", first.start(D_DEF));
        words.put("A_doc", first.start(A_DOC));
        words.put("param_2", first.start(PARAM_2) + first.length(PARAM_2) - 1);
        words.put("B_doc", first.start(B_DOC));
        words.put("param_3", first.start(PARAM_3) + first.length(PARAM_3) - 1);
        List<String> labels = new ArrayList<>();
        long[] ids = first.ids();
        for (long id : ids) labels.add(label(tok.decode(new long[] {id})));
        words.forEach((k, v) -> labels.set(v, k));
        return new DatasetFile(prompts, labels, words);
    }

    /** A token's text for {@code seq_labels}: stripped, or with newlines escaped when it is only whitespace. */
    private static String label(String token) {
        String s = token.strip();
        return s.isEmpty() ? token.replace("\n", "\\n") : s;
    }

    /**
     * The prompt as parts; the part indices are the constants above (the documented params A, B may differ from the
     * definition's in the corrupt prompt).
     */
    private TokenLayout layout(String fn, List<String> defParams, String docA, String docB, List<String> desc) {
        return new TokenLayout(tok, List.of(
            "def", " " + fn, "(self,", " " + defParams.get(0), ",", " " + defParams.get(1), ",",    // 0-6
            " " + defParams.get(2), ",", " " + defParams.get(3), "):\n    \"\"\"",                  // 7-10
            desc.get(0), " " + desc.get(1), " " + desc.get(2), "\n\n    :param",                    // 11-14
            " " + docA, ":", " " + desc.get(3), " " + desc.get(4), "\n    :param",                  // 15-19
            " " + docB, ":", " " + desc.get(5), " " + desc.get(6), "\n    :param"));                // 20-24
    }
}
