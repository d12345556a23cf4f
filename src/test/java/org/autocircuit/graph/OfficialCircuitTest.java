package org.autocircuit.graph;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.OptionalInt;
import java.util.Set;
import org.autocircuit.tasks.generators.OfficialCircuitDefinitions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The committed official-circuit files resolve on graphs of the models they describe, with the edge counts AutoCircuit
 * gives, and match the rules in {@link OfficialCircuitDefinitions}.
 */
class OfficialCircuitTest {

    /** The repository's circuits folder (tests run from the project root). */
    static final Path DIR = Path.of("datasets/official-circuits");

    static OfficialCircuit load(String name) throws IOException {
        return OfficialCircuit.read(DIR.resolve(name + ".json"));
    }

    /** IOI vanilla template word_idxs from AutoCircuit's file, shifted by one for BOS. */
    static Map<String, Integer> ioiVanillaWords() {
        Map<String, Integer> w = new LinkedHashMap<>();
        w.put("IO", 2);
        w.put("S1", 4);
        w.put("S1+1", 5);
        w.put("S2", 10);
        w.put("end", 14);
        return w;
    }

    static final Graph GPT2 = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, null);
    /** The IOI token task: 15 tokens with BOS, tail divergence cuts 2. */
    static final Graph GPT2_IOI_TOKENS = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, 13);

    @Test
    void committedFilesEqualTheRules() throws IOException {
        for (OfficialCircuit c : OfficialCircuitDefinitions.all().values()) {
            Path f = DIR.resolve(c.name() + ".json");
            assertTrue(Files.isRegularFile(f), "missing " + f + "; regenerate with `autocircuit generate official-circuits`");
            assertEquals(c.toJsonString(), Files.readString(f), f + " differs from OfficialCircuitDefinitions");
        }
    }

    @Test
    void ioiComponentAndTokenCounts() throws IOException {
        OfficialCircuit ioi = load("ioi");
        assertEquals(739, ioi.resolve(GPT2).size());
        assertEquals(869, ioi.resolve(GPT2_IOI_TOKENS, ioiVanillaWords(), 2).size());
        OfficialCircuit mlp0 = load("ioi-mlp0");
        assertEquals(242, mlp0.resolve(GPT2).size());
        assertEquals(266, mlp0.resolve(GPT2_IOI_TOKENS, ioiVanillaWords(), 2).size());
    }

    @Test
    void ioiComponentCircuitHoldsPaperEdges() throws IOException {
        Set<Edge> edges = load("ioi").resolve(GPT2);
        assertTrue(edges.contains(GPT2.edge("A9.9->Resid End")));
        assertTrue(edges.contains(GPT2.edge("A7.3->A9.9.Q")));
        assertTrue(edges.contains(GPT2.edge("Resid Start->A2.2.Q")));
        assertTrue(edges.contains(GPT2.edge("MLP 0->A2.2.Q")));
        // Without positions AutoCircuit adds no MLP between the name movers and the output.
        assertTrue(!edges.contains(GPT2.edge("MLP 10->Resid End")));
    }

    @Test
    void ioiTokenPositionsFollowTheWords() throws IOException {
        Set<Edge> edges = load("ioi").resolve(GPT2_IOI_TOKENS, ioiVanillaWords(), 2);
        // end = 14 -> graph position 12; S1+1 = 5 -> 3
        assertTrue(edges.contains(GPT2_IOI_TOKENS.edge("A9.9->Resid End", OptionalInt.of(12))));
        assertTrue(!edges.contains(GPT2_IOI_TOKENS.edge("A9.9->Resid End", OptionalInt.of(11))));
        assertTrue(edges.contains(GPT2_IOI_TOKENS.edge("Resid Start->A2.2.Q", OptionalInt.of(3))));
        assertTrue(edges.contains(GPT2_IOI_TOKENS.edge("MLP 10->Resid End", OptionalInt.of(12))));
    }

    @Test
    void ioiHeadBasedTokenCount() throws IOException {
        assertEquals(41_328, load("ioi-heads").resolve(GPT2_IOI_TOKENS, ioiVanillaWords(), 2).size());
        // Component version: every edge except those out of the 131 heads outside the circuit.
        Set<Edge> comp = load("ioi-heads").resolve(GPT2);
        assertTrue(comp.contains(GPT2.edge("A9.9->Resid End")));
        assertTrue(!comp.contains(GPT2.edge("A9.8->Resid End")));
        assertTrue(comp.contains(GPT2.edge("MLP 3->Resid End")));
    }

    @Test
    void greaterThanCountsAndEveryPosition() throws IOException {
        OfficialCircuit gt = load("greater-than");
        assertEquals(235, gt.resolve(GPT2).size());
        Graph tokens = Graph.transformerFactorized(TransformerShape.sequential(12, 12), true, 5);
        assertEquals(235 * 5, gt.resolve(tokens, Map.of(), 0).size());
    }

    @Test
    void docstringCounts() throws IOException {
        Graph g = Graph.transformerFactorized(TransformerShape.attnOnly(4, 8), true, null);
        OfficialCircuit d = load("docstring");
        assertEquals(24, d.resolve(g).size());
        // Token version on AutoCircuit's docstring word_idxs (+1 for BOS): A2.0.K from Resid Start is component-only.
        Map<String, Integer> w = new HashMap<>(Map.of("A_def", 11, "B_def", 13, ",_B", 14, "C_def", 15, "A_doc", 27,
            "B_doc", 34, "param_3", 40));
        Graph tokens = Graph.transformerFactorized(TransformerShape.attnOnly(4, 8), true, 41);
        Set<Edge> te = d.resolve(tokens, w, 0);
        // Hand count of the position lists: 2+3+1+1+0+1+1+2+4+2+1+2 + 2*(1+1+1+1+1+2) = 20 + 14 = 34.
        assertEquals(34, te.size());
        Set<Edge> heads = load("docstring-heads").resolve(tokens, w, 0);
        assertTrue(heads.contains(tokens.edge("A1.0->Resid End", OptionalInt.of(13))));
        assertTrue(heads.contains(tokens.edge("A1.0->Resid End", OptionalInt.of(40))));
        assertTrue(!heads.contains(tokens.edge("A1.0->Resid End", OptionalInt.of(12))));
    }

    @Test
    void sportsPlayersTokenCount() throws IOException {
        Graph g = Graph.transformerFactorized(TransformerShape.parallel(32, 32), false, 20);
        Map<String, Integer> w = Map.of("first_name_tok", 13, "final_name_tok", 15, "end", 19);
        assertEquals(4_518, load("sports-players").resolve(g, w, 0).size());
    }

    @Test
    void tracrCounts() throws IOException {
        Graph rev = Graph.transformerFactorized(TransformerShape.sequential(4, 1), true, 6);
        assertEquals(8, load("tracr-reverse").resolve(rev, Map.of(), 0).size());
        assertEquals(40, load("tracr-reverse-acdc").resolve(rev, Map.of(), 0).size());
        Graph xp = Graph.transformerFactorized(TransformerShape.sequential(2, 1), true, 6);
        assertEquals(15, load("tracr-xproportion").resolve(xp, Map.of(), 0).size());
        assertEquals(25, load("tracr-xproportion-acdc").resolve(xp, Map.of(), 0).size());
    }

    @Test
    void wrongGraphNamesTheMissingNode() throws IOException {
        Graph small = Graph.transformerFactorized(TransformerShape.sequential(2, 4), true, null);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> load("ioi").resolve(small));
        assertTrue(e.getMessage().contains("lacks"), e.getMessage());
        assertTrue(e.getMessage().matches("(?s).*node '(A|MLP )\\d+.*"), e.getMessage());
        Graph combined = Graph.transformerFactorized(TransformerShape.sequential(12, 12), false, null);
        IllegalArgumentException q = assertThrows(IllegalArgumentException.class, () -> load("ioi").resolve(combined));
        assertTrue(q.getMessage().contains("separate Q/K/V"), q.getMessage());
    }

    @Test
    void tokenGraphWithoutWordIdxsNamesTheWord() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
            () -> load("ioi").resolve(GPT2_IOI_TOKENS, Map.of("IO", 2), 2));
        assertTrue(e.getMessage().contains("word_idxs"), e.getMessage());
    }

    @Test
    void malformedFileNamesTheField(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("bad.json");
        Files.writeString(f, "{\"format\":\"" + OfficialCircuit.FORMAT + "\",\"name\":\"x\",\"kind\":\"edges\","
            + "\"groups\":[{\"at\":\"sometimes\",\"names\":[]}]}");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> OfficialCircuit.read(f));
        assertTrue(e.getMessage().contains("groups[0].at"), e.getMessage());
    }

    @Test
    void writeReadRoundTrip(@TempDir Path tmp) throws IOException {
        OfficialCircuit c = OfficialCircuitDefinitions.docstringHeads();
        Path f = tmp.resolve("c.json");
        c.write(f);
        OfficialCircuit back = OfficialCircuit.read(f);
        assertEquals(c.toJsonString(), back.toJsonString());
        assertEquals(c.groups(), back.groups());
    }
}
