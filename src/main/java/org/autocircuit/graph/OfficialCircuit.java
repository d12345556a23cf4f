package org.autocircuit.graph;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.Set;

/**
 * A circuit that a paper found by hand (AutoCircuit's {@code metrics/official_circuits}), as data: which
 * edges (or, for the node-based variants, which attention heads) belong to it, and at which token positions.
 * Files live in {@code datasets/official-circuits/} and are read with {@link #read(Path)}; {@link #resolve} turns
 * one into the {@link Edge}s of a concrete {@link Graph}.
 *
 * <h2>File format</h2>
 * <pre>{@code
 * {
 *   "format": "autocircuit-official-circuit/1",
 *   "name": "ioi", "title": "...", "source": "...", "model": "gpt2-small",
 *   "factorized": true, "separate_qkv": true,
 *   "word_positions": ["IO", "S1", "S1+1", "S2", "end"],
 *   "kind": "edges",                       // or "heads"
 *   "groups": [
 *     {"at": ["S1+1"], "names": ["Resid Start->A2.2.Q", ...]},
 *     {"at": ["end"], "component": false, "names": ["MLP 9->Resid End", ...]},
 *     {"at": "all", "names": [...]},
 *     {"at": {"from": "B_def", "to": "param_3"}, "names": [...]}
 *   ]
 * }
 * }</pre>
 * <ul>
 *   <li>{@code kind: "edges"}: {@code names} are edge names {@code "src->dest"}. The circuit is every named edge;
 *       in a token graph only at the listed positions (the union over every group that names it).</li>
 *   <li>{@code kind: "heads"}: {@code names} are attention-head src nodes ({@code "A9.9"}). The circuit is every
 *       edge of the graph <em>except</em> those out of a head that is not listed (token graphs: not listed at
 *       that position). Edges out of Resid Start and MLPs are always in, as in AutoCircuit's node-based
 *       circuits, which model patching whole heads.</li>
 *   <li>{@code at}: a list of word names (keys of the dataset's {@code word_idxs}, already shifted for BOS) or
 *       literal token indices; {@code "all"} (every position: the paper gives none); {@code {"from": a, "to": b}}
 *       (every index from a to b inclusive) or {@code {"from": a, "until": b}} (b exclusive).</li>
 *   <li>{@code component} (default true): whether the group counts in a component graph (no positions).
 *       {@code false} marks edges AutoCircuit only produces for token circuits (see the IOI file).</li>
 * </ul>
 * Token indices are in the coordinates of the full prompt; an edge at graph position {@code s} matches index
 * {@code s + seqStartIdx} (the prompt prefix cut by tail divergence), and indices that fall outside the graph's
 * positions select nothing, as in AutoCircuit.
 *
 * <p>Unlike AutoCircuit, which silently drops names its model lacks, {@link #resolve} throws, naming the missing
 * node: the files list only edges that exist in the model they were written for, so a miss means the circuit is
 * applied to the wrong graph. Immutable.
 */
public final class OfficialCircuit {

    /** Value of the {@code format} field this reader understands. */
    public static final String FORMAT = "autocircuit-official-circuit/1";

    private static final ObjectMapper MAPPER = new ObjectMapper()
        .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
        .enable(SerializationFeature.INDENT_OUTPUT);

    /** Whether the names are edges or kept heads. */
    public enum Kind { EDGES, HEADS }

    /**
     * Where in the prompt a group applies.
     */
    public sealed interface Positions {
        /** Every token position. */
        record All() implements Positions { }

        /** Listed positions: each a word name ({@code String}) or a literal index ({@code Integer}). */
        record Listed(List<Object> items) implements Positions {
            public Listed {
                items = List.copyOf(items);
                for (Object o : items) {
                    if (!(o instanceof String) && !(o instanceof Integer)) {
                        throw new IllegalArgumentException("a position is a word name or an int, got " + o);
                    }
                }
            }
        }

        /** Every index from {@code from} to {@code to} (inclusive when {@code inclusive}); each a word or an int. */
        record Span(Object from, Object to, boolean inclusive) implements Positions { }
    }

    /** One group of names sharing positions. */
    public record Group(Positions at, boolean component, List<String> names) {
        public Group {
            Objects.requireNonNull(at, "at");
            names = List.copyOf(names);
        }
    }

    private final String name;
    private final String title;
    private final String source;
    private final String model;
    private final boolean factorized;
    private final boolean separateQkv;
    private final List<String> wordPositions;
    private final Kind kind;
    private final List<Group> groups;

