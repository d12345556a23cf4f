package org.autocircuit.graph;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;

/**
 * An official (ground-truth) circuit stored as JSON, by edge names of the factorized graph:
 * <pre>{@code
 * {
 *   "name": "induction-2l",
 *   "graph": {"factorized": true, "separate_qkv": true},
 *   "edges": ["Resid Start->A0.1.K", "A0.1->A1.2.K", "A1.2->Resid End"],
 *   "token_positions": {"A1.2->Resid End": [16]},
 *   "notes": "free text; any other top-level key holding documentation is kept as JSON"
 * }
 * }</pre>
 * {@code edges} is required. {@code token_positions} (optional) restricts an edge to some token positions
 * (indices in the model's input, BOS included) when the circuit is applied to a token-position graph; an edge
 * it does not list is in the circuit at every position, as AutoCircuit matches edges by name. Component graphs
 * ignore positions.
 *
 * <p>Unlike AutoCircuit's official-circuit functions, which silently drop names the model lacks, {@link #edges}
 * fails on any name the graph does not have: an official circuit that does not fit its model is a bug.
 */
public final class OfficialCircuitFile {
    private static final ObjectMapper MAPPER = new ObjectMapper().enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

    private final Path source;
    private final String name;
    private final List<String> edgeNames;
    private final Map<String, List<Integer>> positions;
    private final JsonNode document;

    private OfficialCircuitFile(Path source, String name, List<String> edgeNames, Map<String, List<Integer>> positions,
                                JsonNode document) {
        this.source = source;
        this.name = name;
        this.edgeNames = List.copyOf(edgeNames);
        this.positions = Collections.unmodifiableMap(positions);
        this.document = document;
    }

    /**
     * Reads and checks the structure of a file (not yet against a graph).
     *
     * @throws IllegalArgumentException naming the file and field for malformed content or duplicate edges
     */
    public static OfficialCircuitFile read(Path file) throws IOException {
        JsonNode root;
        try {
            root = MAPPER.readTree(Files.readString(file));
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(file + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) throw new IllegalArgumentException(file + ": expected a JSON object");
        String name = root.path("name").asText(file.getFileName().toString());
        JsonNode edges = root.get("edges");
        if (edges == null || !edges.isArray() || edges.isEmpty()) {
            throw new IllegalArgumentException(file + ": field \"edges\" must be a non-empty list of edge names");
        }
        Set<String> names = new LinkedHashSet<>();
        for (int i = 0; i < edges.size(); i++) {
            JsonNode e = edges.get(i);
            if (!e.isTextual() || !e.textValue().contains("->")) {
                throw new IllegalArgumentException(file + ": edges[" + i + "] must be an edge name \"src->dest\", got " + e);
            }
            if (!names.add(e.textValue())) {
                throw new IllegalArgumentException(file + ": edges[" + i + "] \"" + e.textValue() + "\" is listed twice");
            }
        }
        Map<String, List<Integer>> positions = new LinkedHashMap<>();
        JsonNode pos = root.get("token_positions");
        if (pos != null && !pos.isNull()) {
            if (!pos.isObject()) {
                throw new IllegalArgumentException(file + ": \"token_positions\" must be an object of edge name → list of positions");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = pos.fields(); it.hasNext(); ) {
                var e = it.next();
                if (!names.contains(e.getKey())) {
                    throw new IllegalArgumentException(file + ": token_positions names \"" + e.getKey()
                        + "\", which is not in \"edges\"");
                }
                if (!e.getValue().isArray()) {
                    throw new IllegalArgumentException(file + ": token_positions.\"" + e.getKey() + "\" must be a list");
                }
                List<Integer> list = new ArrayList<>();
                for (JsonNode p : e.getValue()) {
                    if (!p.isIntegralNumber() || !p.canConvertToInt() || p.intValue() < 0) {
                        throw new IllegalArgumentException(file + ": token_positions.\"" + e.getKey()
                            + "\" must hold non-negative integers, got " + p);
                    }
                    list.add(p.intValue());
                }
                positions.put(e.getKey(), List.copyOf(list));
            }
        }
        return new OfficialCircuitFile(file, name, new ArrayList<>(names), positions, root);
    }

    public String name() {
        return name;
    }

    /** The edge names, in file order. */
    public List<String> edgeNames() {
        return edgeNames;
    }

    /** Edge name → token positions, for the edges the file restricts. */
    public Map<String, List<Integer>> tokenPositions() {
        return positions;
    }

    /** The whole JSON document (for documentation fields such as measurements). */
    public JsonNode document() {
        return document.deepCopy();
    }

    /**
     * The circuit's edges in {@code graph}: each named edge (component graph), or each named edge at its listed
     * positions, or at every position when none are listed (token graph).
     *
     * @throws IllegalArgumentException naming the file and the first edge (or position) the graph lacks
     */
    public Set<Edge> edges(Graph graph) {
        Set<Edge> out = new LinkedHashSet<>();
        for (String edge : edgeNames) {
            if (!graph.containsEdgeNamed(edge)) {
                throw new IllegalArgumentException(source + ": official edge \"" + edge + "\" is not in " + graph);
            }
            if (graph.seqLen().isEmpty()) {
                out.add(graph.edge(edge));
                continue;
            }
            List<Integer> at = positions.get(edge);
            if (at == null) {
                out.addAll(graph.edgesNamed(edge));
            } else {
                for (int p : at) {
                    if (p >= graph.seqLen().getAsInt()) {
                        throw new IllegalArgumentException(source + ": token position " + p + " of edge \"" + edge
                            + "\" is outside the graph's " + graph.seqLen().getAsInt() + " positions");
                    }
                    out.add(graph.edge(edge, OptionalInt.of(p)));
                }
            }
        }
        return Collections.unmodifiableSet(out);
    }

    /** Reads {@code file} and returns its edges in {@code graph} (see {@link #edges(Graph)}). */
    public static Set<Edge> load(Path file, Graph graph) throws IOException {
        return read(file).edges(graph);
    }
}
