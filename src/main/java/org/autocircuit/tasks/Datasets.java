package org.autocircuit.tasks;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import org.autocircuit.data.Answers;
import org.autocircuit.data.PromptPair;
import org.autocircuit.util.AtomicFiles;
import org.autocircuit.util.HostTensor;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Dataset JSON files and AutoCircuit's {@code load_datasets_from_json}.
 *
 * <p>{@link #load} follows the Python function step by step: read the files; seed CPython's
 * {@code random} and optionally shuffle; keep the first {@code trainSize + testSize} prompts; shift
 * {@code word_idxs} and {@code seq_labels} for BOS; turn prompts into tensors (directly from the
 * JSON numbers without a tokenizer, or tokenized with left padding); optionally cut the common
 * clean/corrupt prefix (tail divergence); split in order; batch with {@code drop_last}.
 *
 * <p>Errors in a file are {@link IllegalArgumentException}s whose message starts with the file and
 * names the prompt index (in the file, before shuffling) and the field, e.g.
 * {@code ioi.json: prompts[3].answers[0] " Marco Polo" is 2 tokens ([...]); expected exactly 1}.
 *
 * <p>One deliberate difference from Python: clean and corrupt prompts are left-padded to one common
 * length (the longest of either), where Hugging Face pads the two lists separately and can give
 * clean and corrupt batches of different lengths, which no patching run accepts.
 */
public final class Datasets {
    private static final Logger LOG = LoggerFactory.getLogger(Datasets.class);

    /** The label AutoCircuit puts in front of {@code seq_labels} when it prepends BOS. */
    public static final String BOS_LABEL = "<|BOS|>";

    private static final Set<String> TOP_KEYS = Set.of("prompts", "seq_labels", "word_idxs");
    private static final List<String> PROMPT_KEYS = List.of("clean", "corrupt", "answers", "wrong_answers");

    private static final ObjectMapper MAPPER = new ObjectMapper()
        .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
        .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
        .enable(SerializationFeature.INDENT_OUTPUT);

    private Datasets() {
    }

    /** The train and test loaders of one call to {@link #load}. */
    public record LoadedDatasets(PromptDataLoader train, PromptDataLoader test) {
        public LoadedDatasets {
            if (train == null || test == null) throw new IllegalArgumentException("train and test must not be null");
        }
    }

    /** One kept prompt and where it came from, for error messages. */
    private record Source(Path file, int index, RawPromptPair pair) {
        String where(String field) {
            return file + ": prompts[" + index + "]." + field;
        }
    }

    // ---- loading ----

    /**
     * What the model can take, checked prompt by prompt right after tokenizing, so that an over-long prompt or an id
     * outside the vocabulary is an error naming the prompt before anything is padded or allocated for the model.
     *
     * @param maxTokens the context length ({@code n_positions}): BOS included, no prompt may be longer
     * @param vocabSize every token id (prompts, answers, BOS, padding) must lie in {@code [0, vocabSize)}
     */
    public record ModelLimits(int maxTokens, long vocabSize) {
        /** No limits (library callers that check elsewhere). */
        public static final ModelLimits NONE = new ModelLimits(Integer.MAX_VALUE, Long.MAX_VALUE);

        public ModelLimits {
            if (maxTokens < 1 || vocabSize < 1) {
                throw new IllegalArgumentException("model limits must be positive, got " + maxTokens + " tokens, vocabulary "
                    + vocabSize);
            }
        }
    }

    /** {@link #load(List, LoaderOptions, Tokenizer)} for one file. */
    public static LoadedDatasets load(Path file, LoaderOptions options, Tokenizer tokenizerOrNull) throws IOException {
        return load(List.of(file), options, tokenizerOrNull, ModelLimits.NONE);
    }

    /** {@link #load(List, LoaderOptions, Tokenizer, ModelLimits)} for one file. */
    public static LoadedDatasets load(Path file, LoaderOptions options, Tokenizer tokenizerOrNull, ModelLimits limits)
            throws IOException {
        return load(List.of(file), options, tokenizerOrNull, limits);
    }

    /** {@link #load(List, LoaderOptions, Tokenizer, ModelLimits)} without model limits. */
    public static LoadedDatasets load(List<Path> files, LoaderOptions options, Tokenizer tokenizerOrNull)
            throws IOException {
        return load(files, options, tokenizerOrNull, ModelLimits.NONE);
    }

    /**
     * AutoCircuit's {@code load_datasets_from_json}.
     *
     * @param files           one or more dataset files: the first is read in full, the others contribute only their
     *                        prompts (appended in order)
     * @param options         the loader options
     * @param tokenizerOrNull the model's tokenizer, or null for models that take the JSON numbers directly (the
     *                        micro model: float32 {@code [seq, dModel]}; tracr: int64 {@code [seq]} with BOS already
     *                        in the ids); null requires {@code prependBos} and {@code tailDivergence} to be false
     * @param limits          the model's context length and vocabulary size, checked per tokenized prompt
     * @return the train loader (prompts {@code [0, trainSize)}) and the test loader ({@code [trainSize,
     *         trainSize + testSize)}), each with its own batch size; the test loader may hold no batches
     * @throws IOException              if a file cannot be read
     * @throws IllegalArgumentException naming the file, prompt index and field, for any malformed or unusable data
     */
    public static LoadedDatasets load(List<Path> files, LoaderOptions options, Tokenizer tokenizerOrNull,
                                      ModelLimits limits) throws IOException {
        if (limits == null) throw new IllegalArgumentException("limits must not be null (use ModelLimits.NONE)");
        if (files == null || files.isEmpty()) throw new IllegalArgumentException("load needs at least one dataset file");
        if (options == null) throw new IllegalArgumentException("options must not be null");
        if (tokenizerOrNull == null && options.prependBos()) {
            throw new IllegalArgumentException("prependBos needs a tokenizer; a model without one (micro, tracr) must "
                + "load with prependBos=false (" + files.get(0) + ")");
        }
        if (tokenizerOrNull == null && options.tailDivergence()) {
            throw new IllegalArgumentException("tailDivergence needs a tokenizer (" + files.get(0) + ")");
        }

        // Step 1: the first file in full, the others' prompts only.
        DatasetFile first = readFile(files.get(0));
        List<Source> prompts = new ArrayList<>();
        addSources(prompts, files.get(0), first);
        for (Path more : files.subList(1, files.size())) {
            DatasetFile f = readFile(more);
            if (!f.seqLabels().isEmpty() || !f.wordIdxs().isEmpty()) {
                LOG.debug("{}: seq_labels and word_idxs are ignored (only the first file's are used)", more);
            }
            addSources(prompts, more, f);
        }

        // Step 2: CPython's random.seed + random.shuffle, then keep the first n_train + n_test.
        if (options.shuffle()) new PyRandom(options.randomSeed()).shuffle(prompts);
        int total = options.totalSize();
        if (prompts.size() < total) {
            throw new IllegalArgumentException(files + " hold " + prompts.size() + " prompts, but trainSize "
                + options.trainSize() + " + testSize " + options.testSize() + " = " + total + " were requested");
        }
        List<Source> kept = List.copyOf(prompts.subList(0, total));

        // Step 3: BOS shifts the word indices and labels by one.
        Map<String, Integer> wordIdxs = new LinkedHashMap<>(first.wordIdxs());
        List<String> seqLabels = new ArrayList<>(first.seqLabels());
        if (options.prependBos()) {
            wordIdxs.replaceAll((k, v) -> v + 1);
            if (!seqLabels.isEmpty()) seqLabels.add(0, BOS_LABEL);
        }

        // Steps 4-6: tensors, then (tokenized only) tail divergence.
        Encoded enc = tokenizerOrNull == null ? untokenized(kept) : tokenized(kept, tokenizerOrNull, options, limits);
        int divergeIdx = 0;
        if (options.tailDivergence()) {
            divergeIdx = enc.commonDivergeIdx();
            if (divergeIdx > 0) {
                seqLabels = divergeIdx >= seqLabels.size()
                    ? new ArrayList<>() : new ArrayList<>(seqLabels.subList(divergeIdx, seqLabels.size()));
                enc.warnIfPrefixesDiffer(divergeIdx, options, files.get(0));
            }
        }
        OptionalInt seqLen = enc.seqLen == null ? OptionalInt.empty() : OptionalInt.of(enc.seqLen - divergeIdx);
        List<PromptPair> pairs = enc.pairs(divergeIdx);

        // Step 7: in-order split, drop_last batching.
        PromptDataLoader train = new PromptDataLoader(pairs.subList(0, options.trainSize()), options.trainBatchSize(),
            seqLen, divergeIdx, enc.prefix(divergeIdx, options.trainBatchSize(), false),
            enc.prefix(divergeIdx, options.trainBatchSize(), true), seqLabels, wordIdxs);
        PromptDataLoader test = new PromptDataLoader(pairs.subList(options.trainSize(), total), options.testBatchSize(),
            seqLen, divergeIdx, enc.prefix(divergeIdx, options.testBatchSize(), false),
            enc.prefix(divergeIdx, options.testBatchSize(), true), seqLabels, wordIdxs);
        LOG.debug("loaded {}: train {}, test {}", files, train, test);
        return new LoadedDatasets(train, test);
    }

    private static void addSources(List<Source> out, Path file, DatasetFile f) {
        for (int i = 0; i < f.prompts().size(); i++) out.add(new Source(file, i, f.prompts().get(i)));
    }

    /**
     * All kept prompts as tensors before the split. Tokenized prompts keep their id rows and masks so
     * that tail divergence can cut them; untokenized ones are final.
     */
    private static final class Encoded {
        final List<Source> sources;
        final Integer seqLen;
        // tokenized: [n][seq] ids and masks
        final long[][] clean;
        final long[][] corrupt;
        final long[][] cleanMask;
        final long[][] corruptMask;
        final List<HostTensor> answers;
        final List<HostTensor> wrongAnswers;
        // untokenized: the final pairs
        final List<PromptPair> ready;

        Encoded(List<Source> sources, Integer seqLen, long[][] clean, long[][] corrupt, long[][] cleanMask,
                long[][] corruptMask, List<HostTensor> answers, List<HostTensor> wrongAnswers, List<PromptPair> ready) {
            this.sources = sources;
            this.seqLen = seqLen;
            this.clean = clean;
            this.corrupt = corrupt;
            this.cleanMask = cleanMask;
            this.corruptMask = corruptMask;
            this.answers = answers;
            this.wrongAnswers = wrongAnswers;
            this.ready = ready;
        }

        /**
         * Min over prompts of the first index where clean and corrupt differ (0 if they never do), and,
         * unlike Python, also no later than the first position whose padding differs between clean and corrupt or
         * between prompts. The padding id is BOS (50256 for GPT-2), so token ids alone cannot tell a padded position
         * from a BOS: comparing ids only let a prompt of one length be served the cached prefix of a prompt of
         * another, its BOS masked out or padding attended to, with no warning (mixed-length data gave full-model
         * logit differences that no split of the prompts could average to). With left padding of mixed lengths
         * the first position already differs, so such data runs without a cache, exactly.
         */
        int commonDivergeIdx() {
            int best = Integer.MAX_VALUE;
            for (int r = 0; r < clean.length; r++) {
                int first = 0;
                for (int s = 0; s < clean[r].length; s++) {
                    if (clean[r][s] != corrupt[r][s] || (cleanMask != null && (cleanMask[r][s] != corruptMask[r][s]
                            || cleanMask[r][s] != cleanMask[0][s]))) {
                        first = s;
                        break;
                    }
                }
                best = Math.min(best, first);
            }
            return best == Integer.MAX_VALUE ? 0 : best;
        }

        /**
         * AutoCircuit builds one cache from {@code clean[:batchSize, :divergeIdx]} and serves row r of every batch
         * from row r of that prefix, which is only right when every prompt in that row slot has the same prefix.
         * Python does not check this; we keep its semantics but say so.
         */
        void warnIfPrefixesDiffer(int divergeIdx, LoaderOptions options, Path file) {
            int[][] splits = {{0, options.trainSize(), options.trainBatchSize()},
                {options.trainSize(), options.totalSize(), options.testBatchSize()}};
            for (int[] sp : splits) {
                int bs = sp[2];
                for (int r = sp[0]; r < sp[1]; r++) {
                    int row = (r - sp[0]) % bs;
                    if (row >= clean.length) continue;
                    for (int s = 0; s < divergeIdx; s++) {
                        if (clean[r][s] != clean[row][s]) {
                            LOG.warn("{}: tail divergence serves the first {} tokens of {} from the cache built on "
                                    + "prompt {}, but their tokens differ at position {}; results for that prompt use "
                                    + "the other prompt's prefix (AutoCircuit behaves the same)", file, divergeIdx,
                                sources.get(r).where("clean"), sources.get(row).index(), s);
                            return;
                        }
                    }
                }
            }
        }

        List<PromptPair> pairs(int divergeIdx) {
            if (ready != null) return ready;
            List<PromptPair> out = new ArrayList<>(clean.length);
            for (int r = 0; r < clean.length; r++) {
                long[] c = Arrays.copyOfRange(clean[r], divergeIdx, clean[r].length);
                long[] k = Arrays.copyOfRange(corrupt[r], divergeIdx, corrupt[r].length);
                out.add(new PromptPair(HostTensor.ofLongs(c, c.length), HostTensor.ofLongs(k, k.length),
                    answers.get(r), wrongAnswers.get(r), mask(cleanMask[r], divergeIdx), mask(corruptMask[r], divergeIdx)));
            }
            return out;
        }

        private static HostTensor mask(long[] m, int from) {
            long[] cut = Arrays.copyOfRange(m, from, m.length);
            for (long v : cut) {
                if (v == 0) return HostTensor.ofLongs(cut, cut.length);
            }
            return null;
        }

        /** {@code clean[:batchSize, :divergeIdx]} (or its mask; null if unpadded), null without tail divergence. */
        HostTensor prefix(int divergeIdx, int batchSize, boolean padding) {
            if (divergeIdx == 0 || clean == null || clean.length < batchSize) return null;
            long[][] src = padding ? cleanMask : clean;
            long[] all = new long[batchSize * divergeIdx];
            boolean anyPad = false;
            for (int r = 0; r < batchSize; r++) {
                System.arraycopy(src[r], 0, all, r * divergeIdx, divergeIdx);
                for (int s = 0; s < divergeIdx; s++) anyPad |= src[r][s] == 0;
            }
            if (padding && !anyPad) return null;
            return HostTensor.ofLongs(all, batchSize, divergeIdx);
        }
    }

    /** Tokenized prompts: BOS string, tokenize, left-pad to one length, one token per answer. */
    private static Encoded tokenized(List<Source> kept, Tokenizer tok, LoaderOptions options, ModelLimits limits) {
        for (var special : new long[][] {{tok.bosId(), 0}, {tok.padId(), 1}}) {
            if (special[0] < 0 || special[0] >= limits.vocabSize()) {
                throw new IllegalArgumentException("the tokenizer's " + (special[1] == 0 ? "BOS" : "padding") + " id "
                    + special[0] + " (" + tok.name() + ") is outside the model's vocabulary [0, " + limits.vocabSize()
                    + "); is this the model's own tokenizer?");
            }
        }
        int n = kept.size();
        long[][] cleanIds = new long[n][];
        long[][] corruptIds = new long[n][];
        List<HostTensor> answers = new ArrayList<>(n);
        List<HostTensor> wrong = new ArrayList<>(n);
        String bos = options.prependBos() ? tok.bosString() : "";
        int maxLen = 0;
        for (int r = 0; r < n; r++) {
            Source src = kept.get(r);
            RawPromptPair p = src.pair();
            cleanIds[r] = encodePrompt(tok, bos, p.clean(), src, "clean", limits);
            corruptIds[r] = encodePrompt(tok, bos, p.corrupt(), src, "corrupt", limits);
            maxLen = Math.max(maxLen, Math.max(cleanIds[r].length, corruptIds[r].length));
            answers.add(encodeAnswers(tok, p.answers(), src, "answers", limits));
            wrong.add(encodeAnswers(tok, p.wrongAnswers(), src, "wrong_answers", limits));
        }
        long[][] cleanMask = new long[n][];
        long[][] corruptMask = new long[n][];
        for (int r = 0; r < n; r++) {
            for (int which = 0; which < 2; which++) {
                long[] ids = which == 0 ? cleanIds[r] : corruptIds[r];
                String field = which == 0 ? "clean" : "corrupt";
                if (ids.length != maxLen) {
                    if (!options.pad()) {
                        throw new IllegalArgumentException(kept.get(r).where(field) + " has " + ids.length
                            + " tokens, but the longest prompt has " + maxLen + "; prompts of different lengths need "
                            + "pad=true");
                    }
                    if (options.returnSeqLength()) {
                        throw new IllegalArgumentException(kept.get(r).where(field) + " has " + ids.length
                            + " tokens, but the longest prompt has " + maxLen + "; returnSeqLength (token-position "
                            + "circuits) needs prompts of one length, with no padding");
                    }
                }
                long[] padded = new long[maxLen];
                long[] mask = new long[maxLen];
                int off = maxLen - ids.length;
                Arrays.fill(padded, 0, off, tok.padId());
                System.arraycopy(ids, 0, padded, off, ids.length);
                Arrays.fill(mask, off, maxLen, 1L);
                if (which == 0) {
                    cleanIds[r] = padded;
                    cleanMask[r] = mask;
                } else {
                    corruptIds[r] = padded;
                    corruptMask[r] = mask;
                }
            }
        }
        Integer seqLen = options.returnSeqLength() ? maxLen : null;
        return new Encoded(kept, seqLen, cleanIds, corruptIds, cleanMask, corruptMask, answers, wrong, null);
    }

    private static long[] encodePrompt(Tokenizer tok, String bos, JsonNode prompt, Source src, String field,
                                       ModelLimits limits) {
        if (!prompt.isTextual()) {
            throw new IllegalArgumentException(src.where(field) + ": expected a string because a tokenizer ("
                + tok.name() + ") is given, got " + describe(prompt));
        }
        long[] ids = encode(tok, bos + prompt.textValue(), src.where(field));
        if (ids.length == 0) throw new IllegalArgumentException(src.where(field) + " is empty: it has no tokens");
        if (ids.length > limits.maxTokens()) {
            throw new IllegalArgumentException(src.where(field) + " is " + ids.length + " tokens"
                + (bos.isEmpty() ? "" : " with BOS") + ", longer than the model's context of " + limits.maxTokens()
                + " tokens (n_positions)");
        }
        checkVocabulary(ids, limits, src.where(field), tok);
        return ids;
    }

    /** The tokenizer's own errors (a word outside a word vocabulary) say which prompt they come from. */
    private static long[] encode(Tokenizer tok, String text, String where) {
        try {
            return tok.encode(text);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }

    private static void checkVocabulary(long[] ids, ModelLimits limits, String where, Tokenizer tok) {
        for (int i = 0; i < ids.length; i++) {
            if (ids[i] < 0 || ids[i] >= limits.vocabSize()) {
                throw new IllegalArgumentException(where + ": token " + i + " has id " + ids[i] + " (" + tok.name()
                    + " tokenizer), outside the model's vocabulary [0, " + limits.vocabSize() + "); is this the model's "
                    + "own tokenizer?");
            }
        }
    }

    /** Answers → {@code [nAns]} int64: each string must be exactly one token (no BOS). */
    private static HostTensor encodeAnswers(Tokenizer tok, JsonNode list, Source src, String field, ModelLimits limits) {
        long[] ids = new long[list.size()];
        for (int i = 0; i < list.size(); i++) {
            JsonNode a = list.get(i);
            if (!a.isTextual()) {
                throw new IllegalArgumentException(src.where(field) + "[" + i + "]: expected a string because a tokenizer ("
                    + tok.name() + ") is given, got " + describe(a));
            }
            long[] t = encode(tok, a.textValue(), src.where(field) + "[" + i + "]");
            if (t.length != 1) {
                throw new IllegalArgumentException(src.where(field) + "[" + i + "] " + quote(a.textValue()) + " is "
                    + t.length + " tokens " + Arrays.toString(t) + "; expected exactly 1 token per answer");
            }
            checkVocabulary(t, limits, src.where(field) + "[" + i + "] " + quote(a.textValue()), tok);
            ids[i] = t[0];
        }
        return HostTensor.ofLongs(ids, ids.length);
    }

    /** Untokenized prompts: tensors straight from the JSON numbers; seq_len = length of the first clean prompt, always. */
    private static Encoded untokenized(List<Source> kept) {
        int n = kept.size();
        List<HostTensor> cleans = new ArrayList<>(n);
        List<HostTensor> corrupts = new ArrayList<>(n);
        List<HostTensor> answers = new ArrayList<>(n);
        List<HostTensor> wrong = new ArrayList<>(n);
        for (Source src : kept) {
            RawPromptPair p = src.pair();
            cleans.add(numericPrompt(p.clean(), src, "clean"));
            corrupts.add(numericPrompt(p.corrupt(), src, "corrupt"));
            answers.add(numericAnswers(p.answers(), src, "answers"));
            wrong.add(numericAnswers(p.wrongAnswers(), src, "wrong_answers"));
        }
        long[] shape = cleans.get(0).shape();
        for (int r = 0; r < n; r++) {
            for (int which = 0; which < 2; which++) {
                HostTensor t = which == 0 ? cleans.get(r) : corrupts.get(r);
                if (!Arrays.equals(t.shape(), shape)) {
                    throw new IllegalArgumentException(kept.get(r).where(which == 0 ? "clean" : "corrupt") + " has shape "
                        + Arrays.toString(t.shape()) + ", but " + kept.get(0).where("clean") + " has "
                        + Arrays.toString(shape) + "; all prompts must have one shape");
                }
            }
        }
        // torch.stack promotes int64 with float32 to float32; so do we, per field.
        boolean promptsFloat = anyFloat(cleans) || anyFloat(corrupts);
        List<PromptPair> pairs = new ArrayList<>(n);
        List<HostTensor> ans = promote(answers, anyFloat(answers));
        List<HostTensor> wro = promote(wrong, anyFloat(wrong));
        List<HostTensor> cl = promote(cleans, promptsFloat);
        List<HostTensor> co = promote(corrupts, promptsFloat);
        for (int r = 0; r < n; r++) pairs.add(new PromptPair(cl.get(r), co.get(r), ans.get(r), wro.get(r)));
        return new Encoded(kept, (int) shape[0], null, null, null, null, null, null, pairs);
    }

    private static boolean anyFloat(List<HostTensor> ts) {
        return ts.stream().anyMatch(t -> t.dtype() == HostTensor.DType.FLOAT32);
    }

    private static List<HostTensor> promote(List<HostTensor> ts, boolean toFloat) {
        if (!toFloat) return ts;
        return ts.stream().map(t -> t.dtype() == HostTensor.DType.FLOAT32 ? t : HostTensor.ofFloats(t.floats(), t.shape()))
            .toList();
    }

    private static HostTensor numericPrompt(JsonNode prompt, Source src, String field) {
        if (prompt.isTextual()) {
            throw new IllegalArgumentException(src.where(field) + " is a string, but no tokenizer was given; a model "
                + "without a tokenizer needs prompts as lists of numbers");
        }
        HostTensor t = numbers(prompt, src.where(field));
        if (t.dim() == 0 || t.size(0) == 0) {
            throw new IllegalArgumentException(src.where(field) + " is empty; a prompt needs at least one position");
        }
        return t;
    }

    private static HostTensor numericAnswers(JsonNode list, Source src, String field) {
        for (int i = 0; i < list.size(); i++) {
            if (list.get(i).isTextual()) {
                throw new IllegalArgumentException(src.where(field) + "[" + i + "] is the string "
                    + quote(list.get(i).textValue()) + ", but no tokenizer was given; expected numbers");
            }
        }
        return numbers(list, src.where(field));
    }

    /**
     * {@code torch.tensor(json)}: a number or a rectangular nested list of numbers; int64 when every number is an
     * integer literal, else float32.
     */
    static HostTensor numbers(JsonNode node, String where) {
        List<Long> shape = new ArrayList<>();
        for (JsonNode n = node; n.isArray(); n = n.get(0)) {
            shape.add((long) n.size());
            if (n.isEmpty()) break;
        }
        List<JsonNode> leaves = new ArrayList<>();
        collect(node, 0, shape, leaves, where);
        long[] dims = shape.stream().mapToLong(Long::longValue).toArray();
        boolean integral = leaves.stream().allMatch(JsonNode::isIntegralNumber);
        if (integral) {
            long[] v = new long[leaves.size()];
            for (int i = 0; i < v.length; i++) {
                JsonNode leaf = leaves.get(i);
                if (!leaf.canConvertToLong()) throw new IllegalArgumentException(where + ": integer " + leaf + " does not fit int64");
                v[i] = leaf.longValue();
            }
            return HostTensor.ofLongs(v, dims);
        }
        float[] v = new float[leaves.size()];
        for (int i = 0; i < v.length; i++) v[i] = (float) leaves.get(i).doubleValue();
        return HostTensor.ofFloats(v, dims);
    }

    private static void collect(JsonNode n, int depth, List<Long> shape, List<JsonNode> leaves, String where) {
        if (depth == shape.size()) {
            if (!n.isNumber()) {
                throw new IllegalArgumentException(where + ": expected a number at depth " + depth + ", got " + describe(n));
            }
            leaves.add(n);
            return;
        }
        if (!n.isArray() || n.size() != shape.get(depth)) {
            throw new IllegalArgumentException(where + ": not a rectangular list of numbers: expected a list of "
                + shape.get(depth) + " at depth " + depth + ", got " + describe(n));
        }
        for (JsonNode c : n) collect(c, depth + 1, shape, leaves, where);
    }

    // ---- reading and writing files ----

    /**
     * Reads and validates one dataset file. Checks the structure only: top-level keys, every
     * prompt's four fields and their kinds (string or rectangular list of numbers; lists of answers), and the
     * types of {@code seq_labels} and {@code word_idxs}. Tokenization is checked by {@link #load}.
     *
     * @throws IOException              if the file cannot be read
     * @throws IllegalArgumentException naming the file (and prompt index and field) for malformed content
     */
    public static DatasetFile readFile(Path file) throws IOException {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            // a folder fails with a bare IOException and a FIFO blocks the read until a writer comes
            throw new IllegalArgumentException(file + ": not a regular file (a folder, FIFO or device); expected a "
                + "dataset JSON file");
        }
        JsonNode root;
        String text;
        try {
            // strict UTF-8, decoded here: Jackson's own byte-level detection would guess UTF-16/32 for some binary
            // input and fail with a CharConversionException instead of saying what is wrong
            text = java.nio.charset.StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT)
                .decode(java.nio.ByteBuffer.wrap(Files.readAllBytes(file))).toString();
        } catch (java.nio.charset.CharacterCodingException e) {
            throw new IllegalArgumentException(file + ": not UTF-8 text (a binary file?); expected a dataset JSON file", e);
        }
        try {
            root = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage()
                + (e.getLocation() == null ? "" : " (line " + e.getLocation().getLineNr() + ", column "
                + e.getLocation().getColumnNr() + ")"), e);
        }
        if (root == null || root.isMissingNode()) throw new IllegalArgumentException(file + ": the file is empty");
        if (!root.isObject()) {
            throw new IllegalArgumentException(file + ": expected a JSON object with \"prompts\", got " + describe(root));
        }
        for (Iterator<String> it = root.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!TOP_KEYS.contains(key)) {
                throw new IllegalArgumentException(file + ": unknown key " + quote(key)
                    + " (expected \"prompts\", optional \"seq_labels\" and \"word_idxs\")");
            }
        }
        JsonNode prompts = root.get("prompts");
        if (prompts == null) throw new IllegalArgumentException(file + ": missing field \"prompts\"");
        if (!prompts.isArray()) {
            throw new IllegalArgumentException(file + ": \"prompts\" must be a list, got " + describe(prompts));
        }
        if (prompts.isEmpty()) throw new IllegalArgumentException(file + ": \"prompts\" is empty; expected at least one prompt");
        List<RawPromptPair> pairs = new ArrayList<>(prompts.size());
        for (int i = 0; i < prompts.size(); i++) pairs.add(readPrompt(file, i, prompts.get(i)));

        List<String> seqLabels = new ArrayList<>();
        JsonNode labels = root.get("seq_labels");
        if (labels != null && !labels.isNull()) {
            if (!labels.isArray()) {
                throw new IllegalArgumentException(file + ": \"seq_labels\" must be a list of strings, got " + describe(labels));
            }
            for (int i = 0; i < labels.size(); i++) {
                if (!labels.get(i).isTextual()) {
                    throw new IllegalArgumentException(file + ": seq_labels[" + i + "] must be a string, got "
                        + describe(labels.get(i)));
                }
                seqLabels.add(labels.get(i).textValue());
            }
        }
        Map<String, Integer> wordIdxs = new LinkedHashMap<>();
        JsonNode words = root.get("word_idxs");
        if (words != null && !words.isNull()) {
            if (!words.isObject()) {
                throw new IllegalArgumentException(file + ": \"word_idxs\" must be an object of name → index, got "
                    + describe(words));
            }
            for (var it = words.fields(); it.hasNext(); ) {
                var e = it.next();
                JsonNode v = e.getValue();
                if (!v.isIntegralNumber() || !v.canConvertToInt() || v.intValue() < 0) {
                    throw new IllegalArgumentException(file + ": word_idxs." + e.getKey()
                        + " must be a non-negative integer token index, got " + describe(v));
                }
                wordIdxs.put(e.getKey(), v.intValue());
            }
        }
        return new DatasetFile(pairs, seqLabels, wordIdxs);
    }

    private static RawPromptPair readPrompt(Path file, int i, JsonNode p) {
        String at = file + ": prompts[" + i + "]";
        if (!p.isObject()) throw new IllegalArgumentException(at + ": expected an object, got " + describe(p));
        for (Iterator<String> it = p.fieldNames(); it.hasNext(); ) {
            String key = it.next();
            if (!PROMPT_KEYS.contains(key)) {
                throw new IllegalArgumentException(at + ": unknown key " + quote(key)
                    + " (expected exactly \"clean\", \"corrupt\", \"answers\", \"wrong_answers\")");
            }
        }
        for (String key : PROMPT_KEYS) {
            if (!p.has(key)) throw new IllegalArgumentException(at + ": missing field " + quote(key));
        }
        JsonNode clean = p.get("clean");
        JsonNode corrupt = p.get("corrupt");
        checkPromptValue(at + ".clean", clean);
        checkPromptValue(at + ".corrupt", corrupt);
        if (clean.isTextual() != corrupt.isTextual()) {
            throw new IllegalArgumentException(at + ": clean is " + describe(clean) + " but corrupt is " + describe(corrupt)
                + "; both must be strings or both lists of numbers");
        }
        checkAnswers(at + ".answers", p.get("answers"));
        checkAnswers(at + ".wrong_answers", p.get("wrong_answers"));
        return new RawPromptPair(clean, corrupt, p.get("answers"), p.get("wrong_answers"));
    }

    private static void checkPromptValue(String where, JsonNode v) {
        if (v.isTextual()) return;
        if (!v.isArray()) {
            throw new IllegalArgumentException(where + ": expected a string or a list of numbers, got " + describe(v));
        }
        numbers(v, where);
    }

    private static void checkAnswers(String where, JsonNode v) {
        if (!v.isArray()) throw new IllegalArgumentException(where + ": expected a list, got " + describe(v));
        if (v.isEmpty()) throw new IllegalArgumentException(where + " is empty; expected at least one answer");
        boolean text = v.get(0).isTextual();
        for (int j = 0; j < v.size(); j++) {
            JsonNode a = v.get(j);
            if (a.isTextual() != text) {
                throw new IllegalArgumentException(where + "[" + j + "] is " + describe(a) + ", but " + where + "[0] is "
                    + describe(v.get(0)) + "; answers must be all strings or all numbers");
            }
        }
        if (!text) numbers(v, where);
    }

    /**
     * Writes a dataset file in AutoCircuit's format ({@code seq_labels} and {@code word_idxs} only when non-empty),
     * to a temporary file in the same folder that is then renamed over {@code file}, so readers never see half a file.
     */
    public static void write(Path file, DatasetFile data) throws IOException {
        ObjectNode root = MAPPER.createObjectNode();
        if (!data.seqLabels().isEmpty()) {
            ArrayNode labels = root.putArray("seq_labels");
            data.seqLabels().forEach(labels::add);
        }
        if (!data.wordIdxs().isEmpty()) {
            ObjectNode words = root.putObject("word_idxs");
            data.wordIdxs().forEach(words::put);
        }
        ArrayNode prompts = root.putArray("prompts");
        for (RawPromptPair p : data.prompts()) {
            ObjectNode o = prompts.addObject();
            o.set("clean", p.clean());
            o.set("corrupt", p.corrupt());
            o.set("answers", p.answers());
            o.set("wrong_answers", p.wrongAnswers());
        }
        Path abs = file.toAbsolutePath();
        Path dir = abs.getParent();
        if (dir != null) Files.createDirectories(dir);
        AtomicFiles.write(abs, out -> MAPPER.writeValue(out, root));
    }

    private static String describe(JsonNode n) {
        String kind = switch (n.getNodeType()) {
            case ARRAY -> "a list";
            case OBJECT -> "an object";
            case STRING -> "a string";
            case NUMBER -> "a number";
            case BOOLEAN -> "a boolean";
            case NULL -> "null";
            default -> n.getNodeType().toString().toLowerCase();
        };
        String text = n.toString();
        return kind + " " + (text.length() > 60 ? text.substring(0, 57) + "..." : text);
    }

    private static String quote(String s) {
        return '"' + s + '"';
    }
}