    public OfficialCircuit(String name, String title, String source, String model, boolean factorized,
                           boolean separateQkv, List<String> wordPositions, Kind kind, List<Group> groups) {
        if (name == null || name.isBlank()) throw new IllegalArgumentException("an official circuit needs a name");
        this.name = name;
        this.title = title == null ? name : title;
        this.source = source == null ? "" : source;
        this.model = model == null ? "" : model;
        this.factorized = factorized;
        this.separateQkv = separateQkv;
        this.wordPositions = List.copyOf(wordPositions);
        this.kind = Objects.requireNonNull(kind, "kind");
        this.groups = List.copyOf(groups);
    }

    public String name() { return name; }

    public String title() { return title; }

    /** The paper and code the circuit comes from. */
    public String source() { return source; }

    /** The model the circuit was found in (e.g. {@code gpt2-small}). */
    public String model() { return model; }

    public boolean factorized() { return factorized; }

    public boolean separateQkv() { return separateQkv; }

    /** The {@code word_idxs} keys a token-level resolution needs. */
    public List<String> wordPositions() { return wordPositions; }

    public Kind kind() { return kind; }

    public List<Group> groups() { return groups; }

    // ---- resolution ----

    /** {@link #resolve(Graph, Map, int)} for a component graph (no positions needed). */
    public Set<Edge> resolve(Graph graph) {
        return resolve(graph, Map.of(), 0);
    }

    /**
     * The edges of {@code graph} in this circuit (AutoCircuit's {@code *_true_edges(model, token_positions =
     * graph has seqLen, word_idxs, seq_start_idx)}).
     *
     * @param graph       a graph of the model this circuit describes (any sequence length)
     * @param wordIdxs    the loader's {@code word_idxs} (shifted for BOS); needed for token graphs
     * @param seqStartIdx how many leading tokens the loader cut off (its {@code divergeIdx})
     * @return the circuit's edges, in {@link Graph#edges()} order
     * @throws IllegalArgumentException naming the node or edge the graph lacks, or the word {@code wordIdxs} lacks
     */
    public Set<Edge> resolve(Graph graph, Map<String, Integer> wordIdxs, int seqStartIdx) {
        Objects.requireNonNull(graph, "graph");
        Map<String, Integer> words = wordIdxs == null ? Map.of() : wordIdxs;
        if (seqStartIdx < 0) throw new IllegalArgumentException("seqStartIdx must be >= 0, got " + seqStartIdx);
        boolean tokens = graph.seqLen().isPresent();
        int seqLen = graph.seqLen().orElse(0);
        // edge name (or head name) -> graph positions, or null for "every position"
        Map<String, Set<Integer>> selected = new LinkedHashMap<>();
        Set<String> allPositions = new LinkedHashSet<>();
        for (Group g : groups) {
            if (!tokens && !g.component()) continue;
            for (String n : g.names()) {
                checkName(graph, n);
                Set<Integer> at = selected.computeIfAbsent(n, k -> new LinkedHashSet<>());
                if (!tokens || g.at() instanceof Positions.All) {
                    allPositions.add(n);
                } else {
                    for (int idx : indices(g.at(), words)) {
                        int s = idx - seqStartIdx;
                        if (s >= 0 && s < seqLen) at.add(s);
                    }
                }
            }
        }
        return kind == Kind.EDGES ? edgesOf(graph, selected, allPositions) : headBased(graph, selected, allPositions);
    }

    private Set<Edge> edgesOf(Graph graph, Map<String, Set<Integer>> selected, Set<String> allPositions) {
        List<Integer> idx = new ArrayList<>();
        for (Map.Entry<String, Set<Integer>> e : selected.entrySet()) {
            if (graph.seqLen().isEmpty()) {
                idx.add(graph.edgeIndex(graph.edge(e.getKey())));
            } else if (allPositions.contains(e.getKey())) {
                for (Edge edge : graph.edgesNamed(e.getKey())) idx.add(graph.edgeIndex(edge));
            } else {
                for (int s : e.getValue()) idx.add(graph.edgeIndex(graph.edge(e.getKey(), OptionalInt.of(s))));
            }
        }
        Collections.sort(idx);
        Set<Edge> out = new LinkedHashSet<>();
        for (int i : idx) out.add(graph.edges().get(i));
        return Collections.unmodifiableSet(out);
    }

    private static Set<Edge> headBased(Graph graph, Map<String, Set<Integer>> kept, Set<String> allPositions) {
        Set<Edge> out = new LinkedHashSet<>();
        for (Edge e : graph.edges()) {
            SrcNode src = e.src();
            if (src.headIdx().isPresent()) {
                Set<Integer> at = kept.get(src.name());
                if (at == null) continue;
                if (e.seqIdx().isPresent() && !allPositions.contains(src.name())
                        && !at.contains(e.seqIdx().getAsInt())) {
                    continue;
                }
            }
            out.add(e);
        }
        return Collections.unmodifiableSet(out);
    }

