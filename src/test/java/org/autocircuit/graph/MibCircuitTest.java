package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.OptionalInt;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class MibCircuitTest {

    private static PruneScores randomScores(Graph g, long seed) {
        Random r = new Random(seed);
        float[] v = new float[g.nEdges()];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextGaussian();
        return PruneScores.ofFlat(g, v);
    }

    private static Set<Edge> topK(PruneScores ps, int k) {
        float th = ps.threshold(k);
        Set<Edge> out = new LinkedHashSet<>();
        for (Edge e : ps.graph().edges()) if (Math.abs(ps.score(e)) >= th) out.add(e);
        return out;
    }

    @Test
    void roundTripKeepsScoresAndCircuit(@TempDir Path tmp) throws IOException {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(3, 4), true, null);
        PruneScores ps = randomScores(g, 7);
        Set<Edge> circuit = topK(ps, 25);
        Path f = tmp.resolve("circuit.json");
        MibCircuit.write(f, ps, circuit, new MibCircuit.Config(3, 4, false, 64));
        MibCircuit.Read back = MibCircuit.read(f, g);
        assertEquals(ps, back.scores(), "scores are written as floats and read back bit for bit");
        assertEquals(circuit, back.circuit());
        assertEquals(new MibCircuit.Config(3, 4, false, 64), back.config());
    }

    @Test
    void gpt2SmallNamesAndCounts() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, null);
        Set<Edge> circuit = Set.of(g.edge("A7.3->A9.9.Q"), g.edge("A9.9->Resid End"));
        JsonNode json = MibCircuit.toJson(PruneScores.circuit(g, circuit), circuit,
            MibCircuit.Config.of(TransformerShape.sequential(12, 12), 768));
        assertEquals(32_491, json.get("edges").size());
        assertTrue(json.get("edges").get("a7.h3->a9.h9<q>").get("in_graph").asBoolean());
        assertEquals(1.0, json.get("edges").get("a9.h9->logits").get("score").asDouble());
        assertFalse(json.get("edges").get("input->m0").get("in_graph").asBoolean());
        assertTrue(json.get("edges").has("a0.h0->m0"));
        assertEquals(1 + 12 * 13 + 1, json.get("nodes").size());
        assertTrue(json.get("nodes").get("a7.h3").get("in_graph").asBoolean());
        assertFalse(json.get("nodes").get("a7.h4").get("in_graph").asBoolean());
        assertEquals(768, json.get("cfg").get("d_model").asInt());
    }

    @Test
    void combinedAttentionDestsExpandToQkv() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 2), false, null);
        Set<Edge> circuit = Set.of(g.edge("A0.1->A1.0"));
        JsonNode edges = MibCircuit.toJson(PruneScores.circuit(g, circuit), circuit,
            new MibCircuit.Config(2, 2, false, 8)).get("edges");
        // 26 combined edges, 46 with separate Q/K/V.
        assertEquals(46, edges.size());
        for (String l : new String[] {"q", "k", "v"}) {
            assertTrue(edges.get("a0.h1->a1.h0<" + l + ">").get("in_graph").asBoolean(), l);
        }
    }

    @Test
    void tokenGraphsCollapsePositions() {
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 2), true, 3);
        float[] v = new float[g.nEdges()];
        v[g.edgeIndex(g.edge("A0.0->Resid End", OptionalInt.of(0)))] = 0.5f;
        v[g.edgeIndex(g.edge("A0.0->Resid End", OptionalInt.of(2)))] = -2f;
        Set<Edge> circuit = Set.of(g.edge("A0.0->Resid End", OptionalInt.of(1)));
        JsonNode e = MibCircuit.toJson(PruneScores.ofFlat(g, v), circuit, new MibCircuit.Config(2, 2, false, 8))
            .get("edges").get("a0.h0->logits");
        assertEquals(-2.0, e.get("score").asDouble());
        assertTrue(e.get("in_graph").asBoolean());
    }

    @Test
    void badInputIsNamed(@TempDir Path tmp) throws IOException {
        Graph unfactorized = Graph.transformerUnfactorized(TransformerShape.sequential(2, 2), null);
        assertThrows(IllegalArgumentException.class, () -> MibCircuit.toJson(PruneScores.zeros(unfactorized), Set.of(),
            new MibCircuit.Config(2, 2, false, 8)));
        Path f = tmp.resolve("bad.json");
        Files.writeString(f, "{\"cfg\":{\"n_layers\":2,\"n_heads\":2,\"d_model\":8},\"nodes\":{},"
            + "\"edges\":{\"a5.h0->logits\":{\"score\":1,\"in_graph\":true}}}");
        Graph g = Graph.transformerFactorized(TransformerShape.sequential(2, 2), true, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MibCircuit.read(f, g));
        assertTrue(e.getMessage().contains("a5.h0->logits"), e.getMessage());
        Files.writeString(f, "{\"edges\":{}}");
        e = assertThrows(IllegalArgumentException.class, () -> MibCircuit.read(f, g));
        assertTrue(e.getMessage().contains("'cfg'"), e.getMessage());
    }
}
