package org.autocircuit.graph;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Collection;
import java.util.Collections;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Objects;
import java.util.OptionalInt;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A circuit (edge set and edge scores) in the JSON graph format of the Mechanistic Interpretability Benchmark's
 * circuit-localization track (MIB; the EAP-IG library's {@code Graph.to_json} / {@code Graph.from_json}).
 *
 * <h2>What is written</h2>
 * <pre>{@code
 * {
 *   "cfg":   {"n_layers": 12, "n_heads": 12, "parallel_attn_mlp": false, "d_model": 768},
 *   "nodes": {"input": {"in_graph": true}, "a0.h0": {"in_graph": false}, ..., "m11": {...}, "logits": {"in_graph": true}},
 *   "edges": {"input->a0.h0<q>": {"score": 0.013, "in_graph": false}, ..., "m11->logits": {...}}
 * }
 * }</pre>
 * Names map one to one: {@code Resid Start} = {@code input}, {@code A9.9} = {@code a9.h9}, {@code MLP 3} =
 * {@code m3}, {@code Resid End} = {@code logits}, and a dest {@code A9.9.Q} is the {@code <q>} input of
 * {@code a9.h9}, so the edge {@code A7.3->A9.9.Q} is {@code a7.h3->a9.h9<q>}. Every edge of the graph is written,
 * with its score and whether it is in the circuit; a node is in the graph when a circuit edge touches it
 * ({@code input} and {@code logits} always are).
 *
 * <h2>Conversions</h2>
 * <ul>
 *   <li>A graph with one combined attention dest per head ({@code separateQkv=false}) writes each edge into a head
 *       as three MIB edges ({@code <q>}, {@code <k>}, {@code <v>}) with the same score and membership.</li>
 *   <li>MIB circuits have no token positions. A token graph is collapsed: an edge is in the circuit if it is at any
 *       position, and its score is the score of largest magnitude over positions (sign kept).</li>
 *   <li>Only factorized transformer graphs can be written (MIB's edges join every earlier component to every
 *       later one). MIB assumes every block has an MLP; an attention-only model's file simply has no MLP edges,
 *       which MIB's loader leaves at score 0, out of the graph.</li>
 * </ul>
 * {@link #read} reads such a file back into a component graph with separate Q/K/V dests.
 */
public final class MibCircuit {

    private static final ObjectMapper MAPPER = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
    private static final Pattern HEAD = Pattern.compile("A(\\d+)\\.(\\d+)");
    private static final Pattern HEAD_DEST = Pattern.compile("A(\\d+)\\.(\\d+)\\.([QKV])");
    private static final Pattern MLP = Pattern.compile("MLP (\\d+)");
    private static final Pattern MIB_HEAD = Pattern.compile("a(\\d+)\\.h(\\d+)");
    private static final Pattern MIB_HEAD_DEST = Pattern.compile("a(\\d+)\\.h(\\d+)<([qkv])>");
    private static final Pattern MIB_MLP = Pattern.compile("m(\\d+)");

    private MibCircuit() {
    }

    /** MIB's {@code cfg}: what its loader needs to rebuild the graph. */
    public record Config(int nLayers, int nHeads, boolean parallelAttnMlp, int dModel) {
        public Config {
            if (nLayers <= 0 || nHeads <= 0 || dModel <= 0) {
                throw new IllegalArgumentException("MIB config needs positive sizes, got " + nLayers + " layers, "
                    + nHeads + " heads, d_model " + dModel);
            }
        }

        /** From the graph's shape and the model's residual width. */
        public static Config of(TransformerShape shape, int dModel) {
            return new Config(shape.nLayers(), shape.nHeads(), shape.parallelAttnMlp(), dModel);
        }
    }

    /** A circuit read back: every edge's score, and the edges in the circuit. */
    public record Read(PruneScores scores, Set<Edge> circuit, Config config) {
    }

    /**
     * The MIB JSON of a circuit.
     *
     * @param scores  a score per edge of a factorized transformer graph
     * @param circuit the edges in the circuit (edges of the same graph)
     * @param config  MIB's {@code cfg}
     * @throws IllegalArgumentException for an unfactorized or non-transformer graph, or a foreign edge
     */
    public static ObjectNode toJson(PruneScores scores, Collection<Edge> circuit, Config config) {
        Objects.requireNonNull(scores, "scores");
        Objects.requireNonNull(circuit, "circuit");
        Objects.requireNonNull(config, "config");
        Graph g = scores.graph();
        if (!g.factorized()) {
            throw new IllegalArgumentException("MIB circuits are factorized, but " + g + " is the unfactorized graph");
        }
        boolean[] in = new boolean[g.nEdges()];
        for (Edge e : circuit) in[g.edgeIndex(e)] = true;
        float[] flat = scores.flat();

        // name -> {score, inGraph}; token graphs collapse positions
        Map<String, float[]> edges = new LinkedHashMap<>();
        Set<String> touched = new HashSet<>();
        for (int i = 0; i < flat.length; i++) {
            Edge e = g.edges().get(i);
            String parent = mibSrc(e.src().name());
            for (String child : mibDests(e.dest().name())) {
                String name = parent + "->" + child;
                float[] v = edges.get(name);
                if (v == null) {
                    edges.put(name, new float[] {flat[i], in[i] ? 1 : 0});
                } else {
                    if (Math.abs(flat[i]) > Math.abs(v[0])) v[0] = flat[i];
                    if (in[i]) v[1] = 1;
                }
                if (in[i]) {
                    touched.add(parent);
                    touched.add(child.replaceAll("<[qkv]>$", ""));
                }
            }
        }

        ObjectNode root = MAPPER.createObjectNode();
        ObjectNode cfg = root.putObject("cfg");
        cfg.put("n_layers", config.nLayers());
        cfg.put("n_heads", config.nHeads());
        cfg.put("parallel_attn_mlp", config.parallelAttnMlp());
        cfg.put("d_model", config.dModel());
        ObjectNode nodes = root.putObject("nodes");
        nodes.putObject("input").put("in_graph", true);
        for (SrcNode s : g.srcs()) {
            String n = mibSrc(s.name());
            if (!n.equals("input")) nodes.putObject(n).put("in_graph", touched.contains(n));
        }
        nodes.putObject("logits").put("in_graph", true);
        ObjectNode out = root.putObject("edges");
        edges.forEach((name, v) -> {
            ObjectNode o = out.putObject(name);
            o.put("score", v[0]);
            o.put("in_graph", v[1] != 0);
        });
        return root;
    }

    /** Writes {@link #toJson} to {@code file} atomically (temp file, then rename). */
    public static void write(Path file, PruneScores scores, Collection<Edge> circuit, Config config) throws IOException {
        String text = MAPPER.writeValueAsString(toJson(scores, circuit, config)) + "\n";
        OfficialCircuit.writeAtomically(file, text);
    }

    /**
     * Reads an MIB circuit file into {@code graph}.
     *
     * @param graph a factorized component graph with separate Q/K/V dests, of the model the file describes
     * @throws IllegalArgumentException naming the file and the edge that does not fit the graph
     */
    public static Read read(Path file, Graph graph) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "MIB circuit file not found");
        if (graph.seqLen().isPresent() || !graph.factorized()) {
            throw new IllegalArgumentException("MIB circuits read into a factorized component graph, not " + graph);
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(file.toFile());
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        for (String key : new String[] {"cfg", "nodes", "edges"}) {
            if (root == null || !root.has(key) || !root.get(key).isObject()) {
                throw new IllegalArgumentException(file + ": expected an object with 'cfg', 'nodes' and 'edges' (MIB "
                    + "circuit format); '" + key + "' is missing or not an object");
            }
        }
        JsonNode cfg = root.get("cfg");
        Config config = new Config(cfg.path("n_layers").asInt(0), cfg.path("n_heads").asInt(0),
            cfg.path("parallel_attn_mlp").asBoolean(false), cfg.path("d_model").asInt(0));
        float[] values = new float[graph.nEdges()];
        Set<Integer> in = new java.util.TreeSet<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.get("edges").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String ours = ourEdgeName(e.getKey(), file);
            if (!graph.containsEdgeNamed(ours)) {
                throw new IllegalArgumentException(file + ": edge '" + e.getKey() + "' (" + ours + ") is not in " + graph);
            }
            int idx = graph.edgeIndex(graph.edge(ours, OptionalInt.empty()));
            JsonNode v = e.getValue();
            if (!v.path("score").isNumber()) {
                throw new IllegalArgumentException(file + ": edges['" + e.getKey() + "'].score must be a number, got "
                    + v.get("score"));
            }
            values[idx] = v.get("score").floatValue();
            if (v.path("in_graph").asBoolean(false)) in.add(idx);
        }
        Set<Edge> circuit = new LinkedHashSet<>();
        for (int i : in) circuit.add(graph.edges().get(i));
        return new Read(PruneScores.ofFlat(graph, values), Collections.unmodifiableSet(circuit), config);
    }

    // ---- names ----

    static String mibSrc(String ours) {
        if (ours.equals("Resid Start")) return "input";
        Matcher h = HEAD.matcher(ours);
        if (h.matches()) return "a" + h.group(1) + ".h" + h.group(2);
        Matcher m = MLP.matcher(ours);
        if (m.matches()) return "m" + m.group(1);
        throw new IllegalArgumentException("src node '" + ours + "' has no MIB name (MIB knows input, heads and MLPs of "
            + "a factorized transformer graph)");
    }

    static String[] mibDests(String ours) {
        if (ours.equals("Resid End")) return new String[] {"logits"};
        Matcher q = HEAD_DEST.matcher(ours);
        if (q.matches()) return new String[] {"a" + q.group(1) + ".h" + q.group(2) + "<" + q.group(3).toLowerCase() + ">"};
        Matcher h = HEAD.matcher(ours);
        if (h.matches()) {
            String head = "a" + h.group(1) + ".h" + h.group(2);
            return new String[] {head + "<q>", head + "<k>", head + "<v>"};
        }
        Matcher m = MLP.matcher(ours);
        if (m.matches()) return new String[] {"m" + m.group(1)};
        throw new IllegalArgumentException("dest node '" + ours + "' has no MIB name (MIB knows heads' q/k/v inputs, MLPs "
            + "and logits of a factorized transformer graph)");
    }

    private static String ourEdgeName(String mib, Path file) {
        int arrow = mib.indexOf("->");
        if (arrow < 0) throw new IllegalArgumentException(file + ": edge name '" + mib + "' is not parent->child");
        String parent = mib.substring(0, arrow);
        String child = mib.substring(arrow + 2);
        String src;
        Matcher h = MIB_HEAD.matcher(parent);
        Matcher m = MIB_MLP.matcher(parent);
        if (parent.equals("input")) src = "Resid Start";
        else if (h.matches()) src = "A" + h.group(1) + "." + h.group(2);
        else if (m.matches()) src = "MLP " + m.group(1);
        else throw new IllegalArgumentException(file + ": unknown MIB parent node '" + parent + "' in edge '" + mib + "'");
        String dest;
        Matcher hq = MIB_HEAD_DEST.matcher(child);
        Matcher mc = MIB_MLP.matcher(child);
        if (child.equals("logits")) dest = "Resid End";
        else if (hq.matches()) dest = "A" + hq.group(1) + "." + hq.group(2) + "." + hq.group(3).toUpperCase();
        else if (mc.matches()) dest = "MLP " + mc.group(1);
        else throw new IllegalArgumentException(file + ": unknown MIB child node '" + child + "' in edge '" + mib + "'");
        return src + "->" + dest;
    }
}