    private void checkName(Graph graph, String n) {
        if (kind == Kind.HEADS) {
            SrcNode s = srcOrThrow(graph, n);
            if (s.headIdx().isEmpty()) {
                throw new IllegalArgumentException("official circuit '" + name + "' keeps head '" + n
                    + "', but that src node of " + graph + " is not an attention head");
            }
            return;
        }
        int arrow = n.indexOf("->");
        if (arrow < 0) {
            throw new IllegalArgumentException("official circuit '" + name + "': '" + n
                + "' is not an edge name of the form src->dest");
        }
        srcOrThrow(graph, n.substring(0, arrow));
        String dest = n.substring(arrow + 2);
        try {
            graph.dest(dest);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("official circuit '" + name + "' (" + model + ") names dest node '"
                + dest + "' in edge '" + n + "', which " + graph + " lacks" + qkvHint(dest), e);
        }
        if (!graph.containsEdgeNamed(n)) {
            throw new IllegalArgumentException("official circuit '" + name + "' names edge '" + n + "', but in "
                + graph + " that src does not feed that dest (wrong layer order or an unfactorized graph)");
        }
    }

    private SrcNode srcOrThrow(Graph graph, String src) {
        try {
            return graph.src(src);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("official circuit '" + name + "' (" + model + ") names src node '"
                + src + "', which " + graph + " lacks", e);
        }
    }

    private String qkvHint(String dest) {
        return separateQkv && dest.matches("A\\d+\\.\\d+\\.[QKV]")
            ? " (this circuit needs a graph with separate Q/K/V dests)" : "";
    }

    private List<Integer> indices(Positions at, Map<String, Integer> words) {
        List<Integer> out = new ArrayList<>();
        if (at instanceof Positions.Listed l) {
            for (Object o : l.items()) out.add(index(o, words));
        } else if (at instanceof Positions.Span s) {
            int from = index(s.from(), words);
            int to = index(s.to(), words);
            for (int i = from; s.inclusive() ? i <= to : i < to; i++) out.add(i);
        }
        return out;
    }

    private int index(Object position, Map<String, Integer> words) {
        if (position instanceof Integer i) return i;
        Integer v = words.get((String) position);
        if (v == null) {
            throw new IllegalArgumentException("official circuit '" + name + "' needs the token position of '"
                + position + "' for a token-level graph, but the dataset's word_idxs has only " + words.keySet()
                + " (needed: " + wordPositions + ")");
        }
        return v;
    }

    // ---- reading and writing ----

