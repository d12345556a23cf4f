package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Stream;
import org.autocircuit.testing.GoldenFixture;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The graphs agree exactly with the ones Python AutoCircuit built (graph.json of every golden fixture; micro_model.json
 * for MicroModel(n_layers=2), whose outputs and scores MicroModelGoldenTest checks).
 */
@Tag("golden")
class GraphGoldenTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    static JsonNode load(String name) throws IOException {
        try (InputStream in = GraphGoldenTest.class.getResourceAsStream("/fixtures/golden/" + name)) {
            assertNotNull(in, "missing resource /fixtures/golden/" + name);
            return JSON.readTree(in);
        }
    }

    static OptionalInt optInt(JsonNode n) {
        return n == null || n.isNull() ? OptionalInt.empty() : OptionalInt.of(n.asInt());
    }

    static int[] ints(JsonNode arr) {
        int[] out = new int[arr.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = arr.get(i).asInt();
        }
        return out;
    }

    static long[] longs(JsonNode arr) {
        long[] out = new long[arr.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = arr.get(i).asLong();
        }
        return out;
    }

    static void assertSrcNodes(JsonNode golden, Graph g) {
        assertEquals(golden.size(), g.srcs().size(), "src count");
        for (int i = 0; i < golden.size(); i++) {
            JsonNode s = golden.get(i);
            SrcNode n = g.srcs().get(i);
            SrcNode expected = new SrcNode(s.get("name").asText(), s.get("module_name").asText(),
                    s.get("layer").asInt(), s.get("src_idx").asInt(), optInt(s.get("head_idx")));
            assertEquals(expected, n, "src " + i);
        }
    }

    static void assertDestNodes(JsonNode golden, Graph g) {
        assertEquals(golden.size(), g.dests().size(), "dest count");
        for (int i = 0; i < golden.size(); i++) {
            JsonNode d = golden.get(i);
            DestNode expected = new DestNode(d.get("name").asText(), d.get("module_name").asText(),
                    d.get("layer").asInt(), optInt(d.get("head_idx")), d.get("min_src_idx").asInt());
            assertEquals(expected, g.dests().get(i), "dest " + i);
        }
    }

    /** Golden edges as "name@seq" -> edge json, and checks every one against the graph. */
    static void assertEdges(JsonNode golden, Graph g) {
        assertEquals(golden.size(), g.nEdges(), "edge count");
        Set<String> goldenKeys = new HashSet<>();
        for (JsonNode e : golden) {
            String name = e.get("name").asText();
            OptionalInt seq = optInt(e.get("seq_idx"));
            assertTrue(goldenKeys.add(name + "@" + seq), "duplicate golden edge " + name);
            Edge edge = g.edge(name, seq);
            assertEquals(name, edge.name());
            assertEquals(seq, edge.seqIdx());
            assertEquals(e.get("src").asText(), edge.src().name(), name);
            assertEquals(e.get("dest").asText(), edge.dest().name(), name);
            assertEquals(e.get("dest_module").asText(), edge.dest().moduleName(), name);
            assertArrayEquals(ints(e.get("patch_idx")), edge.patchIdx(), name + " patch_idx");
            assertEquals(edge, g.edges().get(g.edgeIndex(edge)), name + " edgeIndex round trip");
        }
        Set<String> ours = new HashSet<>();
        for (Edge e : g.edges()) {
            ours.add(e.name() + "@" + e.seqIdx());
        }
        assertEquals(goldenKeys, ours, "edge sets");
    }

    /**
     * Every graph of every golden fixture (component and token; factorized, node and combined-Q/K/V layouts), built
     * from the fixture model's config with the header's graph options: counts, node order, mask shapes and every
     * edge's patch_idx. Token graphs list no edges of their own: they are the component graph's edges once per
     * position, with the position prepended to patch_idx.
     */
    @ParameterizedTest(name = "{0} {1} graph")
    @MethodSource("graphCases")
    void fixtureGraphsMatchAutoCircuit(GoldenFixture fixture, String kind) {
        JsonNode root = fixture.golden("graph.json");
        JsonNode t = root.get(kind);
        Graph g = fixture.buildGraph(kind);
        JsonNode seqLen = t.get("seq_len");
        assertEquals(seqLen.isNull() ? OptionalInt.empty() : OptionalInt.of(seqLen.asInt()), g.seqLen(), "seq_len");
        assertEquals(t.get("n_src_nodes").asInt(), g.nSrcs(), "src count");
        assertEquals(t.get("n_dest_nodes").asInt(), g.dests().size(), "dest count");
        assertEquals(t.get("n_edges").asInt(), g.nEdges(), "edge count");
        assertEquals(t.get("n_dest_modules").asInt(), g.destModules().size(), "dest module count");
        assertSrcNodes(t.get("src_nodes"), g);
        assertDestNodes(t.get("dest_nodes"), g);
        assertDestModules(t.get("dest_modules"), g);
        if (t.has("edges")) {
            assertEdges(t.get("edges"), g);
            return;
        }
        int positions = seqLen.asInt();
        Map<Integer, Integer> perSeq = new HashMap<>();
        for (Edge e : g.edges()) {
            perSeq.merge(e.seqIdx().getAsInt(), 1, Integer::sum);
        }
        JsonNode golden = t.get("edges_per_seq_idx");
        assertEquals(golden.size(), perSeq.size());
        for (Iterator<Map.Entry<String, JsonNode>> it = golden.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            assertEquals(e.getValue().asInt(), perSeq.get(Integer.parseInt(e.getKey())), "position " + e.getKey());
        }
        List<JsonNode> expanded = new ArrayList<>();
        for (int s = 0; s < positions; s++) {
            for (JsonNode e : root.get("component").get("edges")) {
                com.fasterxml.jackson.databind.node.ObjectNode copy = e.deepCopy();
                copy.put("seq_idx", s);
                com.fasterxml.jackson.databind.node.ArrayNode idx = copy.putArray("patch_idx");
                idx.add(s);
                for (JsonNode v : e.get("patch_idx")) {
                    idx.add(v.asInt());
                }
                expanded.add(copy);
            }
        }
        assertEdges(JSON.valueToTree(expanded), g);
    }

    static Stream<Arguments> graphCases() {
        return GoldenFixture.cases("graph.json");
    }

    static void assertDestModules(JsonNode golden, Graph g) {
        assertEquals(golden.size(), g.destModules().size(), "dest module count");
        for (int i = 0; i < golden.size(); i++) {
            JsonNode m = golden.get(i);
            DestModule dm = g.destModules().get(i);
            String name = m.get("module_name").asText();
            assertEquals(name, dm.moduleName(), "canonical order at " + i);
            assertArrayEquals(longs(m.get("mask_shape")), dm.maskShape(), name + " mask shape");
            int[] inSrcs = ints(m.get("in_srcs"));
            assertEquals(inSrcs[0], dm.inSrcStart(), name + " in_srcs start");
            assertEquals(inSrcs[1] - inSrcs[0], dm.nIn(), name + " nIn");
            assertEquals(m.get("mask_dims").toString().contains("dest_head"), dm.headed(), name + " headed");
        }
    }

    static void assertMicro(JsonNode m, Graph g) {
        assertEquals(m.get("n_src_nodes").asInt(), g.nSrcs());
        assertEquals(m.get("n_dest_nodes").asInt(), g.dests().size());
        assertEquals(m.get("n_edges").asInt(), g.nEdges());
        assertSrcNodes(m.get("src_nodes"), g);
        JsonNode modules = m.get("dest_modules");
        assertEquals(modules.size(), g.destModules().size());
        for (Iterator<Map.Entry<String, JsonNode>> it = modules.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            assertArrayEquals(longs(e.getValue()), g.destModule(e.getKey()).maskShape(), e.getKey());
        }
        List<String> order = new ArrayList<>();
        m.get("dest_module_order").forEach(n -> order.add(n.asText()));
        assertEquals(order, g.destModuleNames(), "canonical module order");
        assertEdges(m.get("edges"), g);
    }

    @Test
    void microModelComponentGraph() throws IOException {
        JsonNode m = load("micro_model.json").get("component");
        Graph g = Graph.microModel(2, true, null);
        assertMicro(m, g);

        Graph u = Graph.microModel(2, false, null);
        assertEquals(m.get("unfactorized_n_edges").asInt(), u.nEdges());
        Set<String> names = new HashSet<>();
        m.get("unfactorized_edges").forEach(n -> names.add(n.asText()));
        Set<String> ours = new HashSet<>();
        u.edges().forEach(e -> ours.add(e.name()));
        assertEquals(names, ours);
    }

    @Test
    void microModelTokenGraph() throws IOException {
        JsonNode root = load("micro_model.json");
        JsonNode m = root.get("token");
        int seqLen = root.get("clean_input").get(0).size();   // one edge per position of the recorded prompt
        Graph g = Graph.microModel(2, true, seqLen);
        assertMicro(m, g);
        assertEquals(m.get("unfactorized_n_edges").asInt(), Graph.microModel(2, false, seqLen).nEdges());
    }
}