    /**
     * Reads a circuit file.
     *
     * @throws IOException              if it cannot be read
     * @throws IllegalArgumentException naming the file and field when the content is malformed
     */
    public static OfficialCircuit read(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "official circuit file not found");
        JsonNode root;
        try {
            root = MAPPER.readTree(file.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        return fromJson(root, file.toString());
    }

    /** Parses a circuit from its JSON tree; {@code where} names the source in error messages. */
    public static OfficialCircuit fromJson(JsonNode root, String where) {
        if (root == null || !root.isObject()) throw new IllegalArgumentException(where + ": expected a JSON object");
        String format = root.path("format").asText(null);
        if (!FORMAT.equals(format)) {
            throw new IllegalArgumentException(where + ": field 'format' is " + root.get("format") + "; expected \""
                + FORMAT + "\"");
        }
        String kindText = text(root, "kind", where);
        Kind kind = switch (kindText) {
            case "edges" -> Kind.EDGES;
            case "heads" -> Kind.HEADS;
            default -> throw new IllegalArgumentException(where + ": field 'kind' is \"" + kindText
                + "\"; expected \"edges\" or \"heads\"");
        };
        List<String> words = new ArrayList<>();
        for (JsonNode w : root.path("word_positions")) words.add(w.asText());
        JsonNode groupsNode = root.get("groups");
        if (groupsNode == null || !groupsNode.isArray()) {
            throw new IllegalArgumentException(where + ": field 'groups' must be a list");
        }
        List<Group> groups = new ArrayList<>();
        for (int i = 0; i < groupsNode.size(); i++) {
            JsonNode g = groupsNode.get(i);
            String at = where + ": groups[" + i + "]";
            JsonNode names = g.get("names");
            if (names == null || !names.isArray()) throw new IllegalArgumentException(at + ".names must be a list");
            List<String> list = new ArrayList<>();
            for (JsonNode n : names) {
                if (!n.isTextual()) throw new IllegalArgumentException(at + ".names holds " + n + "; expected strings");
                list.add(n.asText());
            }
            boolean component = !g.has("component") || g.get("component").asBoolean(true);
            groups.add(new Group(positions(g.get("at"), at + ".at"), component, list));
        }
        return new OfficialCircuit(text(root, "name", where), root.path("title").asText(null),
            root.path("source").asText(null), root.path("model").asText(null), root.path("factorized").asBoolean(true),
            root.path("separate_qkv").asBoolean(true), words, kind, groups);
    }

    private static Positions positions(JsonNode at, String where) {
        if (at == null) throw new IllegalArgumentException(where + " is missing");
        if (at.isTextual() && at.asText().equals("all")) return new Positions.All();
        if (at.isArray()) {
            List<Object> items = new ArrayList<>();
            for (JsonNode p : at) items.add(position(p, where));
            return new Positions.Listed(items);
        }
        if (at.isObject() && at.has("from") && (at.has("to") ^ at.has("until"))) {
            boolean inclusive = at.has("to");
            return new Positions.Span(position(at.get("from"), where), position(at.get(inclusive ? "to" : "until"), where),
                inclusive);
        }
        throw new IllegalArgumentException(where + " is " + at + "; expected \"all\", a list of words/indices, "
            + "{\"from\": a, \"to\": b} or {\"from\": a, \"until\": b}");
    }

    private static Object position(JsonNode p, String where) {
        if (p.isTextual()) return p.asText();
        if (p.isInt()) return p.asInt();
        throw new IllegalArgumentException(where + " holds " + p + "; expected a word name or an integer index");
    }

    private static String text(JsonNode root, String field, String where) {
        JsonNode n = root.get(field);
        if (n == null || !n.isTextual()) throw new IllegalArgumentException(where + ": field '" + field + "' must be a string");
        return n.asText();
    }

    /** This circuit as its JSON tree (the format above). */
    public ObjectNode toJson() {
        ObjectNode root = MAPPER.createObjectNode();
        root.put("format", FORMAT);
        root.put("name", name);
        root.put("title", title);
        root.put("source", source);
        root.put("model", model);
        root.put("factorized", factorized);
        root.put("separate_qkv", separateQkv);
        ArrayNode words = root.putArray("word_positions");
        wordPositions.forEach(words::add);
        root.put("kind", kind == Kind.EDGES ? "edges" : "heads");
        ArrayNode gs = root.putArray("groups");
        for (Group g : groups) {
            ObjectNode o = gs.addObject();
            if (g.at() instanceof Positions.All) {
                o.put("at", "all");
            } else if (g.at() instanceof Positions.Listed l) {
                ArrayNode a = o.putArray("at");
                for (Object p : l.items()) addPosition(a, p);
            } else if (g.at() instanceof Positions.Span s) {
                ObjectNode span = o.putObject("at");
                putPosition(span, "from", s.from());
                putPosition(span, s.inclusive() ? "to" : "until", s.to());
            }
            if (!g.component()) o.put("component", false);
            ArrayNode n = o.putArray("names");
            g.names().forEach(n::add);
        }
        return root;
    }

    private static void addPosition(ArrayNode a, Object p) {
        if (p instanceof Integer i) a.add(i); else a.add((String) p);
    }

    private static void putPosition(ObjectNode o, String field, Object p) {
        if (p instanceof Integer i) o.put(field, i); else o.put(field, (String) p);
    }

    /** The JSON text of {@link #toJson()} (two-space indented, one name per line). */
    public String toJsonString() {
        try {
            // One name per line, so a diff of a circuit file shows which edges changed.
            DefaultPrettyPrinter pp = new DefaultPrettyPrinter().withArrayIndenter(DefaultIndenter.SYSTEM_LINEFEED_INSTANCE);
            return MAPPER.writer(pp).writeValueAsString(toJson()) + "\n";
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalStateException("cannot serialise official circuit " + name, e);
        }
    }

    /** Writes the file atomically (temp file, then rename). */
    public void write(Path file) throws IOException {
        writeAtomically(file, toJsonString());
    }

    /** Writes {@code text} to a temp file beside {@code file}, then renames it over {@code file}. */
    static void writeAtomically(Path file, String text) throws IOException {
        Path dir = file.toAbsolutePath().getParent();
        if (dir != null) Files.createDirectories(dir);
        org.autocircuit.util.AtomicFiles.write(file, out -> out.write(text.getBytes(java.nio.charset.StandardCharsets.UTF_8)));
    }

    /** Number of distinct names (edges or heads) over all groups. */
    public int nameCount() {
        Set<String> all = new LinkedHashSet<>();
        for (Group g : groups) all.addAll(g.names());
        return all.size();
    }

    @Override
    public String toString() {
        return "OfficialCircuit[" + name + ", " + kind.name().toLowerCase() + ", " + nameCount() + " names, model "
            + model + "]";
    }
}
